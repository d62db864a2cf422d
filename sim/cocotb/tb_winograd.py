"""cocotb bench for the Winograd convolution layer, every output word against direct conv.

Environment (see :class:`~.bench.Bench`): ``DUT_PARAMS``, ``SEED`` (logged), optional
``NPUGEN_RESULT`` (JSON metrics) and ``NPUGEN_LAYER`` (``H,W,C,K,padding`` for the
benchmark test).
"""

import os

import cocotb

from ..formats.winograd import cfg_beat, filter_beats, out_beats, parse_out, pixel_beats
from ..models.winograd import conv2d_direct, output_shape
from .bench import TRAFFIC, Bench, random_values, write_result


class LayerBench(Bench):
    """A WinogradConv: whole layers in, the expected output beats out."""

    def __init__(self, dut, traffic):
        super().__init__(dut, traffic)
        self.p = self.params

    def layer(self, x, w, padding):
        """Queue a whole layer: configuration, filters, pixels; expect its output beats."""
        h, wd, c = x.shape
        self.i_cfg.put(cfg_beat(self.p, h, wd, c, w.shape[0], padding))
        self.i_filter.put(*filter_beats(self.p, w))
        self.i_pixel.put(*pixel_beats(self.p, x))
        self.expect("o", out_beats(self.p, conv2d_direct(self.p, x, w, padding)))

    def _masked(self, name, beats):
        # Lanes the mask marks as absent hold unspecified values: blank them out.
        return parse_out(self.p, beats)

    async def finish(self, what, timeout=100_000):
        """Compare every existing pixel (lanes outside the map are unspecified)."""
        await super().finish(what, timeout=timeout, view=self._masked)

    async def reset_mid_stream(self, quiet):
        """Run the base check, comparing only existing pixels."""
        await super().reset_mid_stream(quiet, view=self._masked)


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
    h = LayerBench(dut, traffic)
    p, nrng = h.p, h.nrng
    await h.start()
    for hh, ww, c, k, padding, kind in _cases(p):
        h.layer(_data(p, nrng, (hh, ww, c), kind), _data(p, nrng, (k, c, 3, 3), kind), padding)
    await h.finish(f"layers ({traffic})", timeout=400_000)
    assert int(dut.error.value) == 0


@cocotb.test()
@cocotb.parametrize(when=["early", "late"])
async def test_reset_mid_layer(dut, when):
    """Reset while pixels stream and tiles compute; nothing stale, the next layer exact."""
    h = LayerBench(dut, "both")
    p, rng, nrng = h.p, h.rng, h.nrng
    await h.start()
    hh, ww = min(16, p.h_max), min(16, p.w_max)
    c, k = min(3, p.c_max), min(4, p.k_max)
    h.layer(_data(p, nrng, (hh, ww, c)), _data(p, nrng, (k, c, 3, 3)), "same")
    await h.engine.idle(rng.randrange(3, 20) if when == "early" else
                        rng.randrange(hh * ww, 3 * hh * ww))
    await h.reset_mid_stream(quiet=60)
    h.layer(_data(p, nrng, (5, 7, c)), _data(p, nrng, (k, c, 3, 3)), "valid")
    await h.finish(f"after reset ({when})")
    assert int(dut.error.value) == 0


@cocotb.test()
async def test_malformed(dut):
    """A misplaced pixel `last` or an impossible shape raises the sticky error flag."""
    h = LayerBench(dut, "steady")
    p, nrng = h.p, h.nrng
    await h.start()
    c = min(2, p.c_max)
    h.layer(_data(p, nrng, (4, 4, c)), _data(p, nrng, (1, c, 3, 3)), "valid")
    h.i_pixel.queue[3]["last"] = 1  # a pixel in the middle claims to be the last
    await h.run()
    await h.engine.idle(5)
    assert int(dut.error.value) == 1, "a misplaced last must raise the error flag"
    await h.engine.reset()
    assert int(dut.error.value) == 0
    h.i_cfg.put(cfg_beat(p, 2, 8, 1, 1, "valid"))
    await h.engine.idle(5)
    assert int(dut.error.value) == 1, "a 2-row valid layer must raise the error flag"


async def _one_layer(h, shape):
    p, nrng = h.p, h.nrng
    await h.start()
    hh, ww, c, k, padding = shape
    h.layer(_data(p, nrng, (hh, ww, c)), _data(p, nrng, (k, c, 3, 3)), padding)
    start = h.engine.cycle
    await h.run(timeout=2_000_000)
    cycles = h.o.cycles[-1] - start + 1
    await h.finish(f"layer {shape}")
    ho, wo = output_shape(hh, ww, padding)
    result = {"h": hh, "w": ww, "c": c, "k": k, "padding": padding, "cycles": cycles,
              "outputs": ho * wo * k, "macs": ho * wo * k * c * 9}
    h.dut._log.info("layer %s: %s", shape, result)
    write_result(result)


@cocotb.test()
async def test_demo(dut):
    """Short self-check for `npugen demo`: one random 16x16 layer, same padding."""
    h = LayerBench(dut, "steady")
    p = h.p
    await _one_layer(h, (min(16, p.h_max), min(16, p.w_max), p.c_max, min(4, p.k_max), "same"))


@cocotb.test()
async def test_benchmark_layer(dut):
    """The layer named by NPUGEN_LAYER (H,W,C,K,padding), or a small default."""
    text = os.environ.get("NPUGEN_LAYER", "8,8,2,2,valid")
    hh, ww, c, k, padding = text.split(",")
    await _one_layer(LayerBench(dut, "steady"), (int(hh), int(ww), int(c), int(k), padding))
