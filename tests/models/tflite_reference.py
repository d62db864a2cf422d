"""TFLite's int8 ADD transcribed line by line with Python ints (a test reference).

``QuantizeMultiplier``, ``SaturatingRoundingDoublingHighMul``, ``RoundingDivideByPOT`` and
the ``TFLITE_SINGLE_ROUNDING`` ``MultiplyByQuantizedMultiplier``, one element at a time,
written from TFLite's C++ and apart from :mod:`npugen.sim.models.tfl_add`.
"""

import math

import numpy as np

__all__ = ["tflite_add_reference"]


def _quantize_multiplier(d):
    """TFLite ``QuantizeMultiplier`` (``tensorflow/lite/kernels/internal/quantization_util``)."""
    q, shift = math.frexp(d)
    q_fixed = math.floor(q * (1 << 31) + 0.5)  # TfLiteRound (std::round) of a positive value
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    assert shift <= 0  # QuantizeMultiplierSmallerThanOneExp's check
    return q_fixed, shift


def _srdhm(a, b):
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    quotient = abs(ab + nudge) >> 31  # C++ division of int64: truncates towards zero
    return quotient if ab + nudge >= 0 else -quotient


def _rdbpot(x, exponent):
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def _mbqm(x, q, shift, single):
    if single:  # TFLITE_SINGLE_ROUNDING
        total = 31 - shift
        return (x * q + (1 << (total - 1))) >> total
    return _rdbpot(_srdhm(x, q), -shift)


def tflite_add_reference(a, b, sa, za, sb, zb, sc, zc, single, lo=-128, hi=127):
    """One element of TFLite's int8 ADD; ``single``: a single-rounding build."""
    twice = 2 * max(float(sa), float(sb))
    qa, ea = _quantize_multiplier(float(sa) / twice)
    qb, eb = _quantize_multiplier(float(sb) / twice)
    qo, eo = _quantize_multiplier(twice / float(np.float32(np.float32(1 << 20) * sc)))
    va = _mbqm((a - za) * (1 << 20), qa, ea, single)
    vb = _mbqm((b - zb) * (1 << 20), qb, eb, single)
    return min(hi, max(lo, _mbqm(va + vb, qo, eo, single) + zc))
