"""Relative-index decoder: 8-bit CSC entries to (local row, 16-bit weight) pairs."""

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from ..common.params import Validated, check_int
from .params import INDEX_BITS, RUN_BITS, WEIGHT_WIDTH, Primitives, SparseParams
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
        Sticky: an entry ran past ``rows`` (set the cycle after the entry left stage 1).
        Cleared only by reset.
    busy : Out(1)
        An entry is in stage 0 or 1, a pair waits on ``o``, or a bad entry's ``error`` is
        still to rise.
    consistent : Out(1)
        The row trackers agree: unless its column overflowed (the trackers then run on, and
        may wrap, until the next ``first``), the previous entry's global row is its local
        row times ``n_pe`` plus ``pe`` and below ``rows_max`` (or is the reset value
        ``pe``), so the next step cannot wrap; ``room`` is rows minus that row minus
        ``n_pe``; stage 0's registers match their entry; a pair in stage 1 carries that local
        row, and a held output a row below ``rows``. Always 1; the invariant that makes the
        formal "no row at or past ``rows``" proof inductive. Unused in a design, it costs
        nothing.

    Latency 3 cycles (stage 0: the entry registered, with its constant-table lookups when
    ``primitives=ecp5``; stage 1: the row trackers and the row check; stage 2: the output
    register); one entry per cycle; padding and dropped entries cost their cycle and
    produce no output.
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
        swidth = gwidth + 2
        rows_s = Signal(signed(swidth))
        m.d.comb += rows_s.eq(self.rows)

        def table(values, index):
            return Array(Const(v, signed(swidth)) for v in values)[index]

        # Stage 0 registers the entry with what depends on it alone: constant-table lookups
        # (for an entry that starts from a known row - ``first``, or the first entry after
        # reset, which continues local row 0: run + 1 from the column's start - its global
        # row and the room after it). Stage 1 tracks the rows. ``room`` = rows - (previous
        # global row) - n_pe, so a continuing entry is bad when run * n_pe >= room, a
        # starting one when its global row >= rows (compares of registers), and the next
        # room is room - (run + 1) * n_pe.
        s0_valid = Signal()
        s0_index = Signal(INDEX_BITS)
        s0_run = Signal(RUN_BITS)
        s0_run1 = Signal(RUN_BITS + 1)  # run + 1
        s0_first = Signal()
        s0_start = Signal()
        s0_act = Signal.like(self.i.payload.act)
        s0_r_eff = Signal(range(max_run + 2))
        fresh0 = Signal(init=1)  # no entry taken since reset

        at_start_values = [self.pe + z * p.n_pe for z in range(max_run + 2)]
        start_room_values = [self.pe + (z + 1) * p.n_pe for z in range(max_run + 2)]
        step_values = [(z + 1) * p.n_pe for z in range(max_run + 1)]
        ahead_values = [z * p.n_pe for z in range(max_run + 1)]

        entry = self.i.payload.entry
        in_first = self.i.payload.first
        in_run = entry[INDEX_BITS:]
        in_r_eff = Signal(range(max_run + 2))
        in_cont0 = Signal()  # the first entry after reset continues local row 0: run + 1
        m.d.comb += [in_r_eff.eq(in_run + in_cont0), in_cont0.eq(fresh0 & ~in_first)]

        def start_table(values):
            # values[run + cont0] without the add: two 16-entry tables and a multiplexer.
            return Mux(in_cont0, table(values[1:], in_run), table(values[:-1], in_run))

        s1_valid = Signal()
        s2_take = Signal()
        s1_take = Signal()
        s0_take = Signal()
        m.d.comb += [s2_take.eq(s1_valid & (~self.o.valid | self.o.ready)),
                     s1_take.eq(s0_valid & (~s1_valid | s2_take)),
                     s0_take.eq(self.i.valid & self.i.ready),
                     self.i.ready.eq(~s0_valid | s1_take)]
        with m.If(s0_take):
            m.d.sync += [
                s0_valid.eq(1), s0_index.eq(entry[:INDEX_BITS]), s0_run.eq(in_run),
                s0_run1.eq(in_run + 1),
                s0_first.eq(in_first), s0_start.eq(in_first | fresh0),
                s0_act.eq(self.i.payload.act), s0_r_eff.eq(in_r_eff), fresh0.eq(0),
            ]
        if p.primitives is Primitives.ECP5:
            # The lookups registered in stage 0 (stage 1's compares start at registers).
            s0_at_start = Signal(signed(swidth))
            s0_start_room = Signal(signed(swidth))
            s0_step = Signal(signed(swidth))
            s0_ahead = Signal(signed(swidth))
            with m.If(s0_take):
                m.d.sync += [
                    s0_at_start.eq(start_table(at_start_values)),
                    s0_start_room.eq(start_table(start_room_values)),
                    s0_step.eq(table(step_values, in_run)),
                    s0_ahead.eq(table(ahead_values, in_run)),
                ]
        else:
            # Portable builds look them up in stage 1 (fewer flip-flops on the iCE40).
            s0_at_start = table(at_start_values, s0_r_eff)
            s0_start_room = table(start_room_values, s0_r_eff)
            s0_step = table(step_values, s0_run)
            s0_ahead = table(ahead_values, s0_run)
        with m.Elif(s1_take):
            m.d.sync += s0_valid.eq(0)

        # Stage 1: the row trackers.
        prev_local = Signal(lwidth)
        prev_global = Signal(gwidth, init=self.pe)
        col_bad = Signal()  # this column already overflowed: drop its remaining entries
        fresh = Signal(init=1)  # no entry through stage 1 since reset
        room = Signal(signed(swidth))
        local = Signal(lwidth)
        glob = Signal(gwidth)
        run_times_npe = Array(Const(z * p.n_pe, gwidth) for z in range(max_run + 1))[s0_run]
        m.d.comb += [
            local.eq(Mux(s0_first, s0_run, prev_local + s0_run1)),
            # The plain global row; only ``consistent`` reads it (a design drops it).
            glob.eq(Mux(s0_first, self.pe, prev_global + p.n_pe) + run_times_npe),
            cb_r.addr.eq(s0_index),
        ]
        bad = Mux(s0_start, s0_at_start >= rows_s, col_bad | (s0_ahead >= room))
        room_next = Mux(s0_start, rows_s - s0_start_room, room - s0_step)

        # Stage 1's result: the pair, whether the entry was bad (col_bad is that bit while
        # it is here) and whether it is a padding entry.
        s1_row = Signal(lwidth)
        s1_weight = Signal(signed(WEIGHT_WIDTH))
        s1_act = Signal.like(s0_act)
        s1_keep = Signal()  # index != 0

        m.d.comb += self.consistent.eq(
            (col_bad | ((prev_global == prev_local * p.n_pe + self.pe)
                        & (prev_global < max(p.rows_max, self.pe + 1))
                        & (fresh | (room == rows_s - prev_global - p.n_pe))))
            & (~fresh | ((prev_local == 0) & (prev_global == self.pe) & ~col_bad & ~s1_valid))
            & (fresh0 == (fresh & ~s0_valid))
            & (~s0_valid | (
                (s0_r_eff == s0_run + (fresh & ~s0_first)) & (s0_start == (s0_first | fresh))
                & (s0_run1 == s0_run + 1)
                & (s0_at_start == table(at_start_values, s0_r_eff))
                & (s0_start_room == table(start_room_values, s0_r_eff))
                & (s0_step == table(step_values, s0_run))
                & (s0_ahead == table(ahead_values, s0_run))))
            & (~s1_valid | col_bad | ((s1_row == prev_local) & (prev_global < rows_s)))
            & (~self.o.valid | (self.o.payload.row * p.n_pe + self.pe < rows_s)))

        # A bad entry raises ``error`` a cycle after it leaves stage 1 (``bad_seen`` in
        # between: the compare's carry chain then ends at a register's data pin, not at the
        # sticky flag's enable); ``busy`` covers that cycle.
        bad_seen = Signal()
        m.d.sync += bad_seen.eq(s1_take & bad)
        with m.If(bad_seen):
            m.d.sync += self.error.eq(1)
        m.d.comb += self.busy.eq(s0_valid | s1_valid | self.o.valid | bad_seen)
        with m.If(s1_take):
            m.d.sync += [prev_local.eq(local), prev_global.eq(glob), col_bad.eq(bad),
                         room.eq(room_next), fresh.eq(0),
                         s1_valid.eq(1), s1_row.eq(local), s1_weight.eq(cb_r.data),
                         s1_act.eq(s0_act), s1_keep.eq(s0_index != 0)]
        with m.Elif(s2_take):
            m.d.sync += s1_valid.eq(0)
        # Stage 2: the output register.
        with m.If(s2_take):
            m.d.sync += [
                self.o.valid.eq(s1_keep & ~col_bad),
                self.o.payload.row.eq(s1_row),
                self.o.payload.weight.eq(s1_weight),
                self.o.payload.act.eq(s1_act),
            ]
        with m.Elif(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m

    def manifest_info(self):
        """Return timing, protocol notes and port roles for the JSON manifest."""
        return {
            "latency": {"i_to_o": 3},
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
