"""cocotb bench for the Winograd F(2x2, 3x3) tile engine, word by word against direct conv.

Environment: ``DUT_PARAMS`` (WinogradParams JSON), ``SEED`` (logged), optional
``NPUGEN_RESULT`` (JSON metrics of the demo test).
"""

import cocotb

from npugen.rtl.winograd import WinogradF23, WinogradParams
from npugen.sim.models.winograd import conv2d_direct, filter_stream

from .common import TRAFFIC, bench_setup, check_words, random_values, write_result
from .streams import Sink, Source, StreamEngine


def _setup(dut):
    params, rng, nrng = bench_setup(dut, WinogradParams)
    return params, WinogradF23(params), rng, nrng


class Harness:
    """Ports of a WinogradF23 and the expected output tiles."""

    def __init__(self, dut, eng, rng, traffic):
        idle, stall = TRAFFIC[traffic]
        self.p = eng.params
        self.dut = dut
        self.cfg = Source(dut, "i_cfg", eng.cfg_layout, idle)
        self.filt = Source(dut, "i_filter", eng.filter_layout, idle)
        self.tile = Source(dut, "i_tile", eng.tile_layout, idle)
        self.o = Sink(dut, "o", eng.out_layout, stall)
        self.engine = StreamEngine(dut, rng, [self.cfg, self.filt, self.tile], [self.o])
        self.expected = []

    def layer(self, w, tiles):
        """Queue a layer: configuration, K*C filters, then the tiles; record expectations."""
        p = self.p
        k, c = w.shape[:2]
        self.cfg.put({"channels": c, "filters": k})
        self.filt.put(*filter_stream(p, w))
        for n, t in enumerate(tiles):
            self.tile.put(*[{"d": [int(v) for v in t[:, :, ch].flatten()], "last": int(ch == c - 1),
                             "end": int(ch == c - 1 and n == len(tiles) - 1)}
                            for ch in range(c)])
            y = conv2d_direct(p, t, w)
            self.expected += [{"y": [int(v) for v in y[:, :, i].flatten()], "last": int(i == k - 1)}
                              for i in range(k)]

    def done(self):
        """Return True once every expected tile has been received."""
        return len(self.o.got) >= len(self.expected)


def _data(p, nrng, shape, kind="random"):
    return random_values(nrng, p.data_width, shape, kind)


def _layers(p, nrng, count, tiles=4):
    out = []
    shapes = [(1, 1), (min(3, p.c_max), min(4, p.k_max)), (p.c_max, 1), (p.c_max, p.k_max)]
    kinds = ["random", "min", "max", "random"]
    for n in range(count):
        c, k = shapes[n % len(shapes)]
        kind = kinds[n % len(kinds)]
        out.append((_data(p, nrng, (k, c, 3, 3), kind), _data(p, nrng, (tiles, 4, 4, c), kind)))
    return out


@cocotb.test()
@cocotb.parametrize(traffic=list(TRAFFIC))
async def test_layers(dut, traffic):
    """Several layers back to back: C, K from 1 to the maximum, random and extreme data."""
    p, eng, rng, nrng = _setup(dut)
    h = Harness(dut, eng, rng, traffic)
    await h.engine.start()
    for w, tiles in _layers(p, nrng, 4):
        # Queued at once: `end` keeps each layer's beats apart across the ports.
        h.layer(w, tiles)
    await h.engine.run(h.done)
    await h.engine.idle(5)
    check_words(dut, h.o.got, h.expected, f"layers ({traffic})")
    assert int(dut.error.value) == 0


@cocotb.test()
@cocotb.parametrize(when=["early", "late"])
async def test_reset_mid_stream(dut, when):
    """Reset while filters load or tiles compute: nothing stale, the next layer is exact."""
    p, eng, rng, nrng = _setup(dut)
    h = Harness(dut, eng, rng, "both")
    await h.engine.start()
    w, tiles = _layers(p, nrng, 4)[3]
    h.layer(w, tiles)
    await h.engine.idle(rng.randrange(2, 8) if when == "early" else
                        rng.randrange(p.c_max * 2, p.c_max * p.k_max * 2 + 20))
    before = list(h.o.got)
    assert before == h.expected[:len(before)], "output before reset is not a model prefix"
    await h.engine.reset(rng.randrange(1, 4))
    h.o.got.clear()
    h.expected.clear()
    await h.engine.idle(40)
    assert not h.o.got, f"{len(h.o.got)} stale tiles after reset"
    assert int(dut.error.value) == 0
    w, tiles = _layers(p, nrng, 2)[1]
    h.layer(w, tiles)
    await h.engine.run(h.done)
    await h.engine.idle(5)
    check_words(dut, h.o.got, h.expected, f"after reset ({when})")


@cocotb.test()
async def test_malformed_streams(dut):
    """A misplaced `last`, or a bad configuration, raises the sticky error flag."""
    p, eng, rng, nrng = _setup(dut)
    h = Harness(dut, eng, rng, "steady")
    await h.engine.start()
    if p.c_max > 1:
        c = min(3, p.c_max)
        h.layer(_data(p, nrng, (1, c, 3, 3)), _data(p, nrng, (2, 4, 4, c)))
        h.tile.queue[0]["last"] = 1  # channel 0 claims to end its tile
        # The channel counter, not `last`, decides where words go: still two whole tiles.
        await h.engine.run(h.done)
        await h.engine.idle(5)
        assert int(dut.error.value) == 1, "a misplaced last must raise the error flag"
        await h.engine.reset()
        assert int(dut.error.value) == 0, "reset clears the error flag"
    h.cfg.put({"channels": 0, "filters": 1})
    await h.engine.idle(5)
    assert int(dut.error.value) == 1, "channels = 0 must raise the error flag"


@cocotb.test()
async def test_timing(dut):
    """One (filter, channel) pair per cycle: tiles arrive every K*C cycles, exact latency."""
    p, eng, rng, nrng = _setup(dut)
    h = Harness(dut, eng, rng, "steady")
    await h.engine.start()
    c, k = min(3, p.c_max), min(2, p.k_max)
    n = 6
    h.layer(_data(p, nrng, (k, c, 3, 3)), _data(p, nrng, (n, 4, 4, c)))
    await h.engine.run(h.done)
    check_words(dut, h.o.got, h.expected, "timing")
    gaps = {b - a for a, b in zip(h.o.cycles, h.o.cycles[1:], strict=False)}
    assert gaps == {c}, f"output spacing {sorted(gaps)}, expected every {c} cycles"
    span = h.o.cycles[-1] - h.o.cycles[0] + c
    assert span == n * k * c, f"{n} tiles x {k} filters x {c} channels took {span} cycles"


@cocotb.test()
async def test_demo(dut):
    """Short self-check for `npugen demo`: a random layer of 16 tiles."""
    p, eng, rng, nrng = _setup(dut)
    h = Harness(dut, eng, rng, "steady")
    await h.engine.start()
    c, k, n = p.c_max, min(4, p.k_max), 16
    h.layer(_data(p, nrng, (k, c, 3, 3)), _data(p, nrng, (n, 4, 4, c)))
    start = h.engine.cycle
    await h.engine.run(h.done)
    cycles = h.engine.cycle - start
    check_words(dut, h.o.got, h.expected, "demo")
    write_result({"cycles": cycles, "macs": n * k * c * 36})
