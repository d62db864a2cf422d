"""cocotb bench for the sparse matrix-vector engine, every output word against numpy.

Environment: ``DUT_PARAMS`` (SparseParams JSON), ``SEED`` (logged), optional
``NPUGEN_RESULT`` (JSON metrics of the demo and benchmark tests) and ``NPUGEN_SPARSE_BENCH``
(JSON: rows, cols, weight density, activation density, vectors; benchmark test only).
"""

import json
import os

import cocotb
import numpy as np

from npugen.rtl.sparse import CfgOp

from ..formats.compress import decode_indices, encode
from ..formats.sparse import act_beats, load_program, out_beats
from ..models.intmath import signed_range
from ..models.sparse import dense_weights, entries_read, sparse_matvec, useful_macs
from .bench import TRAFFIC, Bench, check_words, write_result


class SparseBench(Bench):
    """A SparseMatVec: model loads, vectors, expected outputs, per-PE activity counters."""

    def __init__(self, dut, traffic):
        super().__init__(dut, traffic)
        self.p = self.params
        self.cfg_beats = 0  # i_cfg beats queued so far
        self.active = np.zeros(self.p.n_pe, dtype=np.int64)
        self.engine.monitors.append(self._count)

    def _count(self, cycle):
        bits = int(self.dut.pe_active.value)
        if bits:
            self.active += [(bits >> n) & 1 for n in range(self.p.n_pe)]

    def config(self, *beats):
        """Queue ``i_cfg`` beats; the first waits until every earlier vector has come out."""
        outstanding = len(self.expected["o"])
        first = beats[0]
        self.i_cfg.put(lambda: first if len(self.o.got) >= outstanding else None, *beats[1:])
        self.cfg_beats += len(beats)

    def load(self, enc):
        """Queue the load of ``enc`` (after every earlier vector)."""
        self.config(*load_program(enc))

    def vector(self, enc, x, w_q=None):
        """Queue vector ``x`` for ``enc``; its first beat waits for every queued i_cfg beat.

        ``w_q`` (default: decoded from ``enc``) gives the expected result and its row count.
        """
        beats = act_beats(self.p, x)
        first, loaded = beats[0], self.cfg_beats
        self.i_act.put(lambda: first if len(self.i_cfg.accept_cycles) >= loaded else None,
                       *beats[1:])
        if w_q is None:
            w_q = dense_weights(enc.codebook, decode_indices(enc))
        self.expect("o", out_beats(self.p, sparse_matvec(self.p, w_q, np.asarray(x))))

    async def reset(self, cycles):
        """Reset the DUT; forget queued beats, outputs and expectations."""
        await self.engine.reset(cycles)
        self.clear()
        self.cfg_beats = len(self.i_cfg.accept_cycles)

    async def finish(self, what):
        """Run until all outputs are in, then compare every word.

        The time limit grows with the work queued (loads of 16k beats exist) and still
        catches a hang: every beat and word gets 20 cycles, far above the slowest traffic.
        """
        await super().finish(what, timeout=20_000 + 20 * (len(self.expected["o"])
                                                          + self.cfg_beats))


# ---- test data ----

def random_matrix(nrng, rows, cols, density):
    """Codebook indices: each entry non-zero with probability ``density``."""
    w_idx = nrng.integers(1, 16, size=(rows, cols))
    return np.where(nrng.random((rows, cols)) < density, w_idx, 0)


def plant_runs(w_idx, n_pe):
    """Plant runs of 15, 16, 31 and the longest possible (> 100 if rows allow) zeros in PE 0.

    Columns 0-3 of PE 0 get a single non-zero after the run, column 4 of every PE is empty.
    """
    rows, cols = w_idx.shape
    local_rows = len(range(0, rows, n_pe))
    for j, run in enumerate((15, 16, 31, local_rows - 1)):
        if j < cols and run < local_rows:
            w_idx[0::n_pe, j] = 0
            w_idx[run * n_pe, j] = 1 + j
    if cols > 4:
        w_idx[:, 4] = 0
    return w_idx


def random_codebook(nrng):
    """16 signed 16-bit weights with both extremes; index 0 is zero."""
    cb = nrng.integers(-32768, 32768, size=16)
    cb[0], cb[1], cb[2] = 0, -32768, 32767
    return cb


