"""cocotb bench for the Winograd convolution layer, every output word against direct conv.

Environment: ``DUT_PARAMS`` (WinogradParams JSON), ``SEED`` (logged), optional
``NPUGEN_RESULT`` (JSON metrics) and ``NPUGEN_LAYER`` (``H,W,C,K,padding`` for the
benchmark test).
"""

import os

import cocotb

from npugen.rtl.winograd import WinogradConv, WinogradParams
from npugen.sim.models.winograd import filter_stream, layer_output_beats

from .common import TRAFFIC, bench_setup, check_words, random_values, write_result
from .streams import Sink, Source, StreamEngine


def _setup(dut):
    params, rng, nrng = bench_setup(dut, WinogradParams)
    return params, WinogradConv(params), rng, nrng


def _masked(beat):
    return {"y": [v if (beat["mask"] >> q) & 1 else None for q, v in enumerate(beat["y"])],
            "mask": beat["mask"], "last": beat["last"]}


class Harness:
    """Ports of a WinogradConv and the expected output beats."""

    def __init__(self, dut, layer, rng, traffic):
        idle, stall = TRAFFIC[traffic]
        self.p = layer.params
        self.cfg = Source(dut, "i_cfg", layer.cfg_layout, idle)
        self.filt = Source(dut, "i_filter", layer.filter_layout, idle)
        self.pix = Source(dut, "i_pixel", layer.pixel_layout, idle)
        self.o = Sink(dut, "o", layer.out_layout, stall)
        self.engine = StreamEngine(dut, rng, [self.cfg, self.filt, self.pix], [self.o])
        self.expected = []

    def layer(self, x, w, padding):
        """Queue a whole layer: configuration, filters, pixels; record the expected beats."""
        p = self.p
        h, wd, c = x.shape
        k = w.shape[0]
        self.cfg.put({"height": h, "width": wd, "channels": c, "filters": k,
                      "same": int(padding == "same")})
        self.filt.put(*filter_stream(p, w))
        self.pix.put(*[{"x": [int(x[r, col, ch]) if ch < c else 0 for ch in range(p.c_max)],
                        "last": int(r == h - 1 and col == wd - 1)}
                       for r in range(h) for col in range(wd)])
        self.expected += layer_output_beats(p, x, w, padding)

    def done(self):
        """Return True once every expected beat has been received."""
        return len(self.o.got) >= len(self.expected)

    def got(self):
        """Received beats with the values of non-existent pixels blanked out."""
        return [_masked(b) for b in self.o.got]


def _data(p, nrng, shape, kind="random"):
    return random_values(nrng, p.data_width, shape, kind)


def _cases(p):
    """(H, W, C, K, padding, kind): the issue's grid, clipped to the build's maxima."""
    cases = []
    for c in sorted({1, min(3, p.c_max), min(16, p.c_max)}):
        for k in sorted({1, min(4, p.k_max)}):
            for h, w in ((4, 4), (5, 7), (16, 16)):
                if h <= p.h_max and w <= p.w_max:
                    for padding in ("valid", "same"):
                        cases.append((h, w, c, k, padding, "random"))
    h, w = min(6, p.h_max), min(5, p.w_max)
    cases += [(h, w, p.c_max, min(2, p.k_max), "same", "min"),
              (h, w, p.c_max, min(2, p.k_max), "valid", "max")]
    return cases


@cocotb.test()
@cocotb.parametrize(traffic=list(TRAFFIC))
async def test_layers(dut, traffic):
    """Every case of the grid as consecutive layers, under the given traffic."""
    p, layer, rng, nrng = _setup(dut)
    h = Harness(dut, layer, rng, traffic)
    await h.engine.start()
    for hh, ww, c, k, padding, kind in _cases(p):
        h.layer(_data(p, nrng, (hh, ww, c), kind), _data(p, nrng, (k, c, 3, 3), kind), padding)
    await h.engine.run(h.done, timeout=400_000)
    await h.engine.idle(5)
    check_words(dut, h.got(), h.expected, f"layers ({traffic})")
    assert int(dut.error.value) == 0


