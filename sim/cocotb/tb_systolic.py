"""cocotb bench for the systolic array (both dataflows), checked word by word against numpy.

Environment (see :class:`~.bench.Bench`): ``DUT_PARAMS``, ``SEED`` (logged; rerun with the
same value to reproduce), optional ``NPUGEN_RESULT`` (a JSON file the demo and GEMM tests
write their cycle counts to) and ``NPUGEN_GEMM`` (``M,K,N`` of the GEMM tests). Tests are
named ``test_ws_*`` and ``test_os_*``; the pytest driver runs the ones for the DUT's dataflow
(a test run on the other dataflow fails at once).
"""

import os
import time

import cocotb
import numpy as np

from npugen.rtl.systolic import Dataflow
from npugen.rtl.systolic.ports import os_latency, ws_latency, ws_min_tile_vectors

from ..formats.systolic import act_beat, os_beats, out_beats, weight_beats
from ..models.systolic import gemm, os_tile, ws_tile
from .bench import TRAFFIC, Bench, random_values, write_result


def _operands(params, nrng, shape, which, kind="random"):
    """Operand matrix: ``which`` is "a" (a_width bits) or "w" (w_width bits)."""
    bits = params.a_width if which == "a" else params.w_width
    return random_values(nrng, bits, shape, kind)


def _psum(params, nrng, shape):
    return random_values(nrng, params.acc_width, shape)


# Weight-stationary -------------------------------------------------------------------------

class WsBench(Bench):
    """A WsArray: weight tiles, activation vectors, and the expected output vectors."""

    def __init__(self, dut, traffic):
        super().__init__(dut, traffic)
        _require(self.params, Dataflow.WS)
        self.p = self.params

    def tile(self, w, a, psum):
        """Queue one tile: its weight beats and its activation vectors.

        ``psum`` is an (M, cols) array, or a function of the vector index that returns the
        psum vector once it exists (None before), for chaining on the array's own outputs.
        """
        m = len(a)
        self.i_weight.put(*weight_beats(self.p, w))
        for i in range(m):
            def beat(i=i):
                value = psum(i) if callable(psum) else psum[i]
                return None if value is None else act_beat(self.p, a[i], value, i == m - 1)
            self.i_act.put(beat)

    def expect_tile(self, y):
        """Expect the model's output rows for one tile (the last row carries ``last``)."""
        self.expect("o", out_beats(self.p, y))

    def output(self, index):
        """Return the ``y`` of received output vector ``index``, or None before it arrives."""
        return self.o.got[index]["y"] if index < len(self.o.got) else None


def _require(params, dataflow):
    assert params.dataflow is dataflow, f"this test needs a {dataflow.value} array"


def _ws_random_tiles(p, nrng, count):
    tiles = []
    sizes = [1, 2, p.rows, 2 * p.rows + p.cols + 3]
    kinds = ["random", "extremes", "min", "max", "identity"]
    for t in range(count):
        m = sizes[t % len(sizes)]
        kind = kinds[t % len(kinds)]
        if kind == "identity":
            w = np.eye(p.rows, p.cols, dtype=np.int64)
            a = _operands(p, nrng, (m, p.rows), "a")
        else:
            w = _operands(p, nrng, (p.rows, p.cols), "w", kind)
            a = _operands(p, nrng, (m, p.rows), "a", kind)
        psum = _psum(p, nrng, (m, p.cols)) if t % 3 else np.zeros((m, p.cols), dtype=np.int64)
        tiles.append((w, a, psum))
    return tiles


def _ws_queue(h, tiles):
    for w, a, psum in tiles:
        h.tile(w, a, psum)
        h.expect_tile(ws_tile(h.p, a, w, psum))


@cocotb.test()
@cocotb.parametrize(traffic=list(TRAFFIC))
async def test_ws_tiles(dut, traffic):
    """Random, extreme, all-min/all-max and identity tiles, M from 1 to 2*rows+cols+3."""
    h = WsBench(dut, traffic)
    await h.start()
    _ws_queue(h, _ws_random_tiles(h.p, h.nrng, 10))
    await h.finish(f"ws tiles ({traffic})")


