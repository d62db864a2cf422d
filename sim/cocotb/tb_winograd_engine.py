"""cocotb bench for the Winograd F(2x2, 3x3) tile engine, word by word against direct conv.

Environment (see :class:`~.bench.Bench`): ``DUT_PARAMS``, ``SEED`` (logged),
``NPUGEN_PART=engine``, optional ``NPUGEN_RESULT`` (JSON metrics of the demo test).
"""

import cocotb

from ..formats.winograd import engine_cfg_beat, engine_out_beats, filter_beats, tile_beats
from ..models.winograd import conv2d_direct
from .bench import TRAFFIC, Bench, write_result
from .bench import random_values as _values


class EngineBench(Bench):
    """A WinogradF23: layers of tiles in, the expected output tiles out."""

    def __init__(self, dut, traffic):
        super().__init__(dut, traffic)
        self.p = self.params

    def layer(self, w, tiles):
        """Queue a layer: configuration, K*C filters, then the tiles; expect their outputs."""
        k, c = w.shape[:2]
        self.i_cfg.put(engine_cfg_beat(self.p, c, k))
        self.i_filter.put(*filter_beats(self.p, w))
        self.i_tile.put(*tile_beats(self.p, tiles))
        for t in tiles:
            self.expect("o", engine_out_beats(self.p, conv2d_direct(self.p, t, w)))


def _data(p, nrng, shape, kind="random"):
    return _values(nrng, p.data_width, shape, kind)


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
    h = EngineBench(dut, traffic)
    await h.start()
    for w, tiles in _layers(h.p, h.nrng, 4):
        # Queued at once: `end` keeps each layer's beats apart across the ports.
        h.layer(w, tiles)
    await h.finish(f"layers ({traffic})")
    assert int(dut.error.value) == 0


@cocotb.test()
@cocotb.parametrize(when=["early", "late"])
async def test_reset_mid_stream(dut, when):
    """Reset while filters load or tiles compute: nothing stale, the next layer is exact."""
    h = EngineBench(dut, "both")
    p, rng, nrng = h.p, h.rng, h.nrng
    await h.start()
    w, tiles = _layers(p, nrng, 4)[3]
    h.layer(w, tiles)
    await h.engine.idle(rng.randrange(2, 8) if when == "early" else
                        rng.randrange(p.c_max * 2, p.c_max * p.k_max * 2 + 20))
    await h.reset_mid_stream(quiet=40)
    assert int(dut.error.value) == 0
    w, tiles = _layers(p, nrng, 2)[1]
    h.layer(w, tiles)
    await h.finish(f"after reset ({when})")


@cocotb.test()
async def test_malformed_streams(dut):
    """A misplaced `last`, or a bad configuration, raises the sticky error flag."""
    h = EngineBench(dut, "steady")
    p, nrng = h.p, h.nrng
    await h.start()
    if p.c_max > 1:
        c = min(3, p.c_max)
        h.layer(_data(p, nrng, (1, c, 3, 3)), _data(p, nrng, (2, 4, 4, c)))
        h.i_tile.queue[0]["last"] = 1  # channel 0 claims to end its tile
        # The channel counter, not `last`, decides where words go: still two whole tiles.
        await h.run()
        await h.engine.idle(5)
        assert int(dut.error.value) == 1, "a misplaced last must raise the error flag"
        await h.engine.reset()
        assert int(dut.error.value) == 0, "reset clears the error flag"
    h.i_cfg.put(engine_cfg_beat(p, 0, 1))
    await h.engine.idle(5)
    assert int(dut.error.value) == 1, "channels = 0 must raise the error flag"


@cocotb.test()
async def test_timing(dut):
    """One (filter, channel) pair per cycle: tiles arrive every K*C cycles, exact latency."""
    h = EngineBench(dut, "steady")
    p, nrng = h.p, h.nrng
    await h.start()
    c, k = min(3, p.c_max), min(2, p.k_max)
    n = 6
    h.layer(_data(p, nrng, (k, c, 3, 3)), _data(p, nrng, (n, 4, 4, c)))
    await h.finish("timing")
    gaps = {b - a for a, b in zip(h.o.cycles, h.o.cycles[1:], strict=False)}
    assert gaps == {c}, f"output spacing {sorted(gaps)}, expected every {c} cycles"
    span = h.o.cycles[-1] - h.o.cycles[0] + c
    assert span == n * k * c, f"{n} tiles x {k} filters x {c} channels took {span} cycles"


@cocotb.test()
async def test_demo(dut):
    """Short self-check for `npugen demo`: a random layer of 16 tiles."""
    h = EngineBench(dut, "steady")
    p, nrng = h.p, h.nrng
    await h.start()
    c, k, n = p.c_max, min(4, p.k_max), 16
    h.layer(_data(p, nrng, (k, c, 3, 3)), _data(p, nrng, (n, 4, 4, c)))
    start = h.engine.cycle
    await h.run()
    cycles = h.engine.cycle - start
    await h.finish("demo")
    write_result({"cycles": cycles, "macs": n * k * c * 36})
