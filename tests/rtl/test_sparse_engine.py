"""Sparse matrix-vector engine in the Amaranth simulator, every output word vs the model."""

import random

import numpy as np
import pytest

from npugen.rtl.sparse import CfgOp, SparseMatVec, SparseParams
from npugen.sim.flow.pysim import cycles_until, recv, send, simulate
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
    """Load each ``(enc, xs)`` job and run its vectors; return (outputs, events, error).

    outputs: ``[(y, last) per word]`` per vector. The beats go in as fast as the engine takes
    them while a second bench collects the outputs, so a vector may enter while the previous
    one is read out; events: ``("in", k)`` when vector k's first beat is taken and
    ``("out", k)`` when its first word leaves, in order.
    """
    dut = SparseMatVec(params)
    rng = random.Random(seed)
    out_rng = random.Random(seed + 1)
    results, events, error = [], [], []
    counts = [enc.rows for enc, xs in jobs for _ in xs]

    async def sender(ctx):
        k = 0
        for enc, xs in jobs:
            await send(ctx, dut.i_cfg, [_cfg(b) for b in load_program(enc)], rng, idle)
            for x in xs:
                beats = act_beats(params, x)
                await send(ctx, dut.i_act, beats[:1], rng, idle)
                events.append(("in", k))
                await send(ctx, dut.i_act, beats[1:], rng, idle)
                k += 1

    async def receiver(ctx):
        for k, count in enumerate(counts):
            words = await recv(ctx, dut.o, 1, out_rng, stall)
            events.append(("out", k))
            words += await recv(ctx, dut.o, count - 1, out_rng, stall)
            results.append([(int(w.y), int(w.last)) for w in words])
        error.append(ctx.get(dut.error))

    simulate(dut, sender, receiver)
    return results, events, error[0]


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


@pytest.mark.parametrize(("n_pe", "banks"), [(1, 1), (3, 1), (4, 1), (1, 2), (3, 2)])
def test_engine_random(n_pe, banks, seed):
    p = SparseParams(n_pe=n_pe, rows_max=20, cols_max=12, entries_max=256, act_lanes=4,
                     queue_depth=2, acc_banks=banks)
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
    results, events, error = run_engine(p, jobs, seed, idle=0.3, stall=0.3)
    _check(p, jobs, results)
    assert error == 0
    if banks == 2:  # the readout runs beside the next vector: it enters before a word leaves
        overlaps = sum(events.index(("in", k + 1)) < events.index(("out", k))
                       for k in range(len(results) - 1))
        assert overlaps > 0, events


@pytest.mark.parametrize(("n_pe", "rows", "cols", "lanes", "banks"),
                         [(2, 4, 4, 4, 1), (1, 4, 4, 4, 1), (4, 8, 8, 4, 1), (2, 16, 16, 4, 1),
                          (3, 6, 5, 2, 1), (2, 4, 4, 4, 2), (3, 6, 5, 2, 2)])
def test_latency_matches_the_manifest(n_pe, rows, cols, lanes, banks):
    """The manifest's latency (portable build): 28 cycles, 29 with two accumulator banks.

    One stored entry per PE, one non-zero in the last beat: the first output word is valid
    that many cycles after the cycle of the last beat's handshake, whatever the sizes.
    """
    latency = 28 + (banks == 2)
    p = SparseParams(n_pe=n_pe, rows_max=rows, cols_max=cols, entries_max=64, act_lanes=lanes,
                     acc_banks=banks)
    w = np.zeros((rows, cols), dtype=np.int64)
    w[:n_pe, cols - 1] = 3  # rows are dealt to the PEs in turn: one entry each
    enc = encode(w, n_pe, codebook=np.arange(16) * 7)
    x = np.zeros(cols, dtype=np.int64)
    x[cols - 1] = 5
    dut = SparseMatVec(p)
    assert dut.manifest_info()["latency"]["last_beat_to_first_output"].startswith(
        f"{latency} cycles portable")
    edges = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        await send(ctx, dut.i_cfg, [_cfg(b) for b in load_program(enc)])
        await ctx.tick().repeat(10)
        edges.append(await cycles_until(ctx, dut.i_act, act_beats(p, x),
                                        lambda ctx: ctx.get(dut.o.valid)))

    simulate(dut, bench)
    # cycles_until counts the edges after the handshake's edge: 0 = valid the next cycle.
    assert edges == [latency - 1]