@cocotb.test()
@cocotb.parametrize(traffic=["steady", "both"])
async def test_ws_k_chaining(dut, traffic):
    """K = 1 .. 4*rows computed as ceil(K/rows) tiles, each tile's psum the previous output."""
    h = WsBench(dut, traffic)
    p, nrng = h.p, h.nrng
    await h.start()
    ks = sorted({1, max(1, p.rows - 1), p.rows, p.rows + 1, 2 * p.rows + 1, 4 * p.rows})
    for k in ks:
        m = int(nrng.integers(1, 2 * p.rows + 3))
        a = _operands(p, nrng, (m, k), "a")
        b = _operands(p, nrng, (k, p.cols), "w")
        psum0 = _psum(p, nrng, (m, p.cols))
        tiles = -(-k // p.rows)
        a_pad = np.zeros((m, tiles * p.rows), dtype=np.int64)
        b_pad = np.zeros((tiles * p.rows, p.cols), dtype=np.int64)
        a_pad[:, :k] = a
        b_pad[:k] = b
        base = len(h.o.got)
        prev = psum0
        for t in range(tiles):
            rows = slice(t * p.rows, (t + 1) * p.rows)
            # Tile t's psum for vector i is the array's own output i of tile t-1.
            psum = psum0 if t == 0 else (
                lambda i, start=base + (t - 1) * m: h.output(start + i))
            h.tile(b_pad[rows], a_pad[:, rows], psum)
            prev = ws_tile(p, a_pad[:, rows], b_pad[rows], prev)
            h.expect_tile(prev)
        await h.run()
        final = [g["y"] for g in h.o.got[-m:]]
        assert final == gemm(p, a, b, psum0).tolist(), f"K={k}: chained result != a @ b + psum"
    await h.finish(f"ws K chaining ({traffic})")


@cocotb.test()
@cocotb.parametrize(when=["early", "late"])
async def test_ws_reset_mid_stream(dut, when):
    """Reset while tiles are loading and vectors are in flight: nothing stale comes out."""
    h = WsBench(dut, "both")
    p, rng = h.p, h.rng
    await h.start()
    _ws_queue(h, _ws_random_tiles(p, h.nrng, 6))
    await h.engine.idle(rng.randrange(2, p.rows + 4) if when == "early" else
                        rng.randrange(p.rows + 4, 6 * p.rows + 40))
    await h.reset_mid_stream(quiet=2 * ws_latency(p) + 4)
    _ws_queue(h, _ws_random_tiles(p, h.nrng, 4))
    await h.finish(f"ws after reset ({when})")


@cocotb.test()
async def test_ws_timing(dut):
    """Latency equals the manifest figure; back-to-back tiles stream without a bubble."""
    h = WsBench(dut, "steady")
    p = h.p
    await h.start()
    m = ws_min_tile_vectors(p)  # the documented minimum tile length without stalls
    tiles = 4
    for _ in range(tiles):
        w = _operands(p, h.nrng, (p.rows, p.cols), "w")
        a = _operands(p, h.nrng, (m, p.rows), "a")
        _ws_queue(h, [(w, a, np.zeros((m, p.cols), dtype=np.int64))])
    await h.finish("ws timing")
    latency = h.o.cycles[0] - h.i_act.accept_cycles[0]
    assert latency == ws_latency(p), f"latency {latency} cycles, manifest says {ws_latency(p)}"
    span = h.o.cycles[-1] - h.o.cycles[0] + 1
    assert span == tiles * m, f"{tiles * m} vectors took {span} output cycles (bubbles)"
    # The next tile's first weight is taken max(1, rows - 2) cycles after the swap.
    lock = h.i_weight.accept_cycles[p.rows] - h.i_act.accept_cycles[0]
    assert lock == max(1, p.rows - 2), f"weight lock {lock} cycles"


@cocotb.test()
async def test_ws_demo(dut):
    """Short self-check for `npugen demo`: a random GEMM as back-to-back tiles."""
    h = WsBench(dut, "steady")
    p = h.p
    await h.start()
    m = 4 * p.rows
    tiles = 4
    for _ in range(tiles):
        w = _operands(p, h.nrng, (p.rows, p.cols), "w")
        a = _operands(p, h.nrng, (m, p.rows), "a")
        _ws_queue(h, [(w, a, np.zeros((m, p.cols), dtype=np.int64))])
    start = h.engine.cycle
    await h.run()
    cycles = h.engine.cycle - start
    await h.finish("ws demo")
    write_result({"cycles": cycles, "macs": tiles * m * p.rows * p.cols,
                  "vectors": tiles * m, "latency": ws_latency(p)})


# Output-stationary -------------------------------------------------------------------------

class OsBench(Bench):
    """An OsArray: operand beats and the expected result rows."""

    def __init__(self, dut, traffic):
        super().__init__(dut, traffic)
        _require(self.params, Dataflow.OS)
        self.p = self.params

    def tile(self, a, b):
        """Queue one tile's K beats and expect its result rows."""
        self.i.put(*os_beats(self.p, a, b))
        self.expect("o", out_beats(self.p, os_tile(self.p, a, b)))


def _os_random_tiles(p, nrng, count):
    ks = [1, 2, max(1, p.rows - 1), p.rows, p.rows + 1, 4 * p.rows]
    kinds = ["random", "extremes", "min", "max", "identity"]
    tiles = []
    for t in range(count):
        k = ks[t % len(ks)]
        kind = kinds[t % len(kinds)]
        if kind == "identity":
            a = _operands(p, nrng, (p.rows, k), "a")
            b = np.eye(k, p.cols, dtype=np.int64)
        else:
            a = _operands(p, nrng, (p.rows, k), "a", kind)
            b = _operands(p, nrng, (k, p.cols), "w", kind)
        tiles.append((a, b))
    return tiles


@cocotb.test()
@cocotb.parametrize(traffic=list(TRAFFIC))
async def test_os_tiles(dut, traffic):
    """K = 1 .. 4*rows; random, extreme, all-min/all-max and identity operands."""
    h = OsBench(dut, traffic)
    await h.start()
    for a, b in _os_random_tiles(h.p, h.nrng, 12):
        h.tile(a, b)
    await h.finish(f"os tiles ({traffic})")


@cocotb.test()
@cocotb.parametrize(when=["early", "late"])
async def test_os_reset_mid_stream(dut, when):
    """Reset while operands stream and results drain: nothing stale comes out."""
    h = OsBench(dut, "both")
    p, rng = h.p, h.rng
    await h.start()
    for a, b in _os_random_tiles(p, h.nrng, 6):
        h.tile(a, b)
    await h.engine.idle(rng.randrange(2, p.rows + 4) if when == "early" else
                        rng.randrange(p.rows + 4, 6 * p.rows + 40))
    await h.reset_mid_stream(quiet=2 * os_latency(p) + 2 * p.rows + 4)
    for a, b in _os_random_tiles(p, h.nrng, 4):
        h.tile(a, b)
    await h.finish(f"os after reset ({when})")


@cocotb.test()
async def test_os_timing(dut):
    """Latency equals the manifest figure; K = rows tiles stream without a bubble."""
    h = OsBench(dut, "steady")
    p = h.p
    await h.start()
    tiles = 4
    for _ in range(tiles):
        h.tile(_operands(p, h.nrng, (p.rows, p.rows), "a"),
               _operands(p, h.nrng, (p.rows, p.cols), "w"))
    await h.finish("os timing")
    last_beats = h.i.accept_cycles[p.rows - 1::p.rows]
    latency = h.o.cycles[0] - last_beats[0]
    assert latency == os_latency(p), f"latency {latency} cycles, manifest says {os_latency(p)}"
    in_span = h.i.accept_cycles[-1] - h.i.accept_cycles[0] + 1
    assert in_span == tiles * p.rows, f"{tiles * p.rows} beats took {in_span} cycles"
    out_span = h.o.cycles[-1] - h.o.cycles[0] + 1
    assert out_span == tiles * p.rows, f"{tiles * p.rows} rows took {out_span} cycles"


@cocotb.test()
async def test_os_demo(dut):
    """Short self-check for `npugen demo`: random tiles with K = 4*rows, back to back."""
    h = OsBench(dut, "steady")
    p = h.p
    await h.start()
    k = 4 * p.rows
    tiles = 4
    for _ in range(tiles):
        h.tile(_operands(p, h.nrng, (p.rows, k), "a"), _operands(p, h.nrng, (k, p.cols), "w"))
    start = h.engine.cycle
    await h.run()
    cycles = h.engine.cycle - start
    await h.finish("os demo")
    write_result({"cycles": cycles, "macs": tiles * k * p.rows * p.cols,
                  "vectors": tiles * p.rows, "latency": os_latency(p)})


# GEMM (benchmark and regression) ------------------------------------------------------------

def _gemm_shape(p):
    """``NPUGEN_GEMM=M,K,N`` or a small default that still spans several tiles each way."""
    text = os.environ.get("NPUGEN_GEMM")
    if text:
        m, k, n = (int(x) for x in text.split(","))
        return m, k, n
    return 3 * p.rows + 1, 2 * p.rows + 1, 2 * p.cols + 1


def _pad(x, rows, cols):
    out = np.zeros((rows, cols), dtype=np.int64)
    out[:x.shape[0], :x.shape[1]] = x
    return out


def _report_gemm(dut, p, shape, cycles, seconds):
    m, k, n = shape
    macs = m * k * n
    util = macs / (p.rows * p.cols * cycles)
    dut._log.info("GEMM %dx%dx%d: %d cycles, %.2f MACs/cycle, utilisation %.1f%%, "
                  "%.0f cycles/s", m, k, n, cycles, macs / cycles, 100 * util,
                  cycles / seconds)
    write_result({"m": m, "k": k, "n": n, "cycles": cycles, "macs": macs,
                  "utilisation": util, "cycles_per_second": cycles / seconds})


@cocotb.test()
async def test_ws_gemm(dut):
    """C = A @ B of any shape: weight tiles back to back, K chained through psum."""
    h = WsBench(dut, "steady")
    p = h.p
    m, k, n = shape = _gemm_shape(p)
    a = _operands(p, h.nrng, (m, k), "a")
    b = _operands(p, h.nrng, (k, n), "w")
    kt, nt = -(-k // p.rows), -(-n // p.cols)
    a_pad = _pad(a, m, kt * p.rows)
    b_pad = _pad(b, kt * p.rows, nt * p.cols)
    await h.start()
    # Output vector index of tile t, vector i is t*m + i; tile (nb, kb) is t = nb*kt + kb.
    for nb in range(nt):
        cols = slice(nb * p.cols, (nb + 1) * p.cols)
        for kb in range(kt):
            krows = slice(kb * p.rows, (kb + 1) * p.rows)
            t = nb * kt + kb
            psum = np.zeros((m, p.cols), dtype=np.int64) if kb == 0 else (
                lambda i, t=t: h.output((t - 1) * m + i))
            h.tile(b_pad[krows, cols], a_pad[:, krows], psum)
    total = nt * kt * m
    start = h.engine.cycle
    t0 = time.monotonic()
    await h.run(lambda: len(h.o.got) >= total, timeout=20 * total + 1000)
    seconds = time.monotonic() - t0
    cycles = h.o.cycles[-1] - start + 1
    c = np.zeros((m, nt * p.cols), dtype=np.int64)
    for nb in range(nt):
        t = nb * kt + kt - 1
        c[:, nb * p.cols:(nb + 1) * p.cols] = [g["y"] for g in h.o.got[t * m:(t + 1) * m]]
    expected = gemm(p, a, b)
    bad = np.argwhere(c[:, :n] != expected)
    assert not len(bad), f"GEMM differs at {len(bad)} places, first {bad[0].tolist()}"
    _report_gemm(dut, p, shape, cycles, seconds)


@cocotb.test()
async def test_os_gemm(dut):
    """C = A @ B of any shape as rows x cols output tiles, each accumulating all of K."""
    h = OsBench(dut, "steady")
    p = h.p
    m, k, n = shape = _gemm_shape(p)
    a = _operands(p, h.nrng, (m, k), "a")
    b = _operands(p, h.nrng, (k, n), "w")
    mt, nt = -(-m // p.rows), -(-n // p.cols)
    a_pad = _pad(a, mt * p.rows, k)
    b_pad = _pad(b, k, nt * p.cols)
    await h.start()
    for mb in range(mt):
        for nb in range(nt):
            h.tile(a_pad[mb * p.rows:(mb + 1) * p.rows], b_pad[:, nb * p.cols:(nb + 1) * p.cols])
    start = h.engine.cycle
    t0 = time.monotonic()
    await h.run(timeout=20 * len(h.expected["o"]) * max(1, k // p.rows) + 1000)
    seconds = time.monotonic() - t0
    cycles = h.o.cycles[-1] - start + 1
    await h.finish("os GEMM tiles")
    c = np.zeros((mt * p.rows, nt * p.cols), dtype=np.int64)
    for idx, g in enumerate(h.o.got):
        tile, r = divmod(idx, p.rows)
        mb, nb = divmod(tile, nt)
        c[mb * p.rows + r, nb * p.cols:(nb + 1) * p.cols] = g["y"]
    assert (c[:m, :n] == gemm(p, a, b)).all(), "assembled GEMM differs from a @ b"
    _report_gemm(dut, p, shape, cycles, seconds)
