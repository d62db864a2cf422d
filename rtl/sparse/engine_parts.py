"""The pieces of :class:`~.engine.SparseMatVec`: model writes, activation input, readout.

::

    i_cfg --> ConfigWriter --(pointer, entry and codebook writes; rows, cols)--> PEs
    i_act --> ActivationInput: drop all-zero beats, A, B: leading-non-zero detector
              --(column, value), one per cycle--> every PE's queue
    PEs' accumulators --> Readout: y[0..rows-1], row i from PE i % n_pe --> o
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..common.pipeline import in_range, select
from ..common.result_buffer import ResultBuffer
from .params import ENTRY_BITS
from .ports import CFG_LAYOUT, CfgOp, act_item_layout, act_layout, codebook_layout, out_layout

__all__ = ["OUT_DEPTH", "ActivationInput", "ConfigWriter", "Readout"]

#: Output words buffered so that readout runs at one word per cycle.
OUT_DEPTH = 8


def _write_layout(addr_shape, data_shape):
    return data.StructLayout({"en": 1, "addr": addr_shape, "data": data_shape})


class ConfigWriter(wiring.Component):
    """Checks each ``i_cfg`` beat and turns it into a memory write or the new shape.

    Members
    -------
    cfg : In(CFG_LAYOUT), fire : In(1)
        The beat, and that it is taken this cycle.
    rows, cols : Out
        The loaded shape (kept across reset, like the memories; initially the maxima).
    ptr_en, entry_en : Out(n_pe)
        Bit p: write PE p's pointer / entry memory at ``addr`` with ``data`` this cycle.
    addr, data : Out(16)
        The beat's address and data, for those writes.
    codebook : Out(stream.Signature(codebook_layout))
        A codebook write, for every PE's decoder (always taken).
    error : Out(1)
        Sticky: a field out of range (the beat is then ignored): SHAPE rows outside
        1..rows_max or cols outside 1..cols_max; CODEBOOK index above 15; POINTER pe at or
        above n_pe, column above cols_max or pointer above entries_max; ENTRY pe at or above
        n_pe, address at or above entries_max or data above 255.
    """

    def __init__(self, params):
        self.params = p = params
        super().__init__({
            "cfg": In(CFG_LAYOUT), "fire": In(1),
            "rows": Out(range(p.rows_max + 1), init=p.rows_max),
            "cols": Out(range(p.cols_max + 1), init=p.cols_max),
            "ptr_en": Out(p.n_pe), "entry_en": Out(p.n_pe),
            "addr": Out(16), "data": Out(16),
            "codebook": Out(stream.Signature(codebook_layout())),
            "error": Out(1),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.params
        cfg, fire = self.cfg, self.fire
        # The shape survives reset: a register without one drives each output.
        rows = Signal(range(p.rows_max + 1), init=p.rows_max, reset_less=True)
        cols = Signal(range(p.cols_max + 1), init=p.cols_max, reset_less=True)
        m.d.comb += [self.rows.eq(rows), self.cols.eq(cols)]
        pe_ok = in_range(cfg.pe, 0, p.n_pe - 1)
        ptr_ok = pe_ok & (cfg.addr <= p.cols_max) & in_range(cfg.data, 0, p.entries_max)
        entry_ok = pe_ok & (cfg.addr < p.entries_max) & (cfg.data < 1 << ENTRY_BITS)
        with m.If(fire):
            with m.Switch(cfg.op):
                with m.Case(CfgOp.SHAPE):
                    with m.If((cfg.addr >= 1) & (cfg.addr <= p.rows_max) &
                              (cfg.data >= 1) & (cfg.data <= p.cols_max)):
                        m.d.sync += [rows.eq(cfg.addr), cols.eq(cfg.data)]
                    with m.Else():
                        m.d.sync += self.error.eq(1)
                with m.Case(CfgOp.CODEBOOK):
                    with m.If(cfg.addr >= 16):
                        m.d.sync += self.error.eq(1)
                with m.Case(CfgOp.POINTER):
                    with m.If(~ptr_ok):
                        m.d.sync += self.error.eq(1)
                with m.Case(CfgOp.ENTRY):
                    with m.If(~entry_ok):
                        m.d.sync += self.error.eq(1)
        ptr_write = fire & (cfg.op == CfgOp.POINTER) & ptr_ok
        entry_write = fire & (cfg.op == CfgOp.ENTRY) & entry_ok
        m.d.comb += [
            self.ptr_en.eq(Cat(ptr_write & (cfg.pe == n) for n in range(p.n_pe))),
            self.entry_en.eq(Cat(entry_write & (cfg.pe == n) for n in range(p.n_pe))),
            self.addr.eq(cfg.addr), self.data.eq(cfg.data),
            self.codebook.valid.eq(fire & (cfg.op == CfgOp.CODEBOOK) & (cfg.addr < 16)),
            self.codebook.payload.index.eq(cfg.addr),
            self.codebook.payload.value.eq(cfg.data),
        ]
        return m


class ActivationInput(wiring.Component):
    """Takes the vector's beats and hands its non-zero activations to the PEs, one per cycle.

    Stage A holds a beat's non-zero lanes (lanes past ``cols`` count as zero); stage B, the
    leading-non-zero detector, sends the lowest remaining one to every PE's queue (``item``,
    while ``queues_ready``). A beat without a non-zero lane is taken and dropped at once, so
    all-zero beats cost one cycle each and occupy neither stage.

    Members
    -------
    i_act : In(stream.Signature(act_layout))
        Taken while ``enable`` and stage A is free (or frees this cycle).
    cols : In
        Columns of the loaded matrix: the vector ends with beat ``ceil(cols / act_lanes) -
        1`` whatever ``last`` says (a ``last`` elsewhere sets ``error``).
    enable : In(1)
        The engine takes activations.
    queues_ready : In(1), item : Out(stream.Signature(act_item_layout))
        Broadcast to the PE queues: ``item.valid`` rises with ``queues_ready``.
    taken : Out(1)
        A beat is taken this cycle.
    done : Out(1)
        The vector's last beat was taken (until ``restart``).
    empty : Out(1)
        Stages A and B hold nothing.
    restart : In(1)
        The vector has been read out: the next one may come.
    error : Out(1)
        Sticky: a misplaced ``last``.
    """

    def __init__(self, params):
        self.params = p = params
        super().__init__({
            "i_act": In(stream.Signature(act_layout(p))),
            "cols": In(range(p.cols_max + 1)), "enable": In(1),
            "queues_ready": In(1), "item": Out(stream.Signature(act_item_layout(p))),
            "taken": Out(1), "done": Out(1), "empty": Out(1), "restart": In(1),
            "error": Out(1),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.params
        lanes = p.act_lanes
        act = self.i_act.payload
        col_base = Signal(range(p.cols_max + lanes + 1))
        nz = Signal(lanes)
        m.d.comb += nz.eq(Cat((act.a[k] != 0) & (col_base + k < self.cols)
                              for k in range(lanes)))
        beat_last = col_base + lanes >= self.cols

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
        m.d.comb += [
            bcast.eq((b_mask != 0) & self.queues_ready),
            self.item.valid.eq(bcast),
            self.item.payload.col.eq(b_base + sel),
            self.item.payload.act.eq(Array(b_vals[k] for k in range(lanes))[sel]
                                     if lanes > 1 else b_vals[0]),
            self.empty.eq(~a_valid & (b_mask == 0)),
        ]
        b_next_empty = (b_mask == 0) | (bcast & (b_rest == 0))
        a_move = a_valid & b_next_empty
        with m.If(a_move):
            m.d.sync += [b_mask.eq(a_mask), b_vals.eq(a_vals), b_base.eq(a_base),
                         a_valid.eq(0)]
        with m.Elif(bcast):
            m.d.sync += b_mask.eq(b_rest)

        m.d.comb += [
            self.i_act.ready.eq(self.enable & ((nz == 0) | ~a_valid | a_move)),
            self.taken.eq(self.i_act.valid & self.i_act.ready),
        ]
        with m.If(self.taken):
            m.d.sync += col_base.eq(Mux(beat_last, 0, col_base + lanes))
            with m.If(beat_last):
                m.d.sync += self.done.eq(1)
            with m.If(act.last != beat_last):
                m.d.sync += self.error.eq(1)
            with m.If(nz != 0):
                m.d.sync += [a_valid.eq(1), a_mask.eq(nz), a_vals.eq(act.a), a_base.eq(col_base)]
        with m.If(self.restart):
            m.d.sync += self.done.eq(0)
        return m


class Readout(wiring.Component):
    """Reads y[0..rows-1] from the PEs' accumulators into ``o``, clearing them as it goes.

    Row i is PE i % n_pe's accumulator i // n_pe. A read is issued whenever ``read`` and the
    output buffer has a free slot; the word reaches the buffer two cycles later (accumulator
    read, then select and ReLU), so with ``o`` always ready one row leaves per cycle. The
    accumulator read is also its clear: the PE writes zero where it was read.

    Members
    -------
    rows : In
        Rows of the loaded matrix.
    read : In(1)
        The engine is in its readout phase.
    clear_all : In(1), clear_addr : In
        After reset: clear every PE's accumulator ``clear_addr`` (the engine steps it).
    acc_addr : Out
        Accumulator address for every PE (the row being issued).
    acc_data : In(ArrayLayout(signed(acc_width), n_pe))
        Each PE's accumulator at the previous cycle's ``acc_addr``.
    clear_en : Out(n_pe), clear_to : Out
        Bit p: PE p writes zero at ``clear_to`` this cycle.
    last_issued : Out(1)
        The read of row ``rows - 1`` is issued this cycle (the counters restart).
    o : Out(stream.Signature(out_layout))
    """

    def __init__(self, params):
        self.params = p = params
        local = range(max(2, p.rows_pe_max))
        super().__init__({
            "rows": In(range(p.rows_max + 1)), "read": In(1),
            "clear_all": In(1), "clear_addr": In(local),
            "acc_addr": Out(local), "acc_data": In(data.ArrayLayout(signed(p.acc_width), p.n_pe)),
            "clear_en": Out(p.n_pe), "clear_to": Out(local),
            "last_issued": Out(1),
            "o": Out(stream.Signature(out_layout(p))),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.params
        m.submodules.out_buf = buf = ResultBuffer(out_layout(p), depth=OUT_DEPTH, max_reserve=1)
        wiring.connect(m, wiring.flipped(self.o), buf.o)
        rd_pe = Signal(range(max(2, p.n_pe)))
        rd_local = self.acc_addr
        rd_row = Signal(range(p.rows_max + 1))
        rd_issue = Signal()
        rd_last = Signal()
        rd_issue_d = Signal()
        rd_pe_d = Signal.like(rd_pe)
        rd_local_d = Signal.like(rd_local)
        rd_last_d = Signal()
        m.d.sync += [rd_issue_d.eq(rd_issue), rd_pe_d.eq(rd_pe), rd_local_d.eq(rd_local),
                     rd_last_d.eq(rd_last)]
        y = select(list(self.acc_data), rd_pe_d)
        m.d.comb += [
            rd_issue.eq(self.read & (buf.free != 0)),
            rd_last.eq(rd_row + 1 == self.rows),
            self.last_issued.eq(rd_issue & rd_last),
            buf.reserve.eq(rd_issue),
            buf.w_en.eq(rd_issue_d),
            buf.w_data.y.eq(Mux(y[-1], 0, y) if p.relu else y),
            buf.w_data.last.eq(rd_last_d),
            self.clear_en.eq(Cat(self.clear_all | (rd_issue_d & (rd_pe_d == n))
                                 for n in range(p.n_pe))),
            self.clear_to.eq(Mux(self.clear_all, self.clear_addr, rd_local_d)),
        ]
        with m.If(rd_issue):
            m.d.sync += rd_row.eq(rd_row + 1)
            with m.If(rd_pe == p.n_pe - 1):
                m.d.sync += [rd_pe.eq(0), rd_local.eq(rd_local + 1)]
            with m.Else():
                m.d.sync += rd_pe.eq(rd_pe + 1)
        with m.If(self.last_issued):
            m.d.sync += [rd_row.eq(0), rd_pe.eq(0), rd_local.eq(0)]
        return m
