"""cocotb bench for the relative-index decoder (PE 0), every pair against the model.

Environment: ``DUT_PARAMS`` (SparseParams JSON), ``SEED`` (logged).
"""

import cocotb
import numpy as np

from npugen.rtl.sparse import RelIndexDecoder, SparseParams
from npugen.sim.compress import encode
from npugen.sim.models.sparse import decoder_pairs

from .common import TRAFFIC, bench_setup
from .streams import Sink, Source, StreamEngine


class Harness:
    """Ports of a RelIndexDecoder and the expected pairs."""

    def __init__(self, dut, dec, rng, traffic):
        idle, stall = TRAFFIC[traffic]
        self.dut = dut
        self.p = dec.params
        self.i = Source(dut, "i", dec.entry_layout, idle)
        self.cb = Source(dut, "codebook", dec.codebook_layout, idle)
        self.o = Sink(dut, "o", dec.pair_layout, stall)
        self.engine = StreamEngine(dut, rng, [self.i, self.cb], [self.o])
        self.expected = []

    def codebook(self, cb):
        """Queue a codebook load."""
        self.cb.put(*[{"index": k, "value": int(v)} for k, v in enumerate(cb)])

    def columns(self, columns, cb, rows):
        """Queue columns ``[(entries, act)]``; their first beat waits for the codebook."""
        beats = [{"entry": int(e), "first": int(k == 0), "act": int(act)}
                 for entries, act in columns for k, e in enumerate(entries)]
        first = beats[0]
        self.i.put(lambda: first if self.cb.idle_now else None, *beats[1:])
        pairs, error = decoder_pairs(columns, cb, self.p.n_pe, 0, rows)
        self.expected += [{"row": r, "weight": w, "act": a} for r, w, a in pairs]
        return error

    async def finish(self, what):
        """Run until every expected pair is out and compare them all."""
        await self.engine.run(lambda: len(self.o.got) >= len(self.expected))
        await self.engine.idle(5)
        assert self.o.got == self.expected, f"{what}: pairs differ"


def _columns(p, nrng, density):
    rows = p.rows_max
    w_idx = np.where(nrng.random((rows, 16)) < density, nrng.integers(1, 16, (rows, 16)), 0)
    local = len(range(0, rows, p.n_pe))
    for j, run in enumerate((15, 16, 31, local - 1)):
        if run < local:
            w_idx[0::p.n_pe, j] = 0
            w_idx[run * p.n_pe, j] = 5
    w_idx[:, 4] = 0
    enc = encode(w_idx, p.n_pe)
    return [(list(enc.column(0, j)), int(nrng.integers(-128, 128))) for j in range(16)]


def _codebook(nrng):
    cb = nrng.integers(-32768, 32768, size=16)
    cb[1], cb[2] = -32768, 32767
    return cb


@cocotb.test()
@cocotb.parametrize(traffic=list(TRAFFIC))
async def test_columns(dut, traffic):
    """Encoded columns at 1/10/50/100% density with padding runs; codebook reloads."""
    p, rng, nrng = bench_setup(dut, SparseParams)
    h = Harness(dut, RelIndexDecoder(p), rng, traffic)
    dut.rows.value = p.rows_max
    await h.engine.start()
    for density in (0.01, 0.1, 0.5, 1.0):
        cb = _codebook(nrng)
        h.codebook(cb)
        h.columns(_columns(p, nrng, density), cb, p.rows_max)
        await h.finish(f"density {density} ({traffic})")
    assert int(dut.error.value) == 0


@cocotb.test()
async def test_overflow_and_reset(dut):
    """A row past ``rows`` raises the sticky error and is dropped; reset mid-stream clears."""
    p, rng, nrng = bench_setup(dut, SparseParams)
    h = Harness(dut, RelIndexDecoder(p), rng, "both")
    await h.engine.start()
    cb = _codebook(nrng)
    cols = _columns(p, nrng, 0.5)
    rows = max(1, p.rows_max // 2)
    dut.rows.value = rows
    h.codebook(cb)
    error = h.columns(cols, cb, rows)
    await h.finish("overflowing rows")
    assert int(dut.error.value) == int(error) == 1
    h.columns(cols, cb, rows)
    await h.engine.idle(rng.randrange(2, 10))
    await h.engine.reset(2)
    assert int(dut.error.value) == 0, "reset clears the error flag"
    h.o.got.clear()
    h.expected.clear()
    await h.engine.idle(5)
    assert not h.o.got, "stale pairs after reset"
    dut.rows.value = p.rows_max
    h.codebook(cb)
    h.columns(cols, cb, p.rows_max)
    await h.finish("after reset")
    assert int(dut.error.value) == 0