def activations(p, nrng, cols, kind):
    """Activation vectors: random 50% zeros, all zero, long zero runs, extremes, dense.

    "dense" has no zero at all: a test that needs every column read (a bad pointer is only
    seen when its column is) must not lose one to zero skipping.
    """
    lo, hi = signed_range(p.act_width)
    x = nrng.integers(lo, hi + 1, size=cols)
    if kind == "dense":
        return np.where(x == 0, hi, x)
    if kind == "half":
        return np.where(nrng.random(cols) < 0.5, x, 0)
    if kind == "zero":
        return np.zeros(cols, dtype=np.int64)
    if kind == "runs":  # two non-zeros with long zero runs around them
        out = np.zeros(cols, dtype=np.int64)
        out[[cols // 3, cols - 1]] = [lo, hi]
        return out
    if kind == "extremes":
        return nrng.choice([lo, hi], size=cols)
    raise ValueError(f"activation kind {kind!r} is not one of half, zero, runs, extremes, dense")


def shapes(p, nrng):
    """Matrix shapes: the maximum, and ones that are not multiples of n_pe or of act_lanes."""
    yield p.rows_max, p.cols_max
    yield max(1, p.rows_max - 1 - int(nrng.integers(0, max(1, p.rows_max // 2)))), \
        max(1, p.cols_max - int(nrng.integers(1, max(2, p.cols_max // 2 + 1))))
    yield min(p.rows_max, p.n_pe + 1), min(p.cols_max, 3)


# ---- tests ----

@cocotb.test()
@cocotb.parametrize(traffic=list(TRAFFIC))
async def test_matrices(dut, traffic):
    """Densities 1/10/50/100%, several shapes, padding runs, special activation vectors."""
    h = SparseBench(dut, traffic)
    p, nrng = h.p, h.nrng
    await h.start()
    kinds = ["half", "zero", "runs", "extremes", "dense"]
    for n, density in enumerate((0.01, 0.1, 0.5, 1.0)):
        for rows, cols in shapes(p, nrng):
            w_idx = random_matrix(nrng, rows, cols, density)
            if n == 0 and rows == p.rows_max:
                w_idx = plant_runs(w_idx, p.n_pe)
            enc = encode(w_idx, p.n_pe, codebook=random_codebook(nrng))
            if max(len(e) for e in enc.entries) > p.entries_max:
                continue  # does not fit this configuration's entry memory
            h.load(enc)
            w_q = dense_weights(enc.codebook, w_idx)
            for k in range(2):
                h.vector(enc, activations(p, nrng, cols, kinds[(n + k) % len(kinds)]), w_q)
    assert h.expected["o"], "no matrix fits the configuration"
    await h.finish(f"matrices ({traffic})")
    assert int(dut.error.value) == 0


@cocotb.test()
@cocotb.parametrize(when=["load", "run", "readout"])
async def test_reset_mid_run(dut, when):
    """Reset during a load, a run or the readout; the next vectors are exact.

    Nothing stale comes out; the model survives reset, and a fresh load works too.
    """
    h = SparseBench(dut, "both")
    p, rng, nrng = h.p, h.rng, h.nrng
    await h.start()
    enc = encode(random_matrix(nrng, p.rows_max, p.cols_max, 0.3), p.n_pe,
                 codebook=random_codebook(nrng))
    h.load(enc)
    h.vector(enc, activations(p, nrng, p.cols_max, "dense"))
    if when == "load":
        await h.engine.idle(rng.randrange(3, 20))
    elif when == "run":
        await h.engine.run(lambda: h.i_cfg.idle_now and h.i_act.accept_cycles)
        await h.engine.idle(rng.randrange(0, 6))
    else:
        await h.engine.run(lambda: len(h.o.got) >= 1)
    await h.reset_mid_stream(quiet=p.rows_pe_max + 40)
    h.cfg_beats = len(h.i_cfg.accept_cycles)
    assert int(dut.error.value) == 0
    if when != "load":
        h.vector(enc, activations(p, nrng, p.cols_max, "half"))  # model survived reset
    enc2 = encode(random_matrix(nrng, p.rows_max, p.cols_max, 0.2), p.n_pe,
                  codebook=random_codebook(nrng))
    h.load(enc2)
    h.vector(enc2, activations(p, nrng, p.cols_max, "half"))
    await h.finish(f"after reset ({when})")
    assert int(dut.error.value) == 0


@cocotb.test()
async def test_config_after_vector(dut):
    """A configuration beat offered once a vector's first beat is taken waits for that vector.

    The next model's load starts the cycle after the vector's first beat; the vector is still
    computed with the model it was sent for, and the next vector with the new one.
    """
    h = SparseBench(dut, "steady")
    p, nrng = h.p, h.nrng
    await h.start()
    enc = encode(random_matrix(nrng, p.rows_max, p.cols_max, 0.3), p.n_pe,
                 codebook=random_codebook(nrng))
    h.load(enc)
    await h.engine.run(lambda: h.i_cfg.idle_now)
    x = np.asarray(activations(p, nrng, p.cols_max, "dense"))
    taken = len(h.i_act.accept_cycles)
    h.i_act.put(*act_beats(p, x))
    h.expect("o", out_beats(p, sparse_matvec(p, dense_weights(enc.codebook,
                                                              decode_indices(enc)), x)))
    enc2 = encode(random_matrix(nrng, p.rows_max, p.cols_max, 0.2), p.n_pe,
                  codebook=random_codebook(nrng))
    # Codebook beats of used indices first: one taken too early changes the vector's result.
    beats = load_program(enc2)
    early = [b for b in beats if b["op"] == CfgOp.CODEBOOK.value and b["addr"] != 0]
    beats = early + [b for b in beats if b not in early]
    first = beats[0]
    h.i_cfg.put(lambda: first if len(h.i_act.accept_cycles) > taken else None, *beats[1:])
    h.cfg_beats += len(beats)
    h.vector(enc2, activations(p, nrng, p.cols_max, "half"))
    await h.finish("a load right behind a vector")
    assert h.i_cfg.accept_cycles[-len(beats)] > h.i_act.accept_cycles[taken]
    assert int(dut.error.value) == 0


async def _expect_error(h, what):
    await h.engine.idle(10)
    assert int(h.dut.error.value) == 1, f"{what} must raise the error flag"
    await h.reset(2)
    await h.engine.idle(h.p.rows_pe_max + 5)
    assert int(h.dut.error.value) == 0, "reset clears the error flag"


@cocotb.test()
async def test_malformed(dut):
    """Malformed input raises the sticky error and writes nothing out of bounds.

    Bad i_cfg fields, a misplaced last, bad pointers and a row overflow; the rest of the
    results stays exact.
    """
    h = SparseBench(dut, "steady")
    p, nrng = h.p, h.nrng
    await h.start()
    w_idx = random_matrix(nrng, p.rows_max, p.cols_max, 0.5)
    enc = encode(w_idx, p.n_pe, codebook=random_codebook(nrng))
    h.load(enc)
    await h.engine.run(lambda: h.i_cfg.idle_now)
    x = activations(p, nrng, p.cols_max, "dense")

    # Out-of-range writes: an address that would wrap onto entry 0 / PE 0 / pointer 0.
    bad_beats = [
        {"op": CfgOp.ENTRY.value, "pe": 0, "addr": p.entries_max, "data": 0x0F},
        {"op": CfgOp.ENTRY.value, "pe": 0, "addr": 0, "data": 0x100},
        {"op": CfgOp.ENTRY.value, "pe": p.n_pe, "addr": 0, "data": 0x0F},
        {"op": CfgOp.POINTER.value, "pe": p.n_pe, "addr": 1, "data": 0},
        {"op": CfgOp.POINTER.value, "pe": 0, "addr": p.cols_max + 1, "data": 0},
        {"op": CfgOp.POINTER.value, "pe": 0, "addr": 1, "data": p.entries_max + 1},
        {"op": CfgOp.CODEBOOK.value, "pe": 0, "addr": 16, "data": 5},
        {"op": CfgOp.SHAPE.value, "pe": 0, "addr": p.rows_max + 1, "data": 1},
        {"op": CfgOp.SHAPE.value, "pe": 0, "addr": 1, "data": 0},
    ]
    for beat in bad_beats:
        if beat["pe"] >= 64 or beat["addr"] >= 1 << 16 or beat["data"] >= 1 << 16:
            continue
        h.config(beat)
        await _expect_error(h, f"i_cfg beat {beat}")
    h.vector(enc, x)
    await h.finish("after bad i_cfg beats: model untouched")

    # A misplaced last: the column count still decides where the vector ends.
    beats = act_beats(p, x)
    if len(beats) > 1:
        h.vector(enc, x)
        h.i_act.queue[0] = {**beats[0], "last": 1}
        await h.finish("misplaced last")
        await _expect_error(h, "a misplaced i_act.last")

    # The final column pointer below its predecessor: that PE skips the last column (any
    # other pointer would move the boundary of two columns).
    cols = p.cols_max
    pe = int(np.argmax(enc.ptr[:, cols - 1]))
    assert enc.ptr[pe, cols - 1] > 0
    h.config({"op": CfgOp.POINTER.value, "pe": pe, "addr": cols,
              "data": int(enc.ptr[pe, cols - 1]) - 1})
    w_bad = w_idx.copy()
    w_bad[pe::p.n_pe, cols - 1] = 0
    h.vector(enc, x, dense_weights(enc.codebook, w_bad))
    await h.finish("bad pointer")
    await _expect_error(h, "a decreasing column pointer")

    # Rows shrink under a loaded matrix: entries past the new row count are dropped.
    if p.rows_max > 1:
        rows = max(1, p.rows_max // 2)
        h.config({"op": CfgOp.SHAPE.value, "pe": 0, "addr": rows, "data": p.cols_max})
        # The bad last pointer survived reset, like the rest of the model.
        h.vector(enc, x, dense_weights(enc.codebook, w_bad[:rows]))
        await h.finish("row overflow")
        await _expect_error(h, "entries past the row count")


@cocotb.test()
async def test_zero_skipping(dut):
    """Zero activations cost no cycle.

    The same non-zeros take as long spread over many zeros as packed together, and a vector
    of zeros only costs its input beats.
    """
    h = SparseBench(dut, "steady")
    p, nrng = h.p, h.nrng
    await h.start()
    rows, cols = p.rows_max, p.cols_max
    per_pe = len(range(0, rows, p.n_pe))
    enc = encode(np.full((rows, cols), 3), p.n_pe, codebook=random_codebook(nrng))
    assert max(len(e) for e in enc.entries) <= p.entries_max, "a dense matrix must fit here"
    h.load(enc)
    await h.engine.run(lambda: h.i_cfg.idle_now)
    nnz = max(1, cols // 8)
    packed = np.zeros(cols, dtype=np.int64)
    packed[:nnz] = 7
    spread = np.zeros(cols, dtype=np.int64)
    spread[np.sort(nrng.choice(cols, size=nnz, replace=False))] = -9

    async def timed(x):
        h.vector(enc, x)
        start = h.engine.cycle
        await h.engine.run(h.done)
        return h.o.cycles[-1] - start

    t_packed = await timed(packed)
    t_spread = await timed(spread)
    t_zero = await timed(np.zeros(cols, dtype=np.int64))
    check_words(dut, h.o.got, h.expected["o"], "zero skipping")
    dut._log.info("cycles: packed %d, spread %d, zero %d (nnz %d, %d entries per PE column)",
                  t_packed, t_spread, t_zero, nnz, per_pe)
    work = nnz * per_pe
    if work >= -(-cols // p.act_lanes):  # compute-bound: zeros hidden behind the MACs
        # Spread non-zeros may only start later: by the input beats before the first one.
        lead = int(np.flatnonzero(spread)[0]) // p.act_lanes
        assert abs(t_spread - t_packed - lead) <= 2, (t_spread, t_packed, lead)
    # Compute (entries per PE) + input beats bound everything; zeros add no MAC cycle. The
    # constant is the pipeline's fixed latency (input FIFO, detector, broadcast FIFO, queue,
    # pointer fetch, entry read, decoder, accumulator write-back, readout): 33 cycles
    # measured (16 before the Fmax pipelining).
    assert t_zero <= -(-cols // p.act_lanes) + rows + 16, t_zero
    assert t_packed <= work + rows + 34, (t_packed, work)


@cocotb.test()
async def test_stream(dut):
    """Vectors back to back: exact, and the readout overlaps the next MAC phase (2 banks).

    With acc_banks=2 the next vector's MACs run while the previous one is read out, with one
    bank never (``pe_active`` against the cycles of the output words).
    """
    h = SparseBench(dut, "steady")
    p, nrng = h.p, h.nrng
    active = []
    h.engine.monitors.append(lambda cycle: active.append(cycle)
                             if int(dut.pe_active.value) else None)
    await h.start()
    w_idx = random_matrix(nrng, p.rows_max, p.cols_max, 0.3)
    enc = encode(w_idx, p.n_pe, codebook=random_codebook(nrng))
    h.load(enc)
    await h.engine.run(lambda: h.i_cfg.idle_now)
    w_q = dense_weights(enc.codebook, w_idx)
    xs = [activations(p, nrng, p.cols_max, "dense") for _ in range(3)]
    start = h.engine.cycle
    for x in xs:
        h.vector(enc, x, w_q)
    await h.engine.run(h.done)
    check_words(dut, h.o.got, h.expected["o"], "stream")
    rows = p.rows_max
    spans = [(h.o.cycles[k * rows], h.o.cycles[k * rows + rows - 1]) for k in range(len(xs))]
    busy = [sum(a <= c <= b for c in active) for a, b in spans]
    dut._log.info("3 vectors in %d cycles; outputs %s; PE-active cycles during each: %s",
                  h.o.cycles[-1] + 1 - start, spans, busy)
    assert busy[-1] == 0, "nothing is left to compute during the last readout"
    if p.acc_banks == 2:
        assert all(busy[:-1]), busy
    else:
        assert not any(busy), busy
    assert int(dut.error.value) == 0


async def _measure(h, enc, w_idx, xs):
    """Run the vectors ``xs`` one after the other (matrix loaded once).

    Returns ``(total, compute)`` cycle lists: from the cycle the first beat is offered to the
    last output word, and to the first output word (the MAC phase plus a fixed 3 cycles).
    """
    w_q = dense_weights(enc.codebook, w_idx)
    h.load(enc)
    await h.engine.run(lambda: h.i_cfg.idle_now)
    h.active[:] = 0
    total, compute = [], []
    for x in xs:
        h.vector(enc, x, w_q)
        first = len(h.o.got)
        start = h.engine.cycle
        await h.engine.run(h.done)
        total.append(h.o.cycles[-1] + 1 - start)
        compute.append(h.o.cycles[first] - start)
    check_words(h.dut, h.o.got, h.expected["o"], "benchmark")
    return total, compute


@cocotb.test()
async def test_demo(dut):
    """Short self-check for `npugen demo`: 10% weights, 50% activations."""
    h = SparseBench(dut, "steady")
    p, nrng = h.p, h.nrng
    await h.start()
    w_idx = random_matrix(nrng, p.rows_max, p.cols_max, 0.1)
    enc = encode(w_idx, p.n_pe, codebook=random_codebook(nrng))
    xs = [activations(p, nrng, p.cols_max, "half") for _ in range(2)]
    total, _ = await _measure(h, enc, w_idx, xs)
    assert int(dut.error.value) == 0
    write_result({"cycles": sum(total), "macs": sum(useful_macs(w_idx, x) for x in xs)})


@cocotb.test()
async def test_benchmark(dut):
    """Cycles and PE activity for the sparse benchmark (scripts/bench_sparse.py)."""
    cfg = json.loads(os.environ.get("NPUGEN_SPARSE_BENCH", "{}"))
    h = SparseBench(dut, "steady")
    p, nrng = h.p, h.nrng
    await h.start()
    rows, cols = cfg.get("rows", p.rows_max), cfg.get("cols", p.cols_max)
    w_idx = random_matrix(nrng, rows, cols, cfg.get("weight_density", 0.1))
    enc = encode(w_idx, p.n_pe, codebook=random_codebook(nrng))
    lo, hi = signed_range(p.act_width)
    xs = []
    for _ in range(cfg.get("vectors", 4)):
        x = nrng.integers(lo, hi + 1, size=cols)
        x[x == 0] = 1
        xs.append(np.where(nrng.random(cols) < cfg.get("act_density", 0.5), x, 0))
    total, compute = await _measure(h, enc, w_idx, xs)
    active = [int(a) for a in h.active]
    # The same vectors again, queued back to back: the throughput of a stream of vectors
    # (with acc_banks=2 each readout overlaps the next vector's MAC phase). In steady state
    # a vector costs the cycles between its last output word and the previous vector's.
    w_q = dense_weights(enc.codebook, w_idx)
    first = len(h.o.got)
    for x in xs:
        h.vector(enc, x, w_q)
    await h.engine.run(h.done)
    check_words(h.dut, h.o.got, h.expected["o"], "benchmark, streamed")
    assert int(dut.error.value) == 0
    ends = [h.o.cycles[first + (k + 1) * rows - 1] for k in range(len(xs))]
    write_result({
        "cycles": total,
        "stream_cycles": [ends[k + 1] - ends[k] for k in range(len(xs) - 1)],
        "compute_cycles": compute,
        "active": active,
        "entries_read": [entries_read(enc, x) for x in xs],
        "useful_macs": [useful_macs(w_idx, x) for x in xs],
        "nonzero_acts": [int(np.count_nonzero(x)) for x in xs],
        "stored": enc.stored,
        "nonzero_weights": int(np.count_nonzero(w_idx)),
    })
