"""TFLite's integer add model against a line-by-line transcription of TFLite's C++ code.

:mod:`npugen.sim.models.tfl_add` builds on the requantization models; here every element is
recomputed from TFLite's functions transcribed with Python ints and ``math.frexp``
(``QuantizeMultiplier``, ``SaturatingRoundingDoublingHighMul``, ``RoundingDivideByPOT`` and
the ``TFLITE_SINGLE_ROUNDING`` ``MultiplyByQuantizedMultiplier``), on random layers whose
scale ratios span the shifts, with zero points at their extremes and random clamps. LiteRT
itself judges the double-rounding form in ``tests/compiler/test_litert_rounding.py``.
"""

import math

import numpy as np
import pytest

from npugen.sim.models.tfl_add import quantize_smaller_than_one, tflite_add, tflite_add_params


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


def _reference(a, b, sa, za, sb, zb, sc, zc, single, lo, hi):
    twice = 2 * max(float(sa), float(sb))
    qa, ea = _quantize_multiplier(float(sa) / twice)
    qb, eb = _quantize_multiplier(float(sb) / twice)
    qo, eo = _quantize_multiplier(twice / float(np.float32(np.float32(1 << 20) * sc)))
    va = _mbqm((a - za) * (1 << 20), qa, ea, single)
    vb = _mbqm((b - zb) * (1 << 20), qb, eb, single)
    return min(hi, max(lo, _mbqm(va + vb, qo, eo, single) + zc))


@pytest.mark.parametrize("rounding", ["gemmlowp", "tflite"])
def test_against_transcription(seed, rounding):
    rng = np.random.default_rng([seed, len(rounding)])
    checked = 0
    for _ in range(40):
        sa, sb, sc = (np.float32(2.0 ** rng.uniform(-12, 0)) for _ in range(3))
        sc = np.float32(max(float(sc), 2.0 * max(sa, sb) / 2.0 ** 19))  # ratio below 1
        za, zb, zc = (int(rng.choice([-128, 127, rng.integers(-128, 128)])) for _ in range(3))
        lo, hi = sorted(int(v) for v in rng.integers(-128, 128, 2)) if rng.integers(2) \
            else (-128, 127)
        a, b = rng.integers(-128, 128, (2, 300))
        got = tflite_add(a, b, sa, za, sb, zb, sc, zc, rounding, lo, hi)
        want = [_reference(int(x), int(y), sa, za, sb, zb, sc, zc, rounding == "tflite", lo,
                           hi) for x, y in zip(a, b, strict=True)]
        assert got.tolist() == want, (sa, sb, sc, za, zb, zc, lo, hi)
        checked += len(want)
    assert checked == 12000


def test_multiplier_edges():
    assert quantize_smaller_than_one(0.5, "r") == (1 << 30, 0)
    assert quantize_smaller_than_one(2.0 ** -32, "r") == (1 << 30, 31)
    with pytest.raises(ValueError, match="right shift of -1"):  # q rounds up to 2**31
        quantize_smaller_than_one(1 - 2.0 ** -40, "r")
    with pytest.raises(ValueError, match=r"r = 1\.0 must be in \(0, 1\)"):
        quantize_smaller_than_one(1.0, "r")
    with pytest.raises(ValueError, match="right shift of 32"):
        quantize_smaller_than_one(2.0 ** -33, "r")
    with pytest.raises(ValueError, match=r"2 \* max\(sa, sb\) / \(2\*\*20 \* sc\)"):
        tflite_add_params(1.0, 1.0, 2.0 ** -21)  # the output ratio is 2: TFLite aborts
    with pytest.raises(ValueError, match="positive and finite"):
        tflite_add_params(1.0, 0.0, 1.0)
