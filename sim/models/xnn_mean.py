"""Golden model of XNNPACK's int8 mean over a map (LiteRT's default path for TFLite ``MEAN``).

XNNPACK sums the ``n`` int8 inputs of each output in int32 (the raw values, zero point
included), then requantizes in float32 with two constants made at set-up:

- ``scale = float32(float32(s_in / s_out) * float32(1 / n))`` (the operator is created with
  the ratio, and its reshape multiplies in the reciprocal of the element count);
- ``bias = float32(float32(zp_out) - float32(float32(zp_in * n) * scale))``;

and each output is ``clamp(rint(float32(float32(float32(t) * scale) + bias)))``, ``t`` the
raw sum, ``rint`` half to even. The zero points enter in float32, before the rounding, so
this is not onnxruntime's requantization (``float32(t - zp_in * n) * scale`` rounded, then
``zp_out`` added): the two differ near ties.

Measured against LiteRT 2.3 on x86-64 (``tests/compiler/test_litert_rounding.py``): equal on
every sum where this formula and six others (the three other float32 orders of the scale,
the zero points in integers before or after the rounding, one fused multiply-add) disagree,
over 120 layers with such sums; each of the others fails on some of them.
"""

import numpy as np

__all__ = ["xnnpack_mean", "xnnpack_mean_params"]

_F32 = np.float32


def xnnpack_mean_params(s_in, zp_in, s_out, zp_out, n):
    """Return XNNPACK's float32 ``(scale, bias)`` for a mean over ``n`` elements."""
    if n < 1:
        raise ValueError(f"n must be 1 or more, not {n}")
    scale = _F32(_F32(_F32(s_in) / _F32(s_out)) * _F32(_F32(1.0) / _F32(n)))
    bias = _F32(_F32(zp_out) - _F32(_F32(int(zp_in) * n) * scale))
    return scale, bias


def xnnpack_mean(t, s_in, zp_in, s_out, zp_out, n):
    """Return the int8 means (int64) of raw int32 sums ``t`` of ``n`` int8 values each."""
    scale, bias = xnnpack_mean_params(s_in, zp_in, s_out, zp_out, n)
    t = np.asarray(t, dtype=np.int64)
    if np.any(np.abs(t) >= 1 << 24):
        raise ValueError("sums must be below 2**24 in magnitude (exact in float32)")
    value = ((t.astype(_F32) * scale).astype(_F32) + bias).astype(_F32)
    return np.clip(np.rint(value), -128, 127).astype(np.int64)
