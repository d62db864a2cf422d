"""The convolution layer in the Amaranth simulator: sequences of layers, 1 to 3 tile engines."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from npugen.rtl.winograd import WinogradConv, WinogradParams
from npugen.sim.flow.pysim import cycles_until, recv, send, simulate
from npugen.sim.formats.winograd import cfg_beat, filter_beats, out_beats, pixel_beats
from npugen.sim.models.winograd import conv2d_direct


def run_layers(p, layers, seed, idle, stall, fill=None):
    """Run ``layers`` back to back; data is random, or the constant ``fill``."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)

    def make(shape):
        return np.full(shape, fill) if fill is not None else nrng.integers(-128, 128, shape)
    data, expected = [], []
    for h, w, c, k, padding in layers:
        x = make((h, w, c))
        f = make((k, c, 3, 3))
        data.append((h, w, c, k, padding, x, f))
        expected += out_beats(p, conv2d_direct(p, x, f, padding))
    dut = WinogradConv(p)
    got = []

    async def config_and_filters(ctx):
        for h, w, c, k, padding, _, f in data:
            await send(ctx, dut.i_cfg, [cfg_beat(p, h, w, c, k, padding)])
            await send(ctx, dut.i_filter, filter_beats(p, f), rng, idle)

    async def pixels(ctx):
        for *_, x, _ in data:
            await send(ctx, dut.i_pixel, pixel_beats(p, x), rng, idle)

    async def results(ctx):
        got.extend(await recv(ctx, dut.o, len(expected), rng, stall, timeout=200_000))
        for _ in range(5):
            await ctx.tick()
        got.append(ctx.get(dut.error))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in (config_and_filters, pixels, results):
        sim.add_testbench(bench)
    sim.run()
    *beats, error = got
    received = [{"y": [int(v) if (b.mask >> q) & 1 else None for q, v in enumerate(b.y)],
                 "mask": int(b.mask), "last": int(b.last)} for b in beats]
    return received, expected, error


LAYERS = [(4, 4, 1, 1, "valid"), (5, 7, 3, 2, "same"), (3, 3, 2, 3, "valid"),
          (16, 16, 4, 3, "same"), (1, 1, 1, 1, "same"), (7, 5, 2, 1, "valid"), (2, 9, 4, 2, "same")]


@pytest.mark.parametrize("engines", [1, 2, 3])
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.3, 0.3)], ids=["steady", "both"])
def test_layer_sequence(engines, traffic, seed):
    """Odd sizes, 1x1 and 3x3 maps, fewer tiles than engines, back-to-back layers."""
    p = WinogradParams(c_max=4, k_max=3, h_max=16, w_max=16, engines=engines)
    received, expected, error = run_layers(p, LAYERS, seed, *traffic)
    assert received == expected
    assert not error


def test_a_tall_narrow_layer_after_a_tall_one(seed):
    """The next layer's pixels stream in while its tiles are still being counted.

    Counting takes about H'/2 cycles after the configuration, and pixels are taken from
    when the engines are configured; a 64 x 3 map brings more than six rows in that time.
    The line buffer's room must then be that of a window at row 0, not the last window of
    the layer before (row 61 here: a newer row overwrote row 0 of the map).
    """
    p = WinogradParams(c_max=1, k_max=1, h_max=64, w_max=4)
    received, expected, error = run_layers(p, [(64, 3, 1, 1, "same")] * 2, seed, 0.0, 0.0)
    assert received == expected
    assert not error


@pytest.mark.parametrize("value", [-128, 127])
def test_extremes_with_wrapping_output(value, seed):
    """Constant -128 / 127 maps and filters, 16-bit outputs that really wrap."""
    p = WinogradParams(c_max=4, k_max=2, h_max=8, w_max=8, acc_width=16, engines=2)
    received, expected, error = run_layers(p, [(6, 5, 4, 2, "same")], seed, 0.2, 0.2,
                                           fill=value)
    assert 4 * 9 * 128 * 128 > 1 << 15  # interior pixels overflow 16 bits
    assert received == expected and not error


@pytest.mark.parametrize(("c", "k"), [(1, 1), (3, 2), (4, 3)])
def test_one_tile_latency_pinned(c, k, seed):
    """A 3x3 valid layer (one output tile) ends 16 + C + K*C cycles after its last pixel.

    That is 5 + the tile engine's latency (11) + C + K*C, as the manifest says.
    """
    p = WinogradParams(c_max=4, k_max=3, h_max=8, w_max=8)
    dut = WinogradConv(p)
    assert dut.engine.latency == 11
    nrng = np.random.default_rng(seed)
    x = nrng.integers(-128, 128, (3, 3, c))
    f = nrng.integers(-128, 128, (k, c, 3, 3))
    measured = []

    async def bench(ctx):
        await send(ctx, dut.i_cfg, [cfg_beat(p, 3, 3, c, k, "valid")])
        await send(ctx, dut.i_filter, filter_beats(p, f))
        ctx.set(dut.o.ready, 1)
        edges = await cycles_until(
            ctx, dut.i_pixel, pixel_beats(p, x),
            lambda ctx: ctx.get(dut.o.valid) and ctx.get(dut.o.payload.last))
        measured.append(edges + 1)  # counting the cycle of the last beat itself

    simulate(dut, bench)
    assert measured == [16 + c + k * c]
