"""The pieces of :class:`~.pe.SparsePE`: column fetch, entry walker, accumulator.

::

    q -> ColumnFetch: queue, R: read ptr[j] and ptr[j+1], C: register them, P: check
      -(column: start, end, act, ok)-> EntryWalker: G: walk entries start..end-1, E: read
      the entry memory, F: register the entry -(entry, first, act)-> RelIndexDecoder
      -(local row, weight, act)-> Accumulator: M: product and accumulator read, A: write

Every block-RAM output goes into a register before any logic (slow clock-to-out).
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..common.pipeline import in_range
from .params import ENTRY_BITS
from .ports import act_item_layout, entry_layout, pair_layout

__all__ = ["Accumulator", "ColumnFetch", "EntryWalker", "column_layout", "write_layout"]


def write_layout(addr_shape, data_shape):
    """Return the layout of a memory write: enable, address, data."""
    return data.StructLayout({"en": 1, "addr": addr_shape, "data": data_shape})


def column_layout(p):
    """Return the layout of a column to walk: entries ``start..end-1``, activation, ``ok``."""
    return data.StructLayout({"start": unsigned(p.ptr_width), "end": unsigned(p.ptr_width),
                              "act": signed(p.act_width), "ok": 1})


def _queue(width, depth):
    # SyncFIFOBuffered's depth-1 form is a single register; SyncFIFO's has zero-width
    # address wires.
    if depth == 1:
        return fifo.SyncFIFOBuffered(width=width, depth=1)
    return fifo.SyncFIFO(width=width, depth=depth)


class ColumnFetch(wiring.Component):
    """Queues the broadcast activations and fetches each one's column pointers.

    Members
    -------
    q : In(stream.Signature(act_item_layout))
        Non-zero activations (a queue of ``queue_depth``).
    ptr_w : In(write_layout)
        Pointer memory writes (``cols_max + 1`` words of ``ptr_width``).
    column : Out(stream.Signature(column_layout))
        Registered: ``ok`` is ``ptr[j] <= ptr[j+1] <= entries_max``. The column's pointers
        come three cycles after the activation leaves the queue (read, register, check);
        one column per cycle when ``column`` is always ready.
    busy : Out(1)
        The queue or a stage holds an activation.
    """

    def __init__(self, params):
        self.params = p = params
        super().__init__({
            "q": In(stream.Signature(act_item_layout(p))),
            "ptr_w": In(write_layout(range(p.cols_max + 1), unsigned(p.ptr_width))),
            "column": Out(stream.Signature(column_layout(p))),
            "busy": Out(1),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        p = self.params
        m = Module()
        layout = act_item_layout(p)
        m.submodules.queue = queue = _queue(data.Layout.cast(layout).size, p.queue_depth)
        m.d.comb += [
            queue.w_en.eq(self.q.valid),
            queue.w_data.eq(self.q.payload.as_value()),
            self.q.ready.eq(queue.w_rdy),
        ]
        head = data.View(layout, queue.r_data)
        m.submodules.ptr = ptr = Memory(shape=unsigned(p.ptr_width), depth=p.cols_max + 1,
                                        init=[])
        ptr_wp = ptr.write_port()
        ptr_lo = ptr.read_port()
        ptr_hi = ptr.read_port()
        m.d.comb += [ptr_wp.en.eq(self.ptr_w.en), ptr_wp.addr.eq(self.ptr_w.addr),
                     ptr_wp.data.eq(self.ptr_w.data)]

        # R: read the pointers of the column at the head of the queue. C: register them, so
        # no logic follows the block RAM outputs. P (the output register): the check.
        r_valid = Signal()
        r_act = Signal(signed(p.act_width))
        c_valid = Signal()
        c_act = Signal(signed(p.act_width))
        c_start = Signal(p.ptr_width)
        c_end = Signal(p.ptr_width)
        col = self.column
        p_take = Signal()
        c_move = Signal()
        r_move = Signal()
        pop = Signal()
        m.d.comb += [
            p_take.eq(col.valid & col.ready),
            c_move.eq(c_valid & (~col.valid | p_take)),
            r_move.eq(r_valid & (~c_valid | c_move)),
            pop.eq(queue.r_rdy & (~r_valid | r_move)),
            queue.r_en.eq(pop),
            ptr_lo.en.eq(pop), ptr_lo.addr.eq(head.col),
            ptr_hi.en.eq(pop), ptr_hi.addr.eq(head.col + 1),
            self.busy.eq(queue.r_rdy | r_valid | c_valid | col.valid),
        ]
        with m.If(pop):
            m.d.sync += [r_valid.eq(1), r_act.eq(head.act)]
        with m.Elif(r_move):
            m.d.sync += r_valid.eq(0)
        with m.If(r_move):
            m.d.sync += [c_valid.eq(1), c_act.eq(r_act), c_start.eq(ptr_lo.data),
                         c_end.eq(ptr_hi.data)]
        with m.Elif(c_move):
            m.d.sync += c_valid.eq(0)
        with m.If(c_move):
            m.d.sync += [
                col.valid.eq(1), col.payload.act.eq(c_act), col.payload.start.eq(c_start),
                col.payload.end.eq(c_end),
                col.payload.ok.eq((c_start <= c_end) & in_range(c_end, 0, p.entries_max)),
            ]
        with m.Elif(p_take):
            m.d.sync += col.valid.eq(0)
        return m


class EntryWalker(wiring.Component):
    """Reads a column's stored entries one per cycle, with no bubble between columns.

    While the current column is walked, the next column waits in ``column``'s register; it
    is taken with the current column's last entry, and its first entry issues on the next
    cycle. A column taken with nothing in flight issues its first entry at once. A column
    whose pointers failed their check is dropped and sets ``error``.

    Members
    -------
    column : In(stream.Signature(column_layout))
    entry_w : In(write_layout)
        Entry memory writes (``entries_max`` bytes).
    o : Out(stream.Signature(entry_layout))
        Registered, two cycles after the entry's read is issued (read, register); ``ready``
        is not looked at (the decoder and the accumulator never stall).
    active : Out(1)
        An entry read is issued this cycle (load-balance monitor).
    busy : Out(1)
        Entries are left in the current column or on their way to ``o``.
    error : Out(1)
        Sticky: a column with bad pointers.
    """

    def __init__(self, params):
        self.params = p = params
        super().__init__({
            "column": In(stream.Signature(column_layout(p))),
            "entry_w": In(write_layout(range(p.entries_max), unsigned(ENTRY_BITS))),
            "o": Out(stream.Signature(entry_layout(p))),
            "active": Out(1), "busy": Out(1), "error": Out(1),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        p = self.params
        m = Module()
        m.submodules.entries = ent = Memory(shape=unsigned(ENTRY_BITS), depth=p.entries_max,
                                            init=[])
        ent_wp = ent.write_port()
        ent_rp = ent.read_port()
        m.d.comb += [ent_wp.en.eq(self.entry_w.en), ent_wp.addr.eq(self.entry_w.addr),
                     ent_wp.data.eq(self.entry_w.data)]
        col = self.column.payload
        p_valid = self.column.valid
        # G: walk the current column.
        g_valid = Signal()  # entries left in the current column
        g_addr = Signal(p.ptr_width)
        g_end = Signal(p.ptr_width)
        g_act = Signal(signed(p.act_width))
        g_first = Signal()
        issue = Signal()
        issue_addr = Signal(p.ptr_width)
        issue_first = Signal()
        issue_act = Signal(signed(p.act_width))
        # The next column is taken with the last entry of this one, or at once when idle.
        m.d.comb += self.column.ready.eq(~g_valid | (g_addr + 1 == g_end))
        with m.If(g_valid):
            m.d.comb += [issue.eq(1), issue_addr.eq(g_addr), issue_first.eq(g_first),
                         issue_act.eq(g_act)]
            m.d.sync += [g_addr.eq(g_addr + 1), g_first.eq(0)]
            with m.If(g_addr + 1 == g_end):
                m.d.sync += g_valid.eq(0)
                with m.If(p_valid):
                    # Preload the next column; its first entry issues next cycle.
                    with m.If(col.ok):
                        m.d.sync += [g_addr.eq(col.start), g_end.eq(col.end),
                                     g_act.eq(col.act), g_first.eq(1),
                                     g_valid.eq(col.start != col.end)]
                    with m.Else():
                        m.d.sync += self.error.eq(1)
        with m.Elif(p_valid):
            # Nothing in flight: issue the column's first entry straight from the register.
            with m.If(col.ok & (col.start != col.end)):
                m.d.comb += [issue.eq(1), issue_addr.eq(col.start), issue_first.eq(1),
                             issue_act.eq(col.act)]
                m.d.sync += [g_addr.eq(col.start + 1), g_end.eq(col.end), g_act.eq(col.act),
                             g_first.eq(0), g_valid.eq(col.start + 1 != col.end)]
            with m.If(~col.ok):
                m.d.sync += self.error.eq(1)

        # E: entry memory read; F: the entry registered.
        e_valid = Signal()
        e_first = Signal()
        e_act = Signal(signed(p.act_width))
        m.d.comb += [ent_rp.addr.eq(issue_addr), self.active.eq(issue)]
        m.d.sync += [e_valid.eq(issue), e_first.eq(issue_first), e_act.eq(issue_act),
                     self.o.valid.eq(e_valid), self.o.payload.entry.eq(ent_rp.data),
                     self.o.payload.first.eq(e_first), self.o.payload.act.eq(e_act)]
        m.d.comb += self.busy.eq(g_valid | e_valid | self.o.valid)
        return m


class Accumulator(wiring.Component):
    """Multiplies each decoded (row, weight, act) and adds it into that row's accumulator.

    Cycle t: the pair arrives, the accumulator is read; t+1: the product and the read
    value are added and written back. The read port is transparent to the write port, so a
    pair that hits the row written in the same cycle sees the new sum. Products are exact
    (16 + act_width bits); accumulators wrap at ``acc_width``.

    Members
    -------
    i : In(stream.Signature(pair_layout))
        Always taken (``ready`` is 1).
    readout : In(1)
        The engine is reading out or clearing (no pair arrives then).
    acc_addr : In, acc_data : Out(signed(acc_width))
        Readout: ``acc_data`` is accumulator ``acc_addr`` of the previous cycle.
    clear : In(StructLayout{en, addr})
        Write zero into an accumulator (readout and the clear after reset).
    busy : Out(1)
        A write-back is pending.
    """

    def __init__(self, params):
        self.params = p = params
        local = range(max(2, p.rows_pe_max))
        super().__init__({
            "i": In(stream.Signature(pair_layout(p))),
            "readout": In(1), "acc_addr": In(local), "acc_data": Out(signed(p.acc_width)),
            "clear": In(data.StructLayout({"en": 1, "addr": local})),
            "busy": Out(1),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        p = self.params
        m = Module()
        m.submodules.acc = acc = Memory(shape=signed(p.acc_width), depth=max(2, p.rows_pe_max),
                                        init=[])
        acc_wp = acc.write_port()
        acc_rp = acc.read_port(transparent_for=[acc_wp])
        pair = self.i.payload
        m_valid = Signal()
        m_row = Signal.like(pair.row)
        m_prod = Signal(signed(p.product_width))
        m.d.sync += [m_valid.eq(self.i.valid), m_row.eq(pair.row),
                     m_prod.eq(pair.weight * pair.act)]
        m.d.comb += [
            self.i.ready.eq(1),
            acc_rp.addr.eq(Mux(self.readout, self.acc_addr, pair.row)),
            self.acc_data.eq(acc_rp.data),
            acc_wp.en.eq(m_valid | self.clear.en),
            acc_wp.addr.eq(Mux(self.clear.en, self.clear.addr, m_row)),
            acc_wp.data.eq(Mux(self.clear.en, 0, acc_rp.data + m_prod)),
            self.busy.eq(m_valid),
        ]
        return m
