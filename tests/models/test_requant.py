"""Requantization golden models against straightforward references.

``ort`` against numpy float32 arithmetic (what onnxruntime's MLAS kernel does); ``tflite``
and ``gemmlowp`` against literal Python-int transcriptions of the runtimes' C code. Over
the int32 edges and 10^6 random (accumulator, scale) pairs per mode (seeded).
"""

import numpy as np
import pytest

from npugen.sim.models.requant import (
    SHIFT_RANGE,
    float32_scale,
    quantize_multiplier,
    requantize,
    requantize_gemmlowp,
    requantize_ort,
    requantize_tflite,
)

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
EDGES = np.array([INT32_MIN, INT32_MIN + 1, -(1 << 30), -(1 << 24) - 1, -(1 << 24),
                  -(1 << 24) + 1, -65536, -257, -256, -255, -129, -128, -127, -3, -2, -1, 0,
                  1, 2, 3, 127, 128, 255, 256, 65535, (1 << 24) - 1, 1 << 24, (1 << 24) + 1,
                  (1 << 24) + 3, (1 << 25) + 5, 1 << 30, INT32_MAX - 1, INT32_MAX],
                 dtype=np.int64)


def _ort_reference(acc, scale, zp, lo, hi):
    f = acc.astype(np.float32) * np.float32(scale)
    f = np.clip(f, np.float32(lo - zp), np.float32(hi - zp))
    return np.rint(f).astype(np.int64) + zp


def _tflite_reference(acc, q, s, zp, lo, hi):
    out = []
    shift = 31 - s
    for a in acc.tolist():
        quotient, rem = divmod(a * q, 1 << shift)  # floor division, rem >= 0
        value = quotient + (2 * rem >= (1 << shift))  # half rounds up
        out.append(min(max(value + zp, lo), hi))
    return np.array(out)


def _wrap(x):
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _srdhm(a, b):
    """Return gemmlowp's SaturatingRoundingDoublingHighMul, as written in C."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    total = ab + nudge
    quotient = abs(total) >> 31  # C's integer division truncates towards zero
    return quotient if total >= 0 else -quotient


def _rdbpot(x, exponent):
    """Return gemmlowp's RoundingDivideByPOT, as written in C."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def _gemmlowp_reference(acc, q, s, zp, lo, hi):
    left, right = max(s, 0), max(-s, 0)
    out = []
    for a in acc.tolist():
        value = _rdbpot(_srdhm(_wrap(a * (1 << left)), q), right)
        out.append(min(max(value + zp, lo), hi))
    return np.array(out)


def _random_scales(rng, count):
    """Scales from 2**-30 to 2**4, log-uniform, as float32 (what a model carries)."""
    return np.float32(2.0) ** rng.uniform(-30, 4, count).astype(np.float32)


@pytest.mark.parametrize(("lo", "hi", "zp"), [(-128, 127, 0), (-128, 127, -17), (0, 127, 5),
                                              (0, 255, 128), (-128, 127, 127)])
def test_ort_edges(lo, hi, zp):
    for scale in [1.0, 0.5, 2.0 ** -24, 2.0 ** -31, 0.0039215689, 1.5, 3.0e-5, 7.9, 2.0 ** -8]:
        m, e = float32_scale(scale)
        got = requantize_ort(EDGES, m, e, zp, lo, hi)
        np.testing.assert_array_equal(got, _ort_reference(EDGES, scale, zp, lo, hi))


