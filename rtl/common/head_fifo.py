"""A three-beat FIFO of flip-flops whose ready, valid and output are all registers."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["HeadFifo"]


class HeadFifo(wiring.Component):
    """Two storage slots and a head register, all flip-flops.

    The cycles of ``SyncFIFOBuffered(depth=3)``: a beat written in cycle x is offered from
    x + 2, three beats fit, and at levels 1 and 2 a beat is written and one read in the
    same cycle. What differs is where each signal starts: ``w_rdy`` is a flip-flop of its own
    (not a compare of the level), the storage is flip-flops rather than LUT RAM (its read
    is a 2:1 multiplexer), and the stored beat the head loads next is a port, so a user
    can work out, a cycle ahead, flags of the beat that is offered next.

    Parameters
    ----------
    shape : shape-like
        The stored beat.
    head_shape, to_head : shape-like, function
        The head's word and how it is made from a stored beat on its way into the head
        (default: the stored beat itself). ``to_head`` gets a value of ``shape`` and
        returns one of ``head_shape``.

    Members
    -------
    w_en : In(1), w_data : In(shape), w_rdy : Out(1)
        Written when ``w_en & w_rdy``; ``w_rdy`` is a register (the slots are not both full).
    r_rdy : Out(1), r_data : Out(head_shape), r_en : In(1)
        The head: read when ``r_en & r_rdy``; both outputs are registers.
    next_valid : Out(1), next_data : Out(shape)
        A stored beat is waiting, and the one the head loads next (a slot register through a
        2:1 multiplexer). The head loads it when it is empty or read.
    head_free : Out(1)
        The head is empty or read this cycle: it loads ``to_head(next_data)`` (the data
        registers load in every such cycle; ``r_rdy`` says whether it was a beat).
    pending : Out(1)
        A beat is inside (``level != 0``).
    """

    def __init__(self, shape, head_shape=None, to_head=None):
        self._shape = shape
        self._head_shape = shape if head_shape is None else head_shape
        self._to_head = to_head if to_head is not None else (lambda word: word)
        super().__init__({
            "w_en": In(1), "w_data": In(shape), "w_rdy": Out(1),
            "r_rdy": Out(1), "r_data": Out(self._head_shape), "r_en": In(1),
            "next_valid": Out(1), "next_data": Out(shape), "head_free": Out(1),
            "pending": Out(1),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        slots = [Signal(self._shape, name=f"slot{k}", reset_less=True) for k in range(2)]
        produce = Signal()  # the slot the next beat is written to
        consume = Signal()  # the slot the head loads from next
        stored = Signal(range(3))  # beats in the slots
        full = Signal()  # stored == 2
        write = self.w_en & self.w_rdy
        load = self.next_valid & self.head_free
        m.d.comb += [
            self.w_rdy.eq(~full),
            self.next_valid.eq(stored != 0),
            self.next_data.eq(Mux(consume, slots[1], slots[0])),
            self.head_free.eq(~self.r_rdy | self.r_en),
            self.pending.eq(self.next_valid | self.r_rdy),
        ]
        with m.If(write):
            m.d.sync += produce.eq(~produce)
            for k, slot in enumerate(slots):
                with m.If(produce == k):
                    m.d.sync += slot.eq(self.w_data)
        with m.If(load):
            m.d.sync += consume.eq(~consume)
        with m.If(write & ~load):
            m.d.sync += [stored.eq(stored + 1), full.eq(stored == 1)]
        with m.Elif(load & ~write):
            m.d.sync += [stored.eq(stored - 1), full.eq(0)]
        # The head's data registers load whenever it is free, a stored beat or not (their
        # enable does not wait on ``stored``).
        head = Signal(self._head_shape, reset_less=True)
        m.d.comb += self.r_data.eq(head)
        with m.If(self.head_free):
            m.d.sync += head.eq(self._to_head(self.next_data))
        with m.If(load):
            m.d.sync += self.r_rdy.eq(1)
        with m.Elif(self.r_en):
            m.d.sync += self.r_rdy.eq(0)
        return m
