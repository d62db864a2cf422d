"""Helpers shared by the cocotb benches: setup, traffic patterns, data, checks, metrics."""

import json
import os
import random

import numpy as np

from npugen.sim.models.intmath import signed_range

__all__ = ["TRAFFIC", "bench_setup", "check_words", "random_values", "write_result"]

#: Traffic patterns: (probability of an idle cycle between input beats, of a stalled output).
TRAFFIC = {
    "steady": (0.0, 0.0),
    "gaps": (0.4, 0.0),
    "backpressure": (0.0, 0.6),
    "both": (0.3, 0.3),
}


def bench_setup(dut, params_cls):
    """Read ``DUT_PARAMS`` and ``SEED``, log them; return ``(params, rng, numpy rng)``."""
    params = params_cls.from_json(os.environ["DUT_PARAMS"])
    seed = int(os.environ["SEED"])
    dut._log.info("params %s, SEED=%d", params.to_json(), seed)
    return params, random.Random(seed), np.random.default_rng(seed)


def random_values(nrng, bits, shape, kind="random"):
    """Signed ``bits``-bit test data: random (salted with both extremes), extremes, min, max."""
    lo, hi = signed_range(bits)
    if kind == "random":
        x = nrng.integers(lo, hi + 1, size=shape, dtype=np.int64)
        # Salt with the extremes so every run sees e.g. -128 and 127.
        x.flat[nrng.integers(0, x.size, size=max(1, x.size // 8))] = lo
        x.flat[nrng.integers(0, x.size, size=max(1, x.size // 8))] = hi
        return x
    if kind == "extremes":
        return nrng.choice([lo, hi], size=shape)
    if kind == "min":
        return np.full(shape, lo, dtype=np.int64)
    if kind == "max":
        return np.full(shape, hi, dtype=np.int64)
    raise ValueError(f"kind must be random, extremes, min or max, not {kind!r}")


def check_words(dut, got, expected, what):
    """Compare every received word with the model; log the first mismatches precisely."""
    assert len(got) == len(expected), f"{what}: {len(got)} words, expected {len(expected)}"
    bad = [i for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e]
    for i in bad[:5]:
        dut._log.error("%s word %d: got %s expected %s", what, i, got[i], expected[i])
    assert not bad, f"{what}: {len(bad)} of {len(got)} words differ (first at {bad[0]})"


def write_result(values):
    """Write metrics to the JSON file named by ``NPUGEN_RESULT``, if any."""
    path = os.environ.get("NPUGEN_RESULT")
    if path:
        with open(path, "w") as f:
            json.dump(values, f)
