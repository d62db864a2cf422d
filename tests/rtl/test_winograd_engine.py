"""The Winograd tile engine in the Amaranth simulator, bit-exact against direct convolution."""

import random

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from npugen.rtl.winograd import FilterTransform2D, OutputTransform2D, WinogradF23, WinogradParams
from npugen.rtl.winograd.ports import (
    engine_drain_cycles,
    engine_latency,
    filter_transform_cycles,
)
from npugen.sim.flow.pysim import cycles_until, recv, send, simulate
from npugen.sim.formats.winograd import engine_cfg_beat, filter_beats, tile_beats
from npugen.sim.models.winograd import conv2d_direct


def expected_tiles(p, tiles, w):
    out = []
    for t in tiles:
        y = conv2d_direct(p, t, w)  # valid conv of a 4x4 tile: (2, 2, K)
        out += [([int(v) for v in y[:, :, k].flatten()], int(k == w.shape[0] - 1))
                for k in range(w.shape[0])]
    return out


def run_engine(p, w, tiles, seed, idle=0.0, stall=0.0, cfg=None, addressed=False):
    """``addressed``: the filters with their store addresses, in a random order."""
    rng = random.Random(seed)
    k, c = w.shape[:2]
    dut = WinogradF23(p, addressed=addressed)
    got = []
    beats = filter_beats(p, w)
    if addressed:
        beats = [{**beat, "addr": n} for n, beat in enumerate(beats)]
        rng.shuffle(beats)

    async def setup(ctx):
        await send(ctx, dut.i_cfg, [cfg or engine_cfg_beat(p, c, k)])
        await send(ctx, dut.i_filter, beats, rng, idle)

    async def feed(ctx):
        await send(ctx, dut.i_tile, tile_beats(p, tiles), rng, idle)

    async def drain(ctx):
        got.extend(await recv(ctx, dut.o, len(tiles) * k, rng, stall, timeout=20_000))
        await ctx.tick()
        got.append(ctx.get(dut.error))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in (setup, feed, drain):
        sim.add_testbench(bench)
    sim.run()
    *outs, error = got
    return [([int(v) for v in r.y], int(r.last)) for r in outs], error


@pytest.mark.parametrize("filter_input", ["raw", "transformed"])
@pytest.mark.parametrize(("c", "k"), [(1, 1), (3, 4), (16, 1), (5, 2)])
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.3, 0.3), (0.1, 0.7)],
                         ids=lambda t: f"idle{t[0]}-stall{t[1]}")
def test_engine_random(filter_input, c, k, traffic, seed):
    p = WinogradParams(c_max=16, k_max=4, filter_input=filter_input)
    nrng = np.random.default_rng(seed)
    w = nrng.integers(-128, 128, (k, c, 3, 3))
    tiles = nrng.integers(-128, 128, (5, 4, 4, c))
    got, error = run_engine(p, w, tiles, seed, *traffic)
    assert got == expected_tiles(p, tiles, w)
    assert not error


@pytest.mark.parametrize("filter_input", ["raw", "transformed"])
@pytest.mark.parametrize(("c", "k"), [(3, 4), (16, 2), (1, 1)])
def test_addressed_filters_in_any_order(filter_input, c, k, seed):
    """``addressed``: each filter carries its place ``k * C + c`` (the NPU's loader)."""
    p = WinogradParams(c_max=16, k_max=4, filter_input=filter_input)
    nrng = np.random.default_rng([seed, c, k])
    w = nrng.integers(-128, 128, (k, c, 3, 3))
    tiles = nrng.integers(-128, 128, (3, 4, 4, c))
    got, error = run_engine(p, w, tiles, seed, 0.3, 0.3, addressed=True)
    assert got == expected_tiles(p, tiles, w)
    assert not error


@pytest.mark.parametrize("value", [-128, 127])
def test_engine_extremes_and_wrapping_output(value, seed):
    p = WinogradParams(c_max=16, k_max=2, acc_width=16)
    w = np.full((2, 16, 3, 3), value)
    tiles = np.full((2, 4, 4, 16), -128)
    got, error = run_engine(p, w, tiles, seed, 0.2, 0.2)
    assert got == expected_tiles(p, tiles, w)
    assert abs(16 * 9 * 128 * value) >= 1 << 15  # the 16-bit output really wraps
    assert not error


