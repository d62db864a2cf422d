"""One processing element of the sparse engine: activation queue, column walker, MAC."""

from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .decoder import RelIndexDecoder
from .params import ENTRY_BITS
from .pe_parts import Accumulator, ColumnFetch, EntryWalker, write_layout
from .ports import act_item_layout, codebook_layout

__all__ = ["SparsePE"]


class SparsePE(wiring.Component):
    """Processing element ``pe`` of :class:`SparseMatVec`: rows ``pe, pe + n_pe, ...``.

    Pipeline (one stored entry per cycle, no bubble between columns; pieces in
    :mod:`.pe_parts`)::

        ColumnFetch: queue -> A: pointer addresses -> R, D: the pointer RAMs' read and
        output registers -> (C, K with primitives=ecp5) -> P: checks, entry count -> FIFO
        of columns (credits: the fetch never stalls) -> EntryWalker: G: walk the column
        (the next columns' pointers are fetched meanwhile) -> I: address -> E, F: the entry
        RAM's read and output registers -> RelIndexDecoder (3 stages) -> Accumulator:
        product and accumulator read, add, write back (2 cycles; 4 with primitives=ecp5),
        the sums of the last cycles forwarded to a pair that hits the same row

    A column whose pointers are not ``ptr[j] <= ptr[j+1] <= entries_max`` sets the sticky
    ``error`` and is skipped.

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
        Readout: with ``readout`` high, ``acc_data`` is accumulator ``acc_addr`` two cycles
        later.
    clear : In(StructLayout{en, addr})
        Write zero into an accumulator (readout and the clear after reset), at the end of
        the next cycle.
    readout : In(1)
        One accumulator bank: the engine is reading out or clearing; the PE is idle then.
        Two banks: the clear after reset.
    bank : In(1)
        Two accumulator banks: the bank the MACs add into; the readout uses the other
        (see :class:`~.pe_parts.Accumulator`).
    busy : Out(1)
        Queue or pipeline holds work (all registered state).
    room_next : Out(1)
        ``q.ready`` of the next cycle (see :class:`~.pe_parts.ColumnFetch`).
    active : Out(1)
        An entry is read from the entry memory this cycle (load-balance monitor).
    error : Out(1)
        Sticky: a bad column pointer or a row overflow.

    Latency from a queued activation to its last accumulator write: a fixed pipeline of
    about 15 cycles (19 with primitives=ecp5) + the column's entry count. Bit growth:
    product 16 + act_width bits; accumulators wrap at acc_width.
    """

    def __init__(self, params, pe):
        self.params = params
        self.pe = pe
        p = params
        self.item_layout = act_item_layout(p)
        acc_addr = range(max(2, p.rows_pe_max))
        super().__init__({
            "q": In(stream.Signature(self.item_layout)),
            "ptr_w": In(write_layout(range(p.cols_max + 1), unsigned(p.ptr_width))),
            "entry_w": In(write_layout(range(p.entries_max), unsigned(ENTRY_BITS))),
            "codebook": In(stream.Signature(codebook_layout())),
            "rows": In(range(p.rows_max + 1), init=p.rows_max),
            "acc_addr": In(acc_addr),
            "acc_data": Out(signed(p.acc_width)),
            "clear": In(data.StructLayout({"en": 1, "addr": acc_addr})),
            "readout": In(1),
            "bank": In(1),
            "busy": Out(1),
            "room_next": Out(1),
            "active": Out(1),
            "error": Out(1),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        p = self.params
        m = Module()
        m.submodules.fetch = fetch = ColumnFetch(p)
        m.submodules.walker = walker = EntryWalker(p)
        m.submodules.decoder = dec = RelIndexDecoder(p, self.pe)
        m.submodules.mac = mac = Accumulator(p)
        wiring.connect(m, wiring.flipped(self.q), fetch.q)
        wiring.connect(m, fetch.column, walker.column)
        wiring.connect(m, walker.o, dec.i)
        wiring.connect(m, dec.o, mac.i)  # the accumulator never stalls
        wiring.connect(m, wiring.flipped(self.codebook), dec.codebook)
        m.d.comb += [
            fetch.ptr_w.eq(self.ptr_w), walker.entry_w.eq(self.entry_w),
            dec.rows.eq(self.rows),
            mac.readout.eq(self.readout), mac.bank.eq(self.bank), mac.acc_addr.eq(self.acc_addr),
            self.acc_data.eq(mac.acc_data), mac.clear.eq(self.clear),
            self.active.eq(walker.active),
            self.room_next.eq(fetch.room_next),
            self.busy.eq(fetch.busy | walker.busy | dec.busy | mac.busy),
            self.error.eq(walker.error | dec.error),
        ]
        return m
