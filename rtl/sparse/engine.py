"""EIE-style sparse matrix-vector engine: y = W_q . x on a pruned, weight-shared matrix."""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring

from ..common.params import Validated
from ..common.pipeline import in_range, select
from ..common.result_buffer import ResultBuffer
from .params import ENTRY_BITS, SparseParams
from .pe import SparsePE
from .ports import CfgOp, out_layout, signature

__all__ = ["SparseMatVec"]


#: Output words buffered so that readout runs at one word per cycle.
OUT_DEPTH = 8


class SparseMatVec(Validated, wiring.Component):
    """Sparse matrix-vector engine (EIE): ``n_pe`` PEs, CSC storage, zero skipping.

    ::

        i_act --> zero-beat drop --> A --> B: leading-non-zero detector --(j, x_j)-->
            broadcast to every PE queue (stalls while any queue is full)
        PE p: queue -> pointers -> entries -> RelIndexDecoder -> 16 x act_width MAC into
            its local accumulators (rows p, p + n_pe, ...)
        all PEs drained --> readout y[0..rows-1] (row i from PE i % n_pe) --> o

    Load (while idle, through ``i_cfg``): SHAPE, CODEBOOK, and per PE the column pointers
    and the entries of :mod:`npugen.sim.compress`'s format. The loaded model survives reset
    and runs any number of vectors; loading again replaces any part of it.

    Run: the activation vector arrives on ``i_act``, ``act_lanes`` columns per beat,
    ``last`` on beat ``ceil(cols / act_lanes) - 1`` (the column count decides where the
    vector ends; a ``last`` elsewhere raises ``error``). Lanes past ``cols`` are ignored.
    All-zero beats are taken and dropped at one beat per cycle without occupying the
    detector; every other zero costs no cycle either: the detector hands one non-zero
    activation per cycle to the PEs. After the last beat and once every PE has drained,
    ``o`` streams ``y[i]`` for ``i = 0..rows-1``, ``last`` on the final row, one per cycle
    (backpressure allowed), while the accumulators are cleared for the next vector.

    Arithmetic: ``y = wrap(sum_j codebook[idx_ij] * x_j, acc_width)``, then ``max(y, 0)``
    with ``relu``. Products are exact (16 + act_width bits); accumulators wrap.

    Errors (sticky ``error``, cleared by reset; nothing is written out of bounds): an
    ``i_cfg`` field out of range (the beat is ignored), a misplaced ``i_act.last``, a column
    whose pointers are not ``ptr[j] <= ptr[j+1] <= entries_max`` (skipped), an entry whose
    row runs past ``rows`` (dropped with the rest of its column).

    Reset: back to idle with nothing in flight; the accumulators are cleared in
    ``ceil(rows_max / n_pe)`` cycles before ``i_act`` is accepted again.

    Members
    -------
    i_cfg : In(stream.Signature(CFG_LAYOUT))
        ``op`` (:class:`CfgOp`), ``pe`` (6 bits), ``addr`` (16 bits), ``data`` (16 bits).
    i_act : In(stream.Signature(StructLayout{a: act_lanes x signed(act_width), last}))
    o : Out(stream.Signature(StructLayout{y: signed(acc_width), last}))
    error : Out(1)
    pe_active : Out(n_pe)
        Bit p: PE p reads a stored entry this cycle (load-balance monitor).
    """

    @classmethod
    def validate(cls, params):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        if not isinstance(params, SparseParams):
            raise TypeError(f"params must be SparseParams, not {params!r}")

    def __init__(self, params):
        self.params = params
        super().__init__(signature(params))

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        p = self.params
        m = Module()
        lanes = p.act_lanes

        # Shape of the loaded model: kept across reset, like the memories.
        rows = Signal(range(p.rows_max + 1), init=p.rows_max, reset_less=True)
        cols = Signal(range(p.cols_max + 1), init=p.cols_max, reset_less=True)
        cfg_error = Signal()
        act_error = Signal()

        pes = []
        for n in range(p.n_pe):
            m.submodules[f"pe_{n}"] = pe = SparsePE(p, n)
            pes.append(pe)
            m.d.comb += pe.rows.eq(rows)
        any_busy = Cat(pe.busy for pe in pes).any()
        queues_ready = Cat(pe.q.ready for pe in pes).all()
        m.d.comb += [
            self.pe_active.eq(Cat(pe.active for pe in pes)),
            self.error.eq(cfg_error | act_error | Cat(pe.error for pe in pes).any()),
        ]

        # ---- configuration writes (only while idle) ----
        cfg = self.i_cfg.payload
        cfg_fire = Signal()
        m.d.comb += cfg_fire.eq(self.i_cfg.valid & self.i_cfg.ready)
        pe_ok = in_range(cfg.pe, 0, p.n_pe - 1)
        ptr_ok = pe_ok & (cfg.addr <= p.cols_max) & in_range(cfg.data, 0, p.entries_max)
        entry_ok = pe_ok & (cfg.addr < p.entries_max) & (cfg.data < 1 << ENTRY_BITS)
        with m.If(cfg_fire):
            with m.Switch(cfg.op):
                with m.Case(CfgOp.SHAPE):
                    with m.If((cfg.addr >= 1) & (cfg.addr <= p.rows_max) &
                              (cfg.data >= 1) & (cfg.data <= p.cols_max)):
                        m.d.sync += [rows.eq(cfg.addr), cols.eq(cfg.data)]
                    with m.Else():
                        m.d.sync += cfg_error.eq(1)
                with m.Case(CfgOp.CODEBOOK):
                    with m.If(cfg.addr >= 16):
                        m.d.sync += cfg_error.eq(1)
                with m.Case(CfgOp.POINTER):
                    with m.If(~ptr_ok):
                        m.d.sync += cfg_error.eq(1)
                with m.Case(CfgOp.ENTRY):
                    with m.If(~entry_ok):
                        m.d.sync += cfg_error.eq(1)
        for n, pe in enumerate(pes):
            here = cfg.pe == n
            m.d.comb += [
                pe.ptr_w.en.eq(cfg_fire & (cfg.op == CfgOp.POINTER) & ptr_ok & here),
                pe.ptr_w.addr.eq(cfg.addr),
                pe.ptr_w.data.eq(cfg.data),
                pe.entry_w.en.eq(cfg_fire & (cfg.op == CfgOp.ENTRY) & entry_ok & here),
                pe.entry_w.addr.eq(cfg.addr),
                pe.entry_w.data.eq(cfg.data),
                pe.codebook.valid.eq(cfg_fire & (cfg.op == CfgOp.CODEBOOK) & (cfg.addr < 16)),
                pe.codebook.payload.index.eq(cfg.addr),
                pe.codebook.payload.value.eq(cfg.data),
            ]

        # ---- activation input: drop all-zero beats, stage A, detector stage B ----
        act = self.i_act.payload
        col_base = Signal(range(p.cols_max + lanes + 1))
        input_done = Signal()
        act_phase = Signal()
        nz = Signal(lanes)
        m.d.comb += nz.eq(Cat((act.a[k] != 0) & (col_base + k < cols) for k in range(lanes)))
        beat_last = col_base + lanes >= cols

        a_valid = Signal()
        a_mask = Signal(lanes)
        a_vals = Signal(data.ArrayLayout(signed(p.act_width), lanes))
        a_base = Signal.like(col_base)
        b_mask = Signal(lanes)
        b_vals = Signal(data.ArrayLayout(signed(p.act_width), lanes))
        b_base = Signal.like(col_base)

        sel = Signal(range(max(2, lanes)))
        for k in reversed(range(lanes)):  # lowest set bit wins (assigned last)
            with m.If(b_mask[k]):
                m.d.comb += sel.eq(k)
        bcast = Signal()
        b_rest = b_mask & (b_mask - 1)
        m.d.comb += bcast.eq((b_mask != 0) & queues_ready)
        b_next_empty = (b_mask == 0) | (bcast & (b_rest == 0))
        a_move = a_valid & b_next_empty
        for pe in pes:
            m.d.comb += [
                pe.q.valid.eq(bcast),
                pe.q.payload.col.eq(b_base + sel),
                pe.q.payload.act.eq(Array(b_vals[k] for k in range(lanes))[sel]
                                    if lanes > 1 else b_vals[0]),
            ]
        with m.If(a_move):
            m.d.sync += [b_mask.eq(a_mask), b_vals.eq(a_vals), b_base.eq(a_base),
                         a_valid.eq(0)]
        with m.Elif(bcast):
            m.d.sync += b_mask.eq(b_rest)

        act_fire = Signal()
        m.d.comb += [
            self.i_act.ready.eq(act_phase & ((nz == 0) | ~a_valid | a_move)),
            act_fire.eq(self.i_act.valid & self.i_act.ready),
        ]
        with m.If(act_fire):
            m.d.sync += col_base.eq(Mux(beat_last, 0, col_base + lanes))
            with m.If(beat_last):
                m.d.sync += input_done.eq(1)
            with m.If(act.last != beat_last):
                m.d.sync += act_error.eq(1)
            with m.If(nz != 0):
                m.d.sync += [a_valid.eq(1), a_mask.eq(nz), a_vals.eq(act.a), a_base.eq(col_base)]

        # ---- readout into the output buffer, clearing as it goes ----
        m.submodules.out_buf = buf = ResultBuffer(out_layout(p), depth=OUT_DEPTH,
                                                  max_reserve=1)
        wiring.connect(m, wiring.flipped(self.o), buf.o)
        local_range = range(max(2, p.rows_pe_max))
        rd_pe = Signal(range(max(2, p.n_pe)))
        rd_local = Signal(local_range)
        rd_row = Signal(range(p.rows_max + 1))
        rd_issue = Signal()
        rd_last = Signal()
        clear_all = Signal()
        clear_addr = Signal(local_range)
        rd_issue_d = Signal()
        rd_pe_d = Signal.like(rd_pe)
        rd_local_d = Signal.like(rd_local)
        rd_last_d = Signal()
        m.d.sync += [rd_issue_d.eq(rd_issue), rd_pe_d.eq(rd_pe), rd_local_d.eq(rd_local),
                     rd_last_d.eq(rd_last)]
        m.d.comb += [
            rd_last.eq(rd_row + 1 == rows),
            buf.reserve.eq(rd_issue),
        ]
        y = select([pe.acc_data for pe in pes], rd_pe_d)
        m.d.comb += [
            buf.w_en.eq(rd_issue_d),
            buf.w_data.y.eq(Mux(y[-1], 0, y) if p.relu else y),
            buf.w_data.last.eq(rd_last_d),
        ]
        for n, pe in enumerate(pes):
            m.d.comb += [
                pe.acc_addr.eq(rd_local),
                pe.clear.en.eq(clear_all | (rd_issue_d & (rd_pe_d == n))),
                pe.clear.addr.eq(Mux(clear_all, clear_addr, rd_local_d)),
            ]
        with m.If(rd_issue):
            m.d.sync += rd_row.eq(rd_row + 1)
            with m.If(rd_pe == p.n_pe - 1):
                m.d.sync += [rd_pe.eq(0), rd_local.eq(rd_local + 1)]
            with m.Else():
                m.d.sync += rd_pe.eq(rd_pe + 1)

        with m.FSM(init="CLEAR"):
            with m.State("CLEAR"):
                m.d.comb += clear_all.eq(1)
                for pe in pes:
                    m.d.comb += pe.readout.eq(1)
                m.d.sync += clear_addr.eq(clear_addr + 1)
                with m.If(clear_addr == max(2, p.rows_pe_max) - 1):
                    m.next = "IDLE"
            with m.State("IDLE"):
                m.d.comb += [self.i_cfg.ready.eq(1), act_phase.eq(~self.i_cfg.valid)]
                with m.If(act_fire):
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += act_phase.eq(~input_done)
                with m.If(input_done & ~a_valid & (b_mask == 0) & ~any_busy):
                    m.next = "READ"
            with m.State("READ"):
                for pe in pes:
                    m.d.comb += pe.readout.eq(1)
                m.d.comb += rd_issue.eq(buf.free != 0)
                with m.If(rd_issue & rd_last):
                    m.d.sync += [rd_row.eq(0), rd_pe.eq(0), rd_local.eq(0), input_done.eq(0)]
                    m.next = "IDLE"
        return m

    def manifest_info(self):
        """Return timing, protocol notes and port roles for the JSON manifest."""
        p = self.params
        return {
            "latency": {
                "last_beat_to_first_output": "about 10 + max over PEs of the entries still queued "
                                             "(data-dependent)",
                "reset_to_ready": max(2, p.rows_pe_max),
            },
            "throughput": {
                "input_beats_per_cycle": 1,
                "nonzero_activations_per_cycle": 1,
                "stored_entries_per_cycle_per_pe": 1,
                "multipliers": p.n_pe,
                "outputs_per_cycle": 1,
            },
            "protocol": [
                ("Load while idle on i_cfg: SHAPE (addr=rows, data=cols), CODEBOOK (addr=index, "
                "data=int16), POINTER (pe, addr=column 0..cols, data=pointer), ENTRY (pe, "
                "addr, data=run<<4|index); format of npugen.sim.compress."),
                (f"i_act: the vector, {p.act_lanes} columns per beat, last on the final beat; "
                "lanes past cols ignored. i_cfg beats wait while a vector runs."),
                "o: y[0..rows-1], last on the final row; y = wrap(W_q x, acc_width)"
                + (", then ReLU" if p.relu else "") + ".",
                ("error is sticky (bad i_cfg field, misplaced last, bad pointer, row overflow); "
                "reset clears it and keeps the loaded model."),
            ],
            "roles": {
                "i_cfg": "model load: op, pe, addr, data",
                "i_act": f"a: {p.act_lanes} x signed {p.act_width}-bit activations; last",
                "o": f"y: signed {p.acc_width}-bit output; last on row rows-1",
                "error": "sticky error flag",
                "pe_active": "bit p: PE p reads a stored entry this cycle",
            },
        }
