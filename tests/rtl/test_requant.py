"""The requantization units in the Amaranth simulator against the golden models.

Both units (the pipelined :class:`Requantizer` and the :class:`SerialRequantizer`): corner
cases of every mode (int32 edges, ties, saturation, every output range) and random beats,
under random gaps and backpressure, every output compared; latency, interval, reset.
"""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from npugen.rtl.npu.requant import Requantizer, Rounding
from npugen.rtl.npu.requant_compact import CompactRequantizer
from npugen.rtl.npu.requant_serial import SerialRequantizer
from npugen.sim.flow.pysim import recv, reset_mid_stream, send
from npugen.sim.models.npu import REQUANT_LATENCY
from npugen.sim.models.requant import float32_scale, quantize_multiplier, requantize

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
EDGE_ACC = [INT32_MIN, INT32_MIN + 1, -(1 << 24) - 3, -(1 << 24) - 1, -(1 << 24), -65537, -256,
            -129, -128, -127, -2, -1, 0, 1, 2, 127, 128, 255, 256, 65535, (1 << 24) + 1,
            (1 << 24) + 3, (1 << 25) + 5, (1 << 30) + 1, INT32_MAX - 1, INT32_MAX]
UNITS = pytest.mark.parametrize("unit", [Requantizer, SerialRequantizer],
                               ids=["pipelined", "serial"])
RANGES = [(-128, 127, 0), (-128, 127, -17), (0, 127, 5), (0, 255, 128), (0, 6, 0)]


def _params(mode, scale):
    if mode is Rounding.ORT:
        return float32_scale(scale)
    return quantize_multiplier(scale)


def _beats(cases):
    return [{"acc": acc, "multiplier": mult, "shift": shift, "zero_point": zp, "lo": lo,
             "hi": hi, "mode": int(mode)} for acc, mode, mult, shift, zp, lo, hi in cases]


def _expected(cases):
    return [int(requantize(mode.name.lower(), np.array([acc]), mult, shift, zp, lo, hi)[0])
            for acc, mode, mult, shift, zp, lo, hi in cases]


def _run(unit, cases, seed, idle=0.0, stall=0.0):
    dut = unit(8)
    rng = random.Random(seed)
    got = []

    async def producer(ctx):
        await send(ctx, dut.i, _beats(cases), rng, idle)

    async def consumer(ctx):
        for value in await recv(ctx, dut.o, len(cases), rng, stall):
            got.append(int(value))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return got


SCALES = [1.0, 0.5, 2.0 ** -24, 2.0 ** -31, 0.0039215689, 1.5, 3.0e-5, 7.9, 0.0123, 2.0 ** -8]


@UNITS
@pytest.mark.parametrize("mode", list(Rounding), ids=lambda m: m.name.lower())
def test_corner_cases(unit, mode, seed):
    cases = [(acc, mode, *_params(mode, scale), zp, lo, hi)
             for scale in SCALES for lo, hi, zp in RANGES for acc in EDGE_ACC]
    assert _run(unit, cases, seed) == _expected(cases)


@UNITS
def test_ort_ties_round_to_even(unit, seed):
    cases = [(acc, Rounding.ORT, *float32_scale(0.5), 0, -128, 127) for acc in range(-9, 10)]
    got = _run(unit, cases, seed)
    assert got == [int(np.rint(a / 2)) for a in range(-9, 10)]  # 0.5 -> 0, 1.5 -> 2, ...


@UNITS
def test_gemmlowp_shifts(unit, seed):
    """Every shift of the fixed-point modes, both signs, a left shift that wraps."""
    rng = np.random.default_rng(seed)
    cases = []
    for mode in (Rounding.TFLITE, Rounding.GEMMLOWP):
        for s in range(-31, 31):
            q = int(rng.integers(1 << 30, 1 << 31))
            for acc in [-(1 << 29) - 7, -1000, -3, 5, 999, (1 << 28) + 11, INT32_MAX]:
                cases.append((acc, mode, q, s, -3, -128, 127))
    assert _run(unit, cases, seed) == _expected(cases)


@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.4, 0.4)],
                         ids=["steady", "gaps", "backpressure", "both"])
@UNITS
def test_random(unit, traffic, seed):
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(300):
        mode = Rounding(int(rng.integers(0, 3)))
        scale = float(np.float32(2.0 ** rng.uniform(-30, 3)))
        acc = int(rng.integers(INT32_MIN, INT32_MAX, endpoint=True)) >> int(rng.integers(0, 31))
        lo, hi, zp = RANGES[int(rng.integers(0, len(RANGES)))]
        cases.append((acc, mode, *_params(mode, scale), zp, lo, hi))
    assert _run(unit, cases, seed, *traffic) == _expected(cases)


