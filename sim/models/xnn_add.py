"""Golden model of XNNPACK's int8 element-wise add (LiteRT's default path for TFLite ``ADD``).

XNNPACK's ``qs8`` add is integer arithmetic after a float32 set-up: with the float32 scale
ratios ``ra = sa / sc`` and ``rb = sb / sc``, the larger one's binary exponent ``e`` sets
``shift = 20 - e`` (13..30); the multipliers are ``ma = rint(ra * 2**shift)`` and
``mb = rint(rb * 2**shift)`` (below ``2**21``, at most ``2**21`` after rounding, half to
even), the bias is
``2**(shift - 1) - ma * za - mb * zb``, and each element is
``clamp((bias + a * ma + b * mb) >> shift, lo - zc, hi - zc) + zc`` with an arithmetic
right shift (so the rounding is half up). XNNPACK accepts ratios in ``[2**-10, 2**8)``.

Measured against LiteRT 2.3 on x86-64 (``tests/compiler/test_litert_rounding.py``): equal
on every one of the 65,536 input pairs of every random layer tried. It differs from
onnxruntime's ``QLinearAdd`` (:mod:`.qladd`, float32 fused multiply-adds) in a few pairs per
layer, so an ``ADD`` from a TFLite model needs this formula, not that one: the NPU's ``ADD``
mode 1.
"""

import numpy as np

__all__ = ["MULT_MAX", "RATIO_RANGE", "SHIFT_RANGE", "xnnpack_add", "xnnpack_add_int",
           "xnnpack_add_params"]

#: XNNPACK's valid range of each scale ratio ``sa / sc``, ``sb / sc``.
RATIO_RANGE = (2.0 ** -10, 2.0 ** 8)
#: The multipliers' bound (``|ma|, |mb| <= MULT_MAX``) and the shifts those ratios give.
MULT_MAX = 1 << 21
SHIFT_RANGE = (13, 30)


def xnnpack_add_params(sa, za, sb, zb, sc, zc):
    """Return ``(ma, mb, bias, shift)`` for float32 scales and int8 zero points.

    Raises ValueError (naming the ratio) if a ratio is outside :data:`RATIO_RANGE`.
    """
    ra = np.float32(np.float32(sa) / np.float32(sc))
    rb = np.float32(np.float32(sb) / np.float32(sc))
    for name, r in (("sa / sc", ra), ("sb / sc", rb)):
        if not RATIO_RANGE[0] <= float(r) < RATIO_RANGE[1]:
            raise ValueError(f"{name} = {float(r)!r} is outside XNNPACK's range "
                             f"[2**-10, 2**8)")
    exponent = int(np.frexp(max(ra, rb))[1]) - 1  # max = m * 2**exponent, m in [1, 2)
    shift = 20 - exponent
    # ra * 2**shift is exact in float64; np.rint rounds half to even, as lrintf does.
    ma = int(np.rint(float(ra) * 2.0 ** shift))
    mb = int(np.rint(float(rb) * 2.0 ** shift))
    bias = (1 << (shift - 1)) - ma * int(za) - mb * int(zb)
    return ma, mb, bias, shift


def xnnpack_add_int(a, b, ma, mb, bias, shift, zc, lo=-128, hi=127):
    """Return ``clamp((bias + a * ma + b * mb) >> shift + zc, lo, hi)``, computed exactly.

    Python-int arithmetic on int64 arrays (no wrap for ``|ma|, |mb| <= 2**21`` and an int32
    ``bias``); the NPU's ``ADD`` mode 1 computes this from its instruction's fields.
    """
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have one shape, not {a.shape} and {b.shape}")
    acc = int(bias) + a * int(ma) + b * int(mb)
    return np.clip(acc >> int(shift), lo - int(zc), hi - int(zc)) + int(zc)


def xnnpack_add(a, b, sa, za, sb, zb, sc, zc, lo=-128, hi=127):
    """XNNPACK's int8 add of arrays ``a``, ``b`` (same shape); int64 results in [lo, hi]."""
    ma, mb, bias, shift = xnnpack_add_params(sa, za, sb, zb, sc, zc)
    return xnnpack_add_int(a, b, ma, mb, bias, shift, zc, lo, hi)
