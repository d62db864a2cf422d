"""Sparse matrix-vector engine in the Amaranth simulator, every output word vs the model."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from npugen.rtl.sparse import CfgOp, SparseMatVec, SparseParams
from npugen.sim.flow.pysim import recv, send
from npugen.sim.formats.compress import decode_indices, encode
from npugen.sim.formats.sparse import act_beats, load_program
from npugen.sim.models.sparse import dense_weights, sparse_matvec


def _cfg(beat):
    return {**beat, "op": CfgOp(beat["op"])}


def random_matrix(nrng, rows, cols, density):
    """Random codebook indices with the given density of non-zeros."""
    w_idx = nrng.integers(1, 16, size=(rows, cols))
    return np.where(nrng.random((rows, cols)) < density, w_idx, 0)


def run_engine(params, jobs, seed, idle=0.0, stall=0.0):
    """Load each ``(enc, xs)`` job and run its vectors; return ([(y, last) per vector], error).

    Inputs and outputs run sequentially here (the Verilator bench overlaps them).
    """
    dut = SparseMatVec(params)
    rng = random.Random(seed)
    results = []
    error = []

    async def bench(ctx):
        for enc, xs in jobs:
            await send(ctx, dut.i_cfg, [_cfg(b) for b in load_program(enc)], rng, idle)
            for x in xs:
                await send(ctx, dut.i_act, act_beats(params, x), rng, idle)
                words = await recv(ctx, dut.o, enc.rows, rng, stall)
                got = [(int(w.y), int(w.last)) for w in words]
                results.append(got)
        error.append(ctx.get(dut.error))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return results, error[0]


def _check(params, jobs, results):
    k = 0
    for enc, xs in jobs:
        w_q = dense_weights(enc.codebook, decode_indices(enc))
        for x in xs:
            want = sparse_matvec(params, w_q, np.asarray(x))
            got = results[k]
            assert [y for y, _ in got] == [int(v) for v in want], f"vector {k}"
            assert [last for _, last in got] == [0] * (enc.rows - 1) + [1]
            k += 1


@pytest.mark.parametrize("n_pe", [1, 3, 4])
def test_engine_random(n_pe, seed):
    p = SparseParams(n_pe=n_pe, rows_max=20, cols_max=12, entries_max=256, act_lanes=4,
                     queue_depth=2)
    nrng = np.random.default_rng(seed)
    jobs = []
    for rows, cols, density in [(20, 12, 0.3), (7, 5, 1.0), (13, 9, 0.1)]:
        w_idx = random_matrix(nrng, rows, cols, density)
        cb = nrng.integers(-32768, 32768, size=16)
        cb[0] = 0
        enc = encode(w_idx, n_pe, codebook=cb)
        xs = [np.where(nrng.random(cols) < 0.5, nrng.integers(-128, 128, size=cols), 0)
              for _ in range(2)]
        jobs.append((enc, xs))
    results, error = run_engine(p, jobs, seed, idle=0.3, stall=0.3)
    _check(p, jobs, results)
    assert error == 0