@UNITS
def test_latency(unit):
    """The first output appears LATENCY cycles after its input is taken."""
    dut = unit(8)
    seen = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.payload, _beats([(100, Rounding.TFLITE, 1 << 30, 1, 0, -128, 127)])[0])
        ctx.set(dut.i.valid, 1)
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for _ in range(unit.LATENCY + 2):
            seen.append(ctx.get(dut.o.valid))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen.index(1) == unit.LATENCY - 1 and sum(seen) == 1


def _back_to_back(dut, beats, cycles):
    """Offer three beats back to back; return their take cycles and ``(cycle, output)``s."""
    taken, out = [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        for cycle in range(cycles):
            ctx.set(dut.i.payload, beats[min(len(taken), 2)])
            ready, valid = ctx.get(dut.i.ready), ctx.get(dut.o.valid)
            if valid:
                out.append((cycle, ctx.get(dut.o.payload)))
            await ctx.tick()
            if ready and len(taken) < 3:
                taken.append(cycle)
                if len(taken) == 3:
                    ctx.set(dut.i.valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return taken, out


def test_serial_interval():
    """Back-to-back beats are taken INTERVAL cycles apart; their outputs follow each one."""
    beats = _beats([(a, Rounding.TFLITE, 1 << 30, 0, 0, -128, 127) for a in (10, 20, 30)])
    step = SerialRequantizer.INTERVAL
    taken, out = _back_to_back(SerialRequantizer(8), beats, 4 * step)
    assert taken == [0, step, 2 * step]
    want = zip(taken, (5, 10, 15), strict=True)
    assert out == [(c + SerialRequantizer.LATENCY, v) for c, v in want]


def test_reset_mid_stream(seed):
    """A reset with beats in the pipeline drops them all; the next stream is exact."""
    rng = np.random.default_rng(seed)
    before = [(int(a), Rounding.TFLITE, 1 << 30, 0, 0, -128, 127)
              for a in rng.integers(-99, 99, Requantizer.LATENCY - 1)]  # fills it
    after = [(int(a), Rounding.ORT, *float32_scale(0.25), 3, -128, 127)
             for a in rng.integers(-999, 999, 6)]
    got = reset_mid_stream(Requantizer(8), _beats(before), _beats(after), Requantizer.LATENCY)
    assert [int(v) for v in got] == _expected(after)


@pytest.mark.parametrize("mid", [0, 5, 17])
def test_serial_reset_mid_beat(mid, seed):
    """Reset with one result waiting at the output and the next ``mid`` steps into its work.

    Nothing comes out for LATENCY + 2 cycles after the reset; the next stream is exact.
    """
    from amaranth.hdl import Module, ResetInserter, Signal

    dut = SerialRequantizer(8)
    rst = Signal()
    top = Module()
    top.submodules.dut = ResetInserter(rst)(dut)
    rng = np.random.default_rng(seed)
    before = _beats([(int(a), Rounding.TFLITE, 1 << 30, 0, 0, -128, 127)
                     for a in rng.integers(-99, 99, 2)])
    after = [(int(a), Rounding.ORT, *float32_scale(0.25), 3, -128, 127)
             for a in rng.integers(-999, 999, 6)]
    got = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        for beat in before:  # the first is taken at once, the second once the first is done
            ctx.set(dut.i.payload, beat)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)
        for _ in range(mid):
            await ctx.tick()
        assert ctx.get(dut.o.valid)
        ctx.set(rst, 1)
        await ctx.tick()
        ctx.set(rst, 0)
        ctx.set(dut.o.ready, 1)
        for _ in range(SerialRequantizer.LATENCY + 2):
            assert not ctx.get(dut.o.valid)
            await ctx.tick()
        rng_ = random.Random(seed)
        await send(ctx, dut.i, _beats(after), rng_, 0.3)

    async def consumer(ctx):
        await ctx.tick().until(rst)
        got.extend(await recv(ctx, dut.o, len(after), random.Random(seed + 1), 0.3))

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_testbench(consumer)
    sim.run()
    assert [int(v) for v in got] == _expected(after)


@UNITS
@pytest.mark.parametrize("width", [1, 17, "8"])
def test_bad_width(unit, width):
    with pytest.raises((ValueError, TypeError), match="out_width"):
        unit(width)


def _ort_only(width):
    return SerialRequantizer(width, ort_only=True)


#: The two units that round only as ``ort``.
ORT_UNITS = pytest.mark.parametrize("ort_unit", [_ort_only, CompactRequantizer],
                                    ids=["serial_ort_only", "compact"])


@ORT_UNITS
def test_ort_only_corner_cases(ort_unit, seed):
    """The ``ort``-only units: every ORT corner case (int32 edges, every range)."""
    scales = SCALES + [2.0 ** -40, 2.0 ** 20, float(np.nextafter(np.float32(1), 2))]
    cases = [(acc, Rounding.ORT, *float32_scale(scale), zp, lo, hi)
             for scale in scales for lo, hi, zp in RANGES for acc in EDGE_ACC]
    assert _run(ort_unit, cases, seed) == _expected(cases)
    ties = [(acc, Rounding.ORT, *float32_scale(0.5), 0, -128, 127) for acc in range(-9, 10)]
    assert _run(ort_unit, ties, seed) == [int(np.rint(a / 2)) for a in range(-9, 10)]


def test_compact_longest_path(seed):
    """The compact unit's longest path ends inside its fixed interval.

    ``acc`` near 2**30 takes pass A's 7 single shifts, a 2**23 mantissa makes a 47-bit
    product (pass B: two steps of 8, seven of 1), and a 2**-30 scale leaves a right shift of
    23 (pass C: two of 8, seven of 1); neighbours on both sides of each tie.
    """
    cases = [(sign * (acc + d), Rounding.ORT, m, -53 + de, 0, -128, 127)
             for acc in ((1 << 30), (1 << 30) | (1 << 6)) for d in (-1, 0, 1, 63, 64, 65)
             for sign in (1, -1) for m in ((1 << 23), (1 << 24) - 1) for de in (0, 1, -1)]
    assert _run(CompactRequantizer, cases, seed, 0.3, 0.3) == _expected(cases)


@ORT_UNITS
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.4, 0.4)], ids=["steady", "both"])
def test_ort_only_random(ort_unit, traffic, seed):
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(400):
        scale = float(np.float32(2.0 ** rng.uniform(-34, 8)))
        acc = int(rng.integers(INT32_MIN, INT32_MAX, endpoint=True)) >> int(rng.integers(0, 31))
        lo, hi, zp = RANGES[int(rng.integers(0, len(RANGES)))]
        cases.append((acc, Rounding.ORT, *float32_scale(scale), zp, lo, hi))
    assert _run(ort_unit, cases, seed, *traffic) == _expected(cases)