@cocotb.test()
@cocotb.parametrize(when=["early", "late"])
async def test_reset_mid_layer(dut, when):
    """Reset while pixels stream and tiles compute; nothing stale, the next layer exact."""
    p, layer, rng, nrng = _setup(dut)
    h = Harness(dut, layer, rng, "both")
    await h.engine.start()
    hh, ww = min(16, p.h_max), min(16, p.w_max)
    c, k = min(3, p.c_max), min(4, p.k_max)
    h.layer(_data(p, nrng, (hh, ww, c)), _data(p, nrng, (k, c, 3, 3)), "same")
    await h.engine.idle(rng.randrange(3, 20) if when == "early" else
                        rng.randrange(hh * ww, 3 * hh * ww))
    before = [_masked(b) for b in h.o.got]
    assert before == h.expected[:len(before)], "output before reset is not a model prefix"
    await h.engine.reset(rng.randrange(1, 4))
    h.o.got.clear()
    h.expected.clear()
    await h.engine.idle(60)
    assert not h.o.got, f"{len(h.o.got)} stale beats after reset"
    h.layer(_data(p, nrng, (5, 7, c)), _data(p, nrng, (k, c, 3, 3)), "valid")
    await h.engine.run(h.done)
    await h.engine.idle(5)
    check_words(dut, h.got(), h.expected, f"after reset ({when})")
    assert int(dut.error.value) == 0


@cocotb.test()
async def test_malformed(dut):
    """A misplaced pixel `last` or an impossible shape raises the sticky error flag."""
    p, layer, rng, nrng = _setup(dut)
    h = Harness(dut, layer, rng, "steady")
    await h.engine.start()
    c = min(2, p.c_max)
    h.layer(_data(p, nrng, (4, 4, c)), _data(p, nrng, (1, c, 3, 3)), "valid")
    h.pix.queue[3]["last"] = 1  # a pixel in the middle claims to be the last
    await h.engine.run(h.done)
    await h.engine.idle(5)
    assert int(dut.error.value) == 1, "a misplaced last must raise the error flag"
    await h.engine.reset()
    assert int(dut.error.value) == 0
    h.cfg.put({"height": 2, "width": 8, "channels": 1, "filters": 1, "same": 0})
    await h.engine.idle(5)
    assert int(dut.error.value) == 1, "a 2-row valid layer must raise the error flag"


async def _one_layer(dut, shape):
    p, layer, rng, nrng = _setup(dut)
    h = Harness(dut, layer, rng, "steady")
    await h.engine.start()
    hh, ww, c, k, padding = shape
    h.layer(_data(p, nrng, (hh, ww, c)), _data(p, nrng, (k, c, 3, 3)), padding)
    start = h.engine.cycle
    await h.engine.run(h.done, timeout=2_000_000)
    cycles = h.o.cycles[-1] - start + 1
    check_words(dut, h.got(), h.expected, f"layer {shape}")
    ho, wo = (hh, ww) if padding == "same" else (hh - 2, ww - 2)
    result = {"h": hh, "w": ww, "c": c, "k": k, "padding": padding, "cycles": cycles,
              "outputs": ho * wo * k, "macs": ho * wo * k * c * 9}
    dut._log.info("layer %s: %s", shape, result)
    write_result(result)


@cocotb.test()
async def test_demo(dut):
    """Short self-check for `npugen demo`: one random 16x16 layer, same padding."""
    p = WinogradParams.from_json(os.environ["DUT_PARAMS"])
    await _one_layer(dut, (min(16, p.h_max), min(16, p.w_max), p.c_max, min(4, p.k_max), "same"))


@cocotb.test()
async def test_benchmark_layer(dut):
    """The layer named by NPUGEN_LAYER (H,W,C,K,padding), or a small default."""
    text = os.environ.get("NPUGEN_LAYER", "8,8,2,2,valid")
    hh, ww, c, k, padding = text.split(",")
    await _one_layer(dut, (int(hh), int(ww), int(c), int(k), padding))
