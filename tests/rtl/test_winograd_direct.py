"""The direct-convolution baseline engine is itself bit-exact (it is only a yardstick)."""

import random

import numpy as np
from amaranth.sim import Simulator

from npugen.rtl.winograd import WinogradParams
from npugen.rtl.winograd.direct import DirectConvTile
from npugen.sim.flow.pysim import recv, send
from npugen.sim.models.winograd import conv2d_direct


def test_direct_tile_engine(seed):
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    p = WinogradParams()
    c = 5
    tiles = [(nrng.integers(-128, 128, (4, 4, c)), nrng.integers(-128, 128, (1, c, 3, 3)))
             for _ in range(6)]
    tiles.append((np.full((4, 4, c), -128), np.full((1, c, 3, 3), -128)))
    dut = DirectConvTile(p)
    got = []

    async def feed(ctx):
        beats = [{"d": [int(v) for v in x[:, :, ch].flatten()],
                  "g": [int(v) for v in w[0, ch].flatten()], "last": int(ch == c - 1)}
                 for x, w in tiles for ch in range(c)]
        await send(ctx, dut.i, beats, rng, 0.3)

    async def drain(ctx):
        got.extend(await recv(ctx, dut.o, len(tiles), rng, 0.3))
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed)
    sim.add_testbench(drain)
    sim.run()
    expected = [conv2d_direct(p, x, w)[:, :, 0].flatten().tolist() for x, w in tiles]
    assert [[int(v) for v in r] for r in got] == expected