def test_ort_only_interval_and_the_cycle_model():
    """Back-to-back beats ``interval`` cycles apart; the NPU's cycle model uses the same."""
    from npugen.sim.models import npu as model

    dut = _ort_only(8)
    assert (dut.interval, dut.latency) == (SerialRequantizer.INTERVAL_ORT,
                                           SerialRequantizer.INTERVAL_ORT + 1) == (22, 23)
    assert (SerialRequantizer.INTERVAL, SerialRequantizer.INTERVAL_ORT) == \
        (model.SERIAL_INTERVAL, model.SERIAL_INTERVAL_ORT)
    beats = _beats([(a, Rounding.ORT, *float32_scale(0.5), 0, -128, 127) for a in (10, 20, 30)])
    step = dut.interval
    taken, out = _back_to_back(dut, beats, 4 * step)
    assert taken == [0, step, 2 * step]
    assert out == [(c + dut.latency, v) for c, v in zip(taken, (5, 10, 15), strict=True)]


def test_compact_interval_and_the_cycle_model():
    """The compact unit: back-to-back beats 34 cycles apart, as the NPU's cycle model says."""
    from npugen.sim.models import npu as model

    dut = CompactRequantizer(8)
    assert (dut.interval, dut.latency) == (CompactRequantizer.INTERVAL,
                                           CompactRequantizer.LATENCY) == (34, 35)
    assert CompactRequantizer.INTERVAL == model.SERIAL_INTERVAL_COMPACT
    beats = _beats([(a, Rounding.ORT, *float32_scale(0.5), 0, -128, 127) for a in (10, 20, 30)])
    taken, out = _back_to_back(dut, beats, 4 * dut.interval)
    assert taken == [0, dut.interval, 2 * dut.interval]
    assert out == [(c + dut.latency, v) for c, v in zip(taken, (5, 10, 15), strict=True)]


def test_ort_only_is_a_bool():
    with pytest.raises(TypeError, match="ort_only"):
        SerialRequantizer(8, ort_only=1)


def test_the_cycle_model_knows_the_latency():
    """The simulator's cycle model counts the pipelined requantizer's stages.

    (A latency change must change both.)
    """
    assert REQUANT_LATENCY == Requantizer.LATENCY
