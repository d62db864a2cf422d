"""TFLite's integer add model against a line-by-line transcription of TFLite's C++ code.

:mod:`npugen.sim.models.tfl_add` builds on the requantization models; here every element is
recomputed from TFLite's functions transcribed with Python ints and ``math.frexp``
(``QuantizeMultiplier``, ``SaturatingRoundingDoublingHighMul``, ``RoundingDivideByPOT`` and
the ``TFLITE_SINGLE_ROUNDING`` ``MultiplyByQuantizedMultiplier``), on random layers whose
scale ratios span the shifts, with zero points at their extremes and random clamps. LiteRT
itself judges the double-rounding form in ``tests/compiler/test_litert_rounding.py``.
"""

import numpy as np
import pytest

from npugen.sim.models.tfl_add import quantize_smaller_than_one, tflite_add, tflite_add_params

from .tflite_reference import tflite_add_reference as _reference


@pytest.mark.parametrize("rounding", ["gemmlowp", "tflite"])
def test_against_transcription(seed, rounding):
    rng = np.random.default_rng([seed, len(rounding)])
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
