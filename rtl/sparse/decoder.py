"""Relative-index decoder: 8-bit CSC entries to (local row, 16-bit weight) pairs."""

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from ..common.params import Validated, check_int
from .params import INDEX_BITS, RUN_BITS, WEIGHT_WIDTH, SparseParams
from .ports import decoder_signature

__all__ = ["RelIndexDecoder"]


class RelIndexDecoder(Validated, wiring.Component):
    """Decode one PE's entry stream: codebook lookup and relative-to-absolute row addresses.

    Each entry is ``run << 4 | index``. The address accumulator restarts with every column
    (``first``): the entry's local row is ``run`` for the first entry and ``previous + 1 +
    run`` after it. Index 0 is the zero weight (padding entries): it advances the address and
    emits nothing. The decoder also tracks the global row ``local * n_pe + pe`` (with a
    constant ``run * n_pe`` table, no multiplier) and checks it against ``rows``: an entry
    whose row would reach ``rows`` sets the sticky ``error`` and is dropped, as is the rest
    of its column (nothing is ever written out of bounds).

    Parameters
    ----------
    params : SparseParams
    pe : int
        This PE's number (0..n_pe-1): its rows are ``pe, pe + n_pe, ...``.

    Members
    -------
    i : In(stream.Signature(entry_layout))
        ``entry`` (8 bits), ``first`` (first entry of a column), ``act`` (passed through).
    o : Out(stream.Signature(pair_layout))
        ``row`` (local accumulator address), ``weight`` = codebook[index], ``act``.
    codebook : In(stream.Signature(codebook_layout))
        Codebook writes, always accepted; the value of index 0 is never used.
    rows : In(range(rows_max + 1))
        Global row count of the loaded matrix, at most ``rows_max`` (values above it are
        outside the contract: the engine's configuration port rejects them).
    error : Out(1)
        Sticky: an entry ran past ``rows``. Cleared only by reset.
    consistent : Out(1)
        The row trackers agree: unless its column overflowed (the trackers then run on, and
        may wrap, until the next ``first``), the previous entry's global row is its local
        row times ``n_pe`` plus ``pe`` and below ``rows_max`` (or is the reset value
        ``pe``), so the next step cannot wrap; and a held output carries that local row
        (untruncated). Always 1; the invariant that makes the formal "no row at or past
        ``rows``" proof inductive. Unused in a design, it costs nothing.

    Latency 1 cycle (registered output); one entry per cycle; padding and dropped entries
    cost their input cycle and produce no output.
    """

    @classmethod
    def validate(cls, params, pe=0):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        if not isinstance(params, SparseParams):
            raise TypeError(f"params must be SparseParams, not {params!r}")
        check_int("pe", pe, 0, params.n_pe - 1)

    def __init__(self, params, pe=0):
        self.params = params
        self.pe = pe
        super().__init__(decoder_signature(params))

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        p = self.params
        m = Module()
        m.submodules.codebook = cb = Memory(shape=signed(WEIGHT_WIDTH), depth=1 << INDEX_BITS,
                                            init=[])
        cb_w = cb.write_port()
        cb_r = cb.read_port(domain="comb")
        m.d.comb += [
            self.codebook.ready.eq(1),
            cb_w.en.eq(self.codebook.valid),
            cb_w.addr.eq(self.codebook.payload.index),
            cb_w.data.eq(self.codebook.payload.value),
        ]

        max_run = (1 << RUN_BITS) - 1
        # Global rows stay below rows_max between entries; one step adds at most 16*n_pe.
        gwidth = (p.rows_max + (max_run + 1) * p.n_pe).bit_length()
        lwidth = (p.rows_pe_max + max_run + 1).bit_length()
        # Reset state as if a column had just started at local row 0 (global row ``pe``), so
        # a stream whose first entry lacks ``first`` still gets the right global rows.
        prev_local = Signal(lwidth)
        prev_global = Signal(gwidth, init=self.pe)
        col_bad = Signal()  # this column already overflowed: drop its remaining entries

        entry = self.i.payload.entry
        index = entry[:INDEX_BITS]
        run = entry[INDEX_BITS:]
        run_times_npe = Array(Const(z * p.n_pe, gwidth) for z in range(max_run + 1))[run]
        first = self.i.payload.first
        local = Signal(lwidth)
        glob = Signal(gwidth)
        m.d.comb += [
            local.eq(Mux(first, 0, prev_local + 1) + run),
            glob.eq(Mux(first, self.pe, prev_global + p.n_pe) + run_times_npe),
            cb_r.addr.eq(index),
        ]
        bad = (glob >= self.rows) | (col_bad & ~first)

        m.d.comb += self.consistent.eq(
            (col_bad | ((prev_global == prev_local * p.n_pe + self.pe)
                        & (prev_global < max(p.rows_max, self.pe + 1))))
            & (~self.o.valid | (self.o.payload.row == prev_local)))

        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [prev_local.eq(local), prev_global.eq(glob), col_bad.eq(bad)]
            with m.If(bad):
                m.d.sync += self.error.eq(1)
            with m.Elif(index != 0):
                m.d.sync += [
                    self.o.valid.eq(1),
                    self.o.payload.row.eq(local),
                    self.o.payload.weight.eq(cb_r.data),
                    self.o.payload.act.eq(self.i.payload.act),
                ]
        return m

    def manifest_info(self):
        """Return timing, protocol notes and port roles for the JSON manifest."""
        return {
            "latency": {"i_to_o": 1},
            "throughput": {"entries_per_cycle": 1},
            "protocol": [
                "i: entry = run << 4 | index; first marks a column's first entry.",
                "o: (local row, codebook[index], act) for every entry with index != 0.",
                "codebook writes are accepted every cycle.",
                "error is sticky: an entry's global row reached rows; reset clears.",
            ],
            "roles": {"i": "one stored CSC entry of this PE", "o": "decoded (row, weight)",
                      "codebook": "codebook write", "rows": "global row count",
                      "error": "sticky row-overflow flag"},
        }