def test_ort_random(seed):
    rng = np.random.default_rng(seed)
    n = 1_000_000
    acc = rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True)
    # Half of the accumulators small (the common case), half anywhere in int32.
    acc[: n // 2] >>= rng.integers(0, 31, n // 2)
    scales = _random_scales(rng, 1000)
    zp = int(rng.integers(-128, 128))
    mismatches = 0
    for k, scale in enumerate(scales):
        block = acc[k * 1000:(k + 1) * 1000]
        m, e = float32_scale(scale)
        got = requantize_ort(block, m, e, zp, -128, 127)
        mismatches += int(np.count_nonzero(got != _ort_reference(block, scale, zp, -128, 127)))
    assert mismatches == 0


def test_ort_halfway_cases_round_to_even():
    """Products that land exactly on .5 after the float32 multiply: 0.5, 1.5, 2.5 ..."""
    acc = np.arange(-40, 41, dtype=np.int64)
    got = requantize_ort(acc, *float32_scale(0.5), 0, -128, 127)
    np.testing.assert_array_equal(got, np.rint(acc / 2).astype(np.int64))
    # float32(acc) rounds first: 2**24 + 1 becomes 2**24, then x 2**-24 is exactly 1.
    assert requantize_ort(np.array([(1 << 24) + 1]), *float32_scale(2.0 ** -24), 0, -128,
                          127)[0] == 1


def _tflite_cases(rng, count):
    qs = rng.integers(1 << 30, 1 << 31, count)
    ss = rng.integers(SHIFT_RANGE[0], SHIFT_RANGE[1] + 1, count)
    # Realistic shifts (scales below 1) twice as often.
    ss[: count // 2] = rng.integers(-20, 1, count // 2)
    return qs, ss


@pytest.mark.parametrize("model", ["tflite", "gemmlowp"])
def test_fixed_point_edges(model):
    reference = _tflite_reference if model == "tflite" else _gemmlowp_reference
    for q in [1 << 30, (1 << 30) + 1, 1518500250, INT32_MAX]:
        for s in [SHIFT_RANGE[0], -20, -8, -1, 0, 1, 7, SHIFT_RANGE[1]]:
            for lo, hi, zp in [(-128, 127, 0), (-128, 127, 3), (0, 255, 128)]:
                got = requantize(model, EDGES, q, s, zp, lo, hi)
                np.testing.assert_array_equal(got, reference(EDGES, q, s, zp, lo, hi),
                                              err_msg=f"q={q} s={s}")


@pytest.mark.parametrize("model", ["tflite", "gemmlowp"])
def test_fixed_point_random(model, seed):
    rng = np.random.default_rng(seed)
    fn = requantize_tflite if model == "tflite" else requantize_gemmlowp
    reference = _tflite_reference if model == "tflite" else _gemmlowp_reference
    per, blocks = 1000, 1000
    qs, ss = _tflite_cases(rng, blocks)
    mismatches = 0
    for k in range(blocks):
        acc = rng.integers(INT32_MIN, INT32_MAX, per, endpoint=True)
        acc[: per // 2] >>= rng.integers(0, 31, per // 2)
        q, s = int(qs[k]), int(ss[k])
        got = fn(acc, q, s, -3, -128, 127)
        mismatches += int(np.count_nonzero(got != reference(acc, q, s, -3, -128, 127)))
    assert mismatches == 0


def test_the_three_modes_differ(seed):
    """The three modes are three different functions.

    On 10^6 random pairs double and single rounding disagree on about 1% of outputs,
    float32 and single rounding on a few in 10^5 (16-bit outputs, so that the clamp hides nothing).
    """
    rng = np.random.default_rng(seed)
    single_double = ort_single = 0
    for _ in range(1000):
        acc = rng.integers(INT32_MIN, INT32_MAX, 1000) >> rng.integers(0, 31, 1000)
        scale = float(np.float32(2.0 ** rng.uniform(-30, 0)))
        q, s = quantize_multiplier(scale)
        single = requantize_tflite(acc, q, s, 0, -(1 << 15), (1 << 15) - 1)
        double = requantize_gemmlowp(acc, q, s, 0, -(1 << 15), (1 << 15) - 1)
        ort = requantize_ort(acc, *float32_scale(scale), 0, -(1 << 15), (1 << 15) - 1)
        single_double += int(np.count_nonzero(single != double))
        ort_single += int(np.count_nonzero(ort != single))
    # Means about 10,240 and 35 of 10^6 (the first's spread, about 1,000, comes from the
    # scales): the bounds are many standard deviations away.
    print(f"of 10^6: single != double {single_double}, float32 != single {ort_single}")
    assert 3000 < single_double < 20000
    assert 0 < ort_single < 1000


def test_quantize_multiplier():
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    q, s = quantize_multiplier(0.0123)
    assert (1 << 30) <= q < (1 << 31)
    assert abs(q * 2.0 ** (s - 31) - 0.0123) < 1e-9
    with pytest.raises(ValueError, match="shift"):
        quantize_multiplier(2.0 ** -40)
    with pytest.raises(ValueError, match="positive"):
        quantize_multiplier(0.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan"), 1e-45])
def test_float32_scale_rejects(bad):
    with pytest.raises(ValueError, match="positive normal float32"):
        float32_scale(bad)


def test_float32_scale_is_exact():
    for scale in [1.0, 0.1, 3.0e-5, 2.0 ** -126, 1.7e38]:
        m, e = float32_scale(scale)
        assert (1 << 23) <= m < (1 << 24)
        assert m * 2.0 ** e == float(np.float32(scale))


def test_unknown_mode():
    with pytest.raises(ValueError, match="mode must be one of"):
        requantize("round", EDGES, 1, 0, 0, -128, 127)