@pytest.mark.parametrize("cfg", [{"channels": 0, "filters": 1}, {"channels": 17, "filters": 1},
                                 {"channels": 1, "filters": 0}, {"channels": 1, "filters": 5}])
def test_bad_configuration_raises_error(cfg):
    p = WinogradParams(c_max=16, k_max=4)
    dut = WinogradF23(p)
    seen = []

    async def bench(ctx):
        await send(ctx, dut.i_cfg, [cfg])
        await ctx.tick()
        seen.append((ctx.get(dut.error), ctx.get(dut.i_filter.ready), ctx.get(dut.i_tile.ready)))
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # Sticky error, and the engine stays unconfigured: it accepts no filters or tiles.
    assert seen == [(1, 0, 0)]


def test_misplaced_last_raises_error_and_stays_in_bounds(seed):
    p = WinogradParams(c_max=4, k_max=1)
    nrng = np.random.default_rng(seed)
    w = nrng.integers(-128, 128, (1, 3, 3, 3))
    tiles = nrng.integers(-128, 128, (2, 4, 4, 3))
    dut = WinogradF23(p)
    flags = []

    async def bench(ctx):
        await send(ctx, dut.i_cfg, [{"channels": 3, "filters": 1}])
        await send(ctx, dut.i_filter, filter_beats(p, w))
        beats = tile_beats(p, tiles)
        beats[1]["last"] = 1  # early last
        await send(ctx, dut.i_tile, beats)
        for _ in range(20):
            await ctx.tick()
        flags.append(ctx.get(dut.error))

    async def drain(ctx):
        await recv(ctx, dut.o, 2)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_testbench(drain, background=True)
    sim.run()
    assert flags == [1]


@pytest.mark.parametrize("c", [1, 3, 16])
def test_latency_pinned(c, seed):
    """From a tile's last beat to its first output word: C + 9 cycles.

    The ``latency`` property (11, published in the manifest) is the pipeline after the last
    channel's issue (+2 in issue 16: the multiplier input registers and the registered
    output-transform column pass). The input transform's registered column pass adds no
    cycle: the last channel's read takes the word being written.
    """
    p = WinogradParams(c_max=16, k_max=4)
    dut = WinogradF23(p)
    assert dut.latency == 11
    nrng = np.random.default_rng(seed)
    w = nrng.integers(-128, 128, (1, c, 3, 3))
    beats = tile_beats(p, nrng.integers(-128, 128, (1, 4, 4, c)))
    measured = []

    async def bench(ctx):
        await send(ctx, dut.i_cfg, [engine_cfg_beat(p, c, 1)])
        await send(ctx, dut.i_filter, filter_beats(p, w))
        await ctx.tick().repeat(20)
        ctx.set(dut.o.ready, 1)
        measured.append(await cycles_until(ctx, dut.i_tile, beats,
                                           lambda ctx: ctx.get(dut.o.valid)))

    simulate(dut, bench)
    assert measured == [c + 9]


@pytest.mark.parametrize("primitives", ["inferred", "ecp5"])
@pytest.mark.parametrize("filter_input", ["raw", "transformed"])
def test_published_cycles_follow_the_transforms(primitives, filter_input):
    """The cycle counts in ``ports`` (the NPU's cycle model reads them) track the transforms.

    The filter store writes a raw filter ``FilterTransform2D.latency`` cycles after taking
    it, and the tile MAC drains a product through the channel sum, the output transform
    and the output register; with ``primitives=ecp5`` both transforms are split. The
    result slots must also cover the results in flight (a guard: with fewer, K*C = 1
    layers would lose throughput).
    """
    p = WinogradParams(primitives=primitives, filter_input=filter_input)
    split = primitives == "ecp5"
    ft = FilterTransform2D(p, registered=True, split=split)
    ot = OutputTransform2D(p.m_width, registered=True, split=split)
    for dut in (ft, ot):
        Fragment.get(dut, None)  # elaborated: only their latencies are needed here
    assert filter_transform_cycles(p) == (ft.latency if filter_input == "raw" else 0)
    # the channel sum, the transform, its last pass's register, the write into a slot
    assert engine_drain_cycles(p) == 1 + ot.latency + 1 + 1
    assert engine_latency(p) <= WinogradF23.BUFFER_DEPTH
