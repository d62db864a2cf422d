"""Golden model of TFLite's integer int8 ``ADD`` (reference kernels, TFLite Micro).

TFLite's ``ADD`` kernel for int8 (``reference_integer_ops::Add``; TFLite Micro runs the same
code) rescales both inputs to a common fixed-point grid and the sum to the output:

- set-up, in double precision from the float32 scales: ``tw = 2 * max(sa, sb)``;
  ``ra = sa / tw``, ``rb = sb / tw`` (at most 1/2) and ``ro = tw / (2**20 * sc)``, each turned
  into ``(q, e)`` by ``QuantizeMultiplierSmallerThanOneExp``: ``r ~= q * 2**(-31 - e)`` with
  ``q`` in ``[2**30, 2**31)`` and the right shift ``e >= 0`` (:func:`tflite_add_params`; the
  kernel refuses ``ro >= 1``, and a multiplier below ``2**-32`` would become 0: both are
  refused here);
- per element: ``xa = (a - za) * 2**20``, ``xb = (b - zb) * 2**20``;
  ``va = M(xa, qa, ea)``, ``vb = M(xb, qb, eb)``; ``out = clamp(M(va + vb, qo, eo) + zc, lo,
  hi)`` with ``[lo, hi]`` the fused activation's range (``[-128, 127]`` without one).

``M(x, q, e)`` is ``MultiplyByQuantizedMultiplierSmallerThanOneExp``, and how it rounds is
the build's choice: ``gemmlowp`` (TFLite's default build, its reference kernels, TFLite
Micro) rounds twice, ``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x, q), e)``;
``tflite`` (a ``TFLITE_SINGLE_ROUNDING`` build) rounds once, ``(x * q + 2**(30 + e)) >>
(31 + e)``. Both are :mod:`.requant`'s models with shift ``s = -e`` (a zero point of 0 and
no clamp for the two inputs). Every intermediate fits int32: ``|xa| <= 255 * 2**20``, and
``M`` with a multiplier below 1/2 halves it.

Measured against LiteRT 2.3 on x86-64 (``tests/compiler/test_litert_rounding.py``): its
reference kernels (``BUILTIN_REF``) equal the ``gemmlowp`` form on all 65,536 input pairs
of every random layer tried, including layers on which the two forms differ; LiteRT's
default path (XNNPACK) computes a different formula (:mod:`.xnn_add`). These are the NPU's
``ADD`` modes 2 (``gemmlowp``) and 3 (``tflite``).
"""

import numpy as np

from .requant import requantize_gemmlowp, requantize_tflite

__all__ = ["LEFT_SHIFT", "ROUNDINGS", "quantize_smaller_than_one", "tflite_add",
           "tflite_add_int", "tflite_add_params"]

#: The fixed left shift of both inputs (TFLite's ``left_shift`` for int8).
LEFT_SHIFT = 20
#: The two roundings of ``M`` (the requantization modes of the same names).
ROUNDINGS = ("gemmlowp", "tflite")
_MODELS = {"gemmlowp": requantize_gemmlowp, "tflite": requantize_tflite}
_INT32 = (-(1 << 31), (1 << 31) - 1)


def quantize_smaller_than_one(real, name):
    """``QuantizeMultiplierSmallerThanOneExp``: ``(q, e)``, ``real ~= q * 2**(-31 - e)``.

    ``q`` in ``[2**30, 2**31)`` rounded half away from zero (``std::round`` of the double
    fraction), ``e`` in ``0..31``. Raises ValueError naming ``name`` when ``real`` is not in
    ``(0, 1)`` after rounding or needs a shift beyond 31 (TFLite aborts on the first and
    silently makes the multiplier 0 on the second).
    """
    real = float(real)
    if not 0.0 < real < 1.0:
        raise ValueError(f"{name} = {real!r} must be in (0, 1) for TFLite's ADD")
    fraction, exponent = np.frexp(real)  # real = fraction * 2**exponent, fraction in [0.5, 1)
    q = int(np.floor(fraction * (1 << 31) + 0.5))
    exponent = int(exponent)
    if q == 1 << 31:
        q //= 2
        exponent += 1
    e = -exponent
    if not 0 <= e <= 31:
        raise ValueError(f"{name} = {real!r} needs a right shift of {e}, outside 0..31")
    return q, e


def tflite_add_params(sa, sb, sc):
    """Return ``((qa, ea), (qb, eb), (qo, eo))`` for the float32 scales of a, b and c."""
    sa, sb, sc = (np.float32(s) for s in (sa, sb, sc))
    if not all(float(s) > 0 and np.isfinite(s) for s in (sa, sb, sc)):
        raise ValueError(f"scales must be positive and finite, not {sa}, {sb}, {sc}")
    twice_max = 2.0 * float(max(sa, sb))  # float32 * 2: exact
    # (1 << 20) * sc is a float32 product in C++ (exact: a power of two).
    out = float(np.float32(np.float32(1 << LEFT_SHIFT) * sc))
    return (quantize_smaller_than_one(float(sa) / twice_max, "sa / (2 * max(sa, sb))"),
            quantize_smaller_than_one(float(sb) / twice_max, "sb / (2 * max(sa, sb))"),
            quantize_smaller_than_one(twice_max / out, "2 * max(sa, sb) / (2**20 * sc)"))


def tflite_add_int(a, b, za, zb, ma, mb, mo, zc, rounding="gemmlowp", lo=-128, hi=127):
    """Compute the element-wise formula (module text) on int arrays ``a``, ``b``.

    ``ma``, ``mb``, ``mo``: the ``(q, e)`` pairs; ``rounding``: one of :data:`ROUNDINGS`.
    Returns int64 values in ``[lo, hi]``.
    """
    if rounding not in _MODELS:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, not {rounding!r}")
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have one shape, not {a.shape} and {b.shape}")
    rescale = _MODELS[rounding]
    va = rescale((a - int(za)) << LEFT_SHIFT, ma[0], -ma[1], 0, *_INT32)
    vb = rescale((b - int(zb)) << LEFT_SHIFT, mb[0], -mb[1], 0, *_INT32)
    return rescale(va + vb, mo[0], -mo[1], int(zc), lo, hi)


def tflite_add(a, b, sa, za, sb, zb, sc, zc, rounding="gemmlowp", lo=-128, hi=127):
    """TFLite's int8 add of ``a`` and ``b`` from the layer's scales and zero points."""
    ma, mb, mo = tflite_add_params(sa, sb, sc)
    return tflite_add_int(a, b, za, zb, ma, mb, mo, zc, rounding, lo, hi)
