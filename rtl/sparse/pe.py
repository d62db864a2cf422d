"""One processing element of the sparse engine: activation queue, column walker, MAC."""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..common.pipeline import in_range
from .decoder import RelIndexDecoder
from .params import ENTRY_BITS
from .ports import act_item_layout, codebook_layout

__all__ = ["SparsePE"]


def _write_layout(addr_shape, data_shape):
    return data.StructLayout({"en": 1, "addr": addr_shape, "data": data_shape})


def _queue(width, depth):
    # SyncFIFOBuffered's depth-1 form is a single register; SyncFIFO's has zero-width
    # address wires.
    if depth == 1:
        return fifo.SyncFIFOBuffered(width=width, depth=1)
    return fifo.SyncFIFO(width=width, depth=depth)


class SparsePE(wiring.Component):
    """Processing element ``pe`` of :class:`SparseMatVec`: rows ``pe, pe + n_pe, ...``.

    Pipeline (one stored entry per cycle, no bubble between columns)::

        queue -> R: read ptr[j], ptr[j+1] -> C, P: registered pointers, checks -> G: walk
        entries ptr[j]..ptr[j+1]-1 (the next columns' pointers are fetched while the current
        column is walked) -> E: entry memory -> F: registered entry -> D: RelIndexDecoder -> M:
        weight x act, read accumulator -> A: write back

    The accumulator memory's read port is transparent to its write port, so an entry of the
    next column that hits the row just written sees the new sum (within a column rows
    strictly increase). A column whose pointers are not ``ptr[j] <= ptr[j+1] <=
    entries_max`` sets the sticky ``error`` and is skipped.

    Members
    -------
    q : In(stream.Signature(act_item_layout))
        Non-zero activations broadcast by the engine (queue of ``queue_depth``).
    ptr_w, entry_w : In(StructLayout{en, addr, data})
        Pointer and entry memory writes (the engine validated the address).
    codebook : In(stream.Signature(codebook_layout))
        Codebook writes, forwarded to the decoder.
    rows : In(range(rows_max + 1))
        Global row count.
    acc_addr, acc_data : In(range(rows_pe_max)), Out(signed(acc_width))
        Readout: with ``readout`` high, ``acc_data`` is accumulator ``acc_addr`` one cycle
        later.
    clear : In(StructLayout{en, addr})
        Write zero into an accumulator (readout and the clear after reset).
    readout : In(1)
        Engine is reading out or clearing; the PE is idle then.
    busy : Out(1)
        Queue or pipeline holds work (all registered state).
    active : Out(1)
        An entry is read from the entry memory this cycle (load-balance monitor).
    error : Out(1)
        Sticky: a bad column pointer or a row overflow.

    Latency from a queued activation to its last accumulator write: 8 cycles + the column's
    entry count. Bit growth: product 16 + act_width bits; accumulators wrap at acc_width.
    """

    def __init__(self, params, pe):
        self.params = params
        self.pe = pe
        p = params
        self.item_layout = act_item_layout(p)
        acc_addr = range(max(2, p.rows_pe_max))
        super().__init__({
            "q": In(stream.Signature(self.item_layout)),
            "ptr_w": In(_write_layout(range(p.cols_max + 1), unsigned(p.ptr_width))),
            "entry_w": In(_write_layout(range(p.entries_max), unsigned(ENTRY_BITS))),
            "codebook": In(stream.Signature(codebook_layout())),
            "rows": In(range(p.rows_max + 1), init=p.rows_max),
            "acc_addr": In(acc_addr),
            "acc_data": Out(signed(p.acc_width)),
            "clear": In(data.StructLayout({"en": 1, "addr": acc_addr})),
            "readout": In(1),
            "busy": Out(1),
            "active": Out(1),
            "error": Out(1),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        p = self.params
        m = Module()

        # Activation queue.
        item_width = data.Layout.cast(self.item_layout).size
        m.submodules.queue = queue = _queue(item_width, p.queue_depth)
        m.d.comb += [
            queue.w_en.eq(self.q.valid),
            queue.w_data.eq(self.q.payload.as_value()),
            self.q.ready.eq(queue.w_rdy),
        ]
        head = data.View(self.item_layout, queue.r_data)

        # Memories.
        m.submodules.ptr = ptr = Memory(shape=unsigned(p.ptr_width), depth=p.cols_max + 1,
                                        init=[])
        ptr_wp = ptr.write_port()
        ptr_lo = ptr.read_port()
        ptr_hi = ptr.read_port()
        m.submodules.entries = ent = Memory(shape=unsigned(ENTRY_BITS), depth=p.entries_max,
                                            init=[])
        ent_wp = ent.write_port()
        ent_rp = ent.read_port()
        m.submodules.acc = acc = Memory(shape=signed(p.acc_width), depth=max(2, p.rows_pe_max),
                                        init=[])
        acc_wp = acc.write_port()
        acc_rp = acc.read_port(transparent_for=[acc_wp])
        m.d.comb += [
            ptr_wp.en.eq(self.ptr_w.en), ptr_wp.addr.eq(self.ptr_w.addr),
            ptr_wp.data.eq(self.ptr_w.data),
            ent_wp.en.eq(self.entry_w.en), ent_wp.addr.eq(self.entry_w.addr),
            ent_wp.data.eq(self.entry_w.data),
        ]

        # R: read the pointers of the column at the head of the queue. C: register them, so
        # no logic follows the block RAM outputs (slow clock-to-out). P: register the checks.
        r_valid = Signal()
        r_act = Signal(signed(p.act_width))
        c_valid = Signal()
        c_act = Signal(signed(p.act_width))
        c_start = Signal(p.ptr_width)
        c_end = Signal(p.ptr_width)
        p_valid = Signal()
        p_act = Signal(signed(p.act_width))
        start = Signal(p.ptr_width)
        end = Signal(p.ptr_width)
        p_ok = Signal()
        p_take = Signal()
        c_move = Signal()
        r_move = Signal()
        pop = Signal()
        m.d.comb += [
            c_move.eq(c_valid & (~p_valid | p_take)),
            r_move.eq(r_valid & (~c_valid | c_move)),
            pop.eq(queue.r_rdy & (~r_valid | r_move)),
            queue.r_en.eq(pop),
            ptr_lo.en.eq(pop), ptr_lo.addr.eq(head.col),
            ptr_hi.en.eq(pop), ptr_hi.addr.eq(head.col + 1),
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
                p_valid.eq(1), p_act.eq(c_act), start.eq(c_start), end.eq(c_end),
                p_ok.eq((c_start <= c_end) & in_range(c_end, 0, p.entries_max)),
            ]
        with m.Elif(p_take):
            m.d.sync += p_valid.eq(0)

        # G: walk the current column; load the next one from P without a bubble.
        g_valid = Signal()  # entries left in the current column
        g_addr = Signal(p.ptr_width)
        g_end = Signal(p.ptr_width)
        g_act = Signal(signed(p.act_width))
        g_first = Signal()
        ptr_error = Signal()  # sticky
        issue = Signal()
        issue_addr = Signal(p.ptr_width)
        issue_first = Signal()
        issue_act = Signal(signed(p.act_width))
        with m.If(g_valid):
            m.d.comb += [issue.eq(1), issue_addr.eq(g_addr), issue_first.eq(g_first),
                         issue_act.eq(g_act)]
            m.d.sync += [g_addr.eq(g_addr + 1), g_first.eq(0)]
            with m.If(g_addr + 1 == g_end):
                m.d.sync += g_valid.eq(0)
                with m.If(p_valid):
                    # Preload the next column; its first entry issues next cycle.
                    m.d.comb += p_take.eq(1)
                    with m.If(p_ok):
                        m.d.sync += [g_addr.eq(start), g_end.eq(end), g_act.eq(p_act),
                                     g_first.eq(1), g_valid.eq(start != end)]
                    with m.Else():
                        m.d.sync += ptr_error.eq(1)
        with m.Elif(p_valid):
            # Nothing in flight: issue the column's first entry straight from P.
            m.d.comb += p_take.eq(1)
            with m.If(p_ok & (start != end)):
                m.d.comb += [issue.eq(1), issue_addr.eq(start), issue_first.eq(1),
                             issue_act.eq(p_act)]
                m.d.sync += [g_addr.eq(start + 1), g_end.eq(end), g_act.eq(p_act),
                             g_first.eq(0), g_valid.eq(start + 1 != end)]
            with m.If(~p_ok):
                m.d.sync += ptr_error.eq(1)

        # E: entry memory read.
        e_valid = Signal()
        e_first = Signal()
        e_act = Signal(signed(p.act_width))
        m.d.comb += [ent_rp.addr.eq(issue_addr), self.active.eq(issue)]
        m.d.sync += [e_valid.eq(issue), e_first.eq(issue_first), e_act.eq(issue_act)]

        # F: register the entry (block RAM clock-to-out), then D: decode.
        f_valid = Signal()
        f_entry = Signal(ENTRY_BITS)
        f_first = Signal()
        f_act = Signal(signed(p.act_width))
        m.d.sync += [f_valid.eq(e_valid), f_entry.eq(ent_rp.data), f_first.eq(e_first),
                     f_act.eq(e_act)]
        m.submodules.decoder = dec = RelIndexDecoder(p, self.pe)
        m.d.comb += [
            dec.i.valid.eq(f_valid),
            dec.i.payload.entry.eq(f_entry),
            dec.i.payload.first.eq(f_first),
            dec.i.payload.act.eq(f_act),
            dec.o.ready.eq(1),  # the MAC never stalls
            dec.codebook.valid.eq(self.codebook.valid),
            dec.codebook.payload.eq(self.codebook.payload),
            self.codebook.ready.eq(dec.codebook.ready),
            dec.rows.eq(self.rows),
        ]

        # M: product and accumulator read; A: write back one cycle later.
        m_valid = Signal()
        m_row = Signal.like(dec.o.payload.row)
        m_prod = Signal(signed(p.product_width))
        m.d.sync += [
            m_valid.eq(dec.o.valid),
            m_row.eq(dec.o.payload.row),
            m_prod.eq(dec.o.payload.weight * dec.o.payload.act),
        ]
        m.d.comb += [
            acc_rp.addr.eq(Mux(self.readout, self.acc_addr, dec.o.payload.row)),
            self.acc_data.eq(acc_rp.data),
            acc_wp.en.eq(m_valid | self.clear.en),
            acc_wp.addr.eq(Mux(self.clear.en, self.clear.addr, m_row)),
            acc_wp.data.eq(Mux(self.clear.en, 0, acc_rp.data + m_prod)),
        ]

        m.d.comb += [
            self.busy.eq(queue.r_rdy | r_valid | c_valid | p_valid | g_valid | e_valid | f_valid |
                         dec.o.valid | m_valid),
            self.error.eq(ptr_error | dec.error),
        ]
        return m
