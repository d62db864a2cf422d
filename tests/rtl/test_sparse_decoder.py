"""RelIndexDecoder in the Amaranth simulator: pairs, padding, codebook loads, row overflow."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from npugen.rtl.sparse import RelIndexDecoder, SparseParams
from npugen.sim.flow.pysim import recv, send
from npugen.sim.formats.compress import encode
from npugen.sim.models.sparse import decoder_pairs


def run_decoder(params, pe, rows, codebook, columns, seed, idle=0.0, stall=0.0):
    dut = RelIndexDecoder(params, pe)
    rng = random.Random(seed)
    beats = [{"entry": int(e), "first": int(k == 0), "act": act}
             for entries, act in columns for k, e in enumerate(entries)]
    want, _ = decoder_pairs(columns, codebook, params.n_pe, pe, rows)
    got, error = [], []

    async def bench(ctx):
        ctx.set(dut.rows, rows)
        await send(ctx, dut.codebook, [{"index": i, "value": v} for i, v in enumerate(codebook)])
        await ctx.tick()
        pairs = await recv(ctx, dut.o, len(want), rng, stall)
        got.extend((int(q.row), int(q.weight), int(q.act)) for q in pairs)
        for _ in range(5):
            await ctx.tick()
        error.append(ctx.get(dut.error))

    async def producer(ctx):
        await ctx.tick().repeat(20)
        await send(ctx, dut.i, beats, rng, idle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_testbench(producer)
    sim.run()
    return got, want, error[0]


def _codebook(nrng):
    cb = [0, -32768, 32767, *(int(v) for v in nrng.integers(-32768, 32768, size=13))]
    return cb


@pytest.mark.parametrize(("n_pe", "pe"), [(1, 0), (4, 3), (8, 5)])
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.4, 0.4)])
def test_encoded_columns(n_pe, pe, traffic, seed):
    """Columns of a real encoding, with runs of 15, 16, 31 and 120 zeros and empty columns."""
    p = SparseParams(n_pe=n_pe, rows_max=160 * n_pe)
    nrng = np.random.default_rng(seed)
    rows = 160 * n_pe
    w_idx = np.where(nrng.random((rows, 12)) < 0.2, nrng.integers(1, 16, size=(rows, 12)), 0)
    for j, run in enumerate((15, 16, 31, 120)):
        w_idx[pe::n_pe, j] = 0
        w_idx[pe + run * n_pe, j] = 7
    w_idx[pe::n_pe, 4] = 0  # empty column
    enc = encode(w_idx, n_pe)
    columns = [([int(e) for e in enc.column(pe, j)], int(nrng.integers(-128, 128)))
               for j in range(12)]
    got, want, error = run_decoder(p, pe, rows, _codebook(nrng), columns, seed, *traffic)
    assert got == want
    assert error == 0


def test_every_entry_value(seed):
    """All 256 entry bytes, as a column start and after a previous entry."""
    p = SparseParams(n_pe=2, rows_max=2 * 40)
    nrng = np.random.default_rng(seed)
    columns = [([e], -5) for e in range(256)] + [([0x00, e], 3) for e in range(256)]
    got, want, error = run_decoder(p, 1, 80, _codebook(nrng), columns, seed)
    assert got == want and error == 0


@pytest.mark.parametrize("rows", [9, 10, 11])
def test_row_overflow_sets_sticky_error(rows, seed):
    """PE 1 of 2 owns rows 1, 3, 5, ...: local row 4 is global 9."""
    p = SparseParams(n_pe=2, rows_max=16)
    nrng = np.random.default_rng(seed)
    cb = _codebook(nrng)
    columns = [([0x01, 0x12, 0x03], 2), ([0x05], 4)]  # local rows 0, 2, 3 | 0
    got, want, error = run_decoder(p, 1, rows, cb, columns, seed)
    overflow = 3 * 2 + 1 >= rows
    # Hand-checked: the overflowing entry and the rest of its column are dropped.
    assert got == ([(0, cb[1], 2), (2, cb[2], 2), (0, cb[5], 4)] if overflow else want)
    assert decoder_pairs(columns, cb, 2, 1, rows) == (got, overflow)
    assert error == int(overflow)


def test_stream_without_column_start_stays_in_rows():
    """An entry stream whose first entry lacks ``first`` still gets its rows checked.

    Outside the protocol, but bounded all the same: PE 2 of 3 after reset is at global
    row 2, so the next entry's row is 5, past ``rows`` = 4. (The decoder's global tracker
    once started at 0 and let row 5 out as local row 1; the formal tier's
    ``test_decoder_rows`` found it.)
    """
    p = SparseParams(n_pe=3, rows_max=12)
    dut = RelIndexDecoder(p, 2)
    seen = []

    async def bench(ctx):
        ctx.set(dut.rows, 4)
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.payload, {"entry": 0x01, "first": 0, "act": 1})
        ctx.set(dut.i.valid, 1)
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for _ in range(3):
            seen.append(ctx.get(dut.o.valid))
            await ctx.tick()
        seen.append(ctx.get(dut.error))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [0, 0, 0, 1]


def test_wrong_pe():
    with pytest.raises(ValueError, match=r"pe must be in 0\.\.3, not 4"):
        RelIndexDecoder(SparseParams(n_pe=4), 4)
