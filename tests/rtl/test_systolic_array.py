"""Small arrays in the Amaranth simulator: fast, bit-exact, under random gaps and stalls."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from npugen.rtl.systolic import SystolicParams, systolic_array
from npugen.rtl.systolic.ports import ws_broadcast_pipeline_cycles, ws_pipeline_cycles
from npugen.rtl.systolic.weight_stationary import WsArray
from npugen.sim.flow.pysim import recv, send
from npugen.sim.models.systolic import os_tile, ws_tile

SHAPES = [(1, 1), (2, 3), (3, 2), (4, 4)]
TRAFFIC = [(0.0, 0.0), (0.3, 0.3), (0.7, 0.1), (0.1, 0.7)]


def _simulate(dut, benches):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in benches:
        sim.add_testbench(bench)
    sim.run()


#: WsArray's (psum, buffered, broadcast) variants: the block's own, and the NPU's (no psum,
#: no buffer; rows broadcast or forwarded PE to PE).
WS_VARIANTS = {"default": (True, True, False), "no_psum": (False, True, False),
               "npu": (False, False, False), "broadcast": (False, False, True)}
#: An unbuffered array's consumer takes every result: no stalls on o.
WS_CASES = [(shape, traffic, variant) for variant in WS_VARIANTS for shape in SHAPES
            for traffic in (TRAFFIC if WS_VARIANTS[variant][1] else
                            [(idle, 0.0) for idle in (0.0, 0.3, 0.7)])]


@pytest.mark.parametrize("shape,traffic,variant", WS_CASES,
                         ids=[f"{s[0]}x{s[1]}-idle{t[0]}-stall{t[1]}-{v}" for s, t, v in WS_CASES])
def test_ws_array(shape, traffic, variant, seed):
    """Every result word of each variant, under gaps and stalls.

    With ``psum=False`` the random partial sums that go in must not show in the results.
    """
    psum, buffered, broadcast = WS_VARIANTS[variant]
    rows, cols = shape
    p = SystolicParams(rows=rows, cols=cols, dataflow="ws")
    nrng = np.random.default_rng(seed)
    rng = random.Random(seed)
    tiles = [(nrng.integers(-128, 128, (rows, cols)), nrng.integers(-128, 128, (m, rows)),
              nrng.integers(-(1 << 31), 1 << 31, (m, cols))) for m in (1, 5, 2, 7)]
    dut = systolic_array(p) if variant == "default" else WsArray(
        p, psum=psum, buffered=buffered, broadcast=broadcast)
    got = []

    async def weights(ctx):
        if not broadcast:
            await send(ctx, dut.i_weight, [[int(v) for v in r] for w, _, _ in tiles for r in w],
                       rng, traffic[0])
            return
        # The broadcast array takes a tile's beats in consecutive cycles from its first
        # vector on: gaps only before a tile's first beat.
        for w, _, _ in tiles:
            while rng.random() < traffic[0]:
                await ctx.tick()
            await send(ctx, dut.i_weight, [[int(v) for v in r] for r in w])

    async def acts(ctx):
        beats = [{"a": [int(v) for v in a[i]], "psum": [int(v) for v in ps[i]],
                  "last": int(i == len(a) - 1)} for _, a, ps in tiles for i in range(len(a))]
        await send(ctx, dut.i_act, beats, rng, traffic[0])

    async def results(ctx):
        n = sum(len(a) for _, a, _ in tiles)
        got.extend(await recv(ctx, dut.o, n, rng, traffic[1]))

    _simulate(dut, [weights, acts, results])
    expected = np.concatenate([ws_tile(p, a, w, ps if psum else 0 * ps)
                               for w, a, ps in tiles]).tolist()
    assert [[int(v) for v in r.y] for r in got] == expected
    lasts = [int(r.last) for r in got]
    assert lasts == [int(i == len(a) - 1) for _, a, _ in tiles for i in range(len(a))]


def test_ws_array_unbuffered_ignores_ready(seed):
    """``buffered=False``: every result leaves in its cycle, whatever ``o.ready`` does."""
    p = SystolicParams(rows=3, cols=2, dataflow="ws")
    nrng = np.random.default_rng(seed)
    rng = random.Random(seed)
    w = nrng.integers(-128, 128, (3, 2))
    a = nrng.integers(-128, 128, (9, 3))
    dut = WsArray(p, psum=False, buffered=False)
    got = []

    async def feed(ctx):
        await send(ctx, dut.i_weight, [[int(v) for v in r] for r in w], rng, 0.3)
        await send(ctx, dut.i_act, [{"a": [int(v) for v in row], "psum": [0, 0],
                                     "last": int(i == len(a) - 1)} for i, row in enumerate(a)],
                   rng, 0.3)

    async def watch(ctx):
        for _ in range(200):
            ctx.set(dut.o.ready, rng.random() < 0.5)  # random, and ignored
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid:
                got.append([int(v) for v in payload.y])

    _simulate(dut, [feed, watch])
    assert got == ws_tile(p, a, w, np.zeros((len(a), 2), dtype=np.int64)).tolist()


@pytest.mark.parametrize("flag", ["psum", "buffered", "broadcast"])
def test_ws_array_flags_are_checked(flag):
    with pytest.raises(TypeError, match=f"{flag} must be a bool"):
        WsArray(SystolicParams(rows=2, cols=2), **{flag: 1})


def test_ws_broadcast_needs_the_npu_variant_and_even_ice40_columns():
    with pytest.raises(ValueError, match="broadcast=True needs psum=False and buffered=False"):
        WsArray(SystolicParams(rows=2, cols=2), broadcast=True)
    with pytest.raises(ValueError, match="even cols"):
        WsArray(SystolicParams(rows=2, cols=3, multiplier="ice40"), psum=False,
                buffered=False, broadcast=True)


@pytest.mark.parametrize("broadcast", [False, True], ids=["forwarded", "broadcast"])
def test_ws_unbuffered_latency(broadcast):
    """The first result leaves exactly ``latency`` cycles after its vector's handshake.

    ``ws_pipeline_cycles``, or ``ws_broadcast_pipeline_cycles``: the NPU's cycle model
    uses them.
    """
    p = SystolicParams(rows=4, cols=4, dataflow="ws")
    dut = WsArray(p, psum=False, buffered=False, broadcast=broadcast)
    want = (ws_broadcast_pipeline_cycles if broadcast else ws_pipeline_cycles)(p)
    assert dut.latency == want
    if broadcast:  # rows, and the product (the fabric operand register and the multiplier)
        assert want == 6
    seen = {}

    async def weights(ctx):  # (the broadcast array takes them with the first vector)
        await send(ctx, dut.i_weight, [[1, 2, 3, 4]] * 4)

    async def bench(ctx):
        if not broadcast:
            await ctx.tick().until(dut.i_weight.ready == 0)  # the tile is loaded
            await ctx.tick().repeat(8)
        ctx.set(dut.i_act.payload.a, [1, 1, 1, 1])
        ctx.set(dut.i_act.payload.last, 1)
        ctx.set(dut.i_act.valid, 1)
        await ctx.tick().until(dut.i_act.ready)
        ctx.set(dut.i_act.valid, 0)
        for k in range(1, 40):
            _, _, valid, y = await ctx.tick().sample(dut.o.valid, dut.o.payload.y)
            if valid:
                seen[k] = [int(v) for v in y]
                return

    _simulate(dut, [weights, bench])
    assert seen == {want: [4, 8, 12, 16]}


@pytest.mark.parametrize("traffic", TRAFFIC, ids=lambda t: f"idle{t[0]}-stall{t[1]}")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_os_array(shape, traffic, seed):
    rows, cols = shape
    p = SystolicParams(rows=rows, cols=cols, dataflow="os")
    nrng = np.random.default_rng(seed)
    rng = random.Random(seed)
    tiles = [(nrng.integers(-128, 128, (rows, k)), nrng.integers(-128, 128, (k, cols)))
             for k in (1, 5, 2, 7, 1, 1)]
    dut = systolic_array(p)
    got = []

    async def operands(ctx):
        beats = [{"a": [int(v) for v in a[:, k]], "b": [int(v) for v in b[k]],
                  "last": int(k == a.shape[1] - 1)} for a, b in tiles for k in range(a.shape[1])]
        await send(ctx, dut.i, beats, rng, traffic[0])

    async def results(ctx):
        got.extend(await recv(ctx, dut.o, rows * len(tiles), rng, traffic[1]))

    _simulate(dut, [operands, results])
    expected = np.concatenate([os_tile(p, a, b) for a, b in tiles]).tolist()
    assert [[int(v) for v in r.y] for r in got] == expected
    assert [int(r.last) for r in got] == [int(r == rows - 1) for _ in tiles for r in range(rows)]
