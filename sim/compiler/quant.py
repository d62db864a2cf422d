"""The float edges of a network: quantize its input, dequantize its output.

Bit-exact with onnxruntime's CPU kernels (MLAS): ``QuantizeLinear`` divides in float32
(``x / scale``), rounds half to even, adds the zero point and saturates to int8;
``DequantizeLinear`` computes ``float32(q - zero_point) * scale`` in float32. LiteRT's
default path (XNNPACK) quantizes with a multiply by the float32 reciprocal instead
(``rule="mul_inverse"``: ``x * float32(1 / scale)``) and dequantizes alike.
"""

import numpy as np

__all__ = ["dequantize", "quantize"]


#: How a float input is scaled before rounding: onnxruntime divides, XNNPACK multiplies by
#: the float32 reciprocal.
RULES = ("div", "mul_inverse")


def quantize(x, quant, rule="div"):
    """int8 (as int64) of float32 ``x`` under ``quant`` (a :class:`~.ir.TensorQuant`)."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, not {rule!r}")
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("input must be finite float32 values (no NaN or infinity)")
    # clamp in float32 first, as MLAS does (a huge value must not overflow the cast)
    lo, hi = np.float32(-128 - quant.zero_point), np.float32(127 - quant.zero_point)
    with np.errstate(over="ignore"):  # x / scale may be +-inf: it clamps like any other
        if rule == "div":
            scaled = x / np.float32(quant.scale)
        else:
            scaled = x * (np.float32(1) / np.float32(quant.scale))
    q = np.rint(np.clip(scaled, lo, hi)).astype(np.int64)
    return np.clip(q + quant.zero_point, -128, 127)


def dequantize(q, quant):
    """float32 of int8 ``q`` under ``quant``."""
    q = np.asarray(q, dtype=np.int64)
    return (q - quant.zero_point).astype(np.float32) * np.float32(quant.scale)
