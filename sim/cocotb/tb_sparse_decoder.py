"""cocotb bench for the relative-index decoder (PE 0), every pair against the model.

Environment (see :class:`~.bench.Bench`): ``DUT_PARAMS``, ``SEED``, ``NPUGEN_PART=decoder``.
"""

import cocotb
import numpy as np

from ..formats.compress import encode
from ..formats.sparse import codebook_beats, entry_beats, pair_beats
from ..models.sparse import decoder_pairs
from .bench import TRAFFIC, Bench


class DecoderBench(Bench):
    """A RelIndexDecoder: codebook loads, entry columns and the expected pairs."""

    def __init__(self, dut, traffic):
        super().__init__(dut, traffic)
        self.p = self.params

    def codebook(self, cb):
        """Queue a codebook load."""
        self.src["codebook"].put(*codebook_beats(self.p, cb))

    def columns(self, columns, cb, rows):
        """Queue columns ``[(entries, act)]``; their first beat waits for the codebook.

        Returns whether the model flags a row overflow.
        """
        first, *rest = entry_beats(self.p, columns)
        self.i.put(lambda: first if self.src["codebook"].idle_now else None, *rest)
        pairs, error = decoder_pairs(columns, cb, self.p.n_pe, 0, rows)
        self.expect("o", pair_beats(pairs))
        return error


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
    h = DecoderBench(dut, traffic)
    dut.rows.value = h.p.rows_max
    await h.start()
    for density in (0.01, 0.1, 0.5, 1.0):
        cb = _codebook(h.nrng)
        h.codebook(cb)
        h.columns(_columns(h.p, h.nrng, density), cb, h.p.rows_max)
        await h.finish(f"density {density} ({traffic})")
    assert int(dut.error.value) == 0


@cocotb.test()
async def test_overflow_and_reset(dut):
    """A row past ``rows`` raises the sticky error and is dropped; reset mid-stream clears."""
    h = DecoderBench(dut, "both")
    p = h.p
    await h.start()
    cb = _codebook(h.nrng)
    cols = _columns(p, h.nrng, 0.5)
    rows = max(1, p.rows_max // 2)
    dut.rows.value = rows
    h.codebook(cb)
    error = h.columns(cols, cb, rows)
    await h.finish("overflowing rows")
    assert int(dut.error.value) == int(error) == 1
    h.columns(cols, cb, rows)
    await h.engine.idle(h.rng.randrange(2, 10))
    await h.reset_mid_stream(quiet=5, cycles=2)
    assert int(dut.error.value) == 0, "reset clears the error flag"
    dut.rows.value = p.rows_max
    h.codebook(cb)
    h.columns(cols, cb, p.rows_max)
    await h.finish("after reset")
    assert int(dut.error.value) == 0
