"""Output FIFO with credit accounting, so a pipeline can run without internal stalls."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ResultBuffer"]


class ResultBuffer(wiring.Component):
    """FIFO that absorbs the results of a fixed-latency, never-stalling pipeline.

    The producer reserves FIFO slots when it admits work (``reserve``), and writes the
    results later, a fixed number of cycles on (``w_en``/``w_data``). Because every result
    has a reserved slot, the pipeline itself never needs a stall signal: backpressure on
    ``o`` only stops admission of new work. This is the credit scheme that keeps the systolic
    array's registers free of clock enables.

    Parameters
    ----------
    layout : Layout
        Payload layout.
    depth : int
        FIFO depth. With ``depth >= round-trip latency`` the pipeline runs at full rate.
    max_reserve : int
        Largest number of slots reserved in one cycle.

    Members
    -------
    free : Out(range(depth + 1))
        Slots neither reserved nor filled. Registered: no combinational path from
        ``o.ready`` to the producer.
    can_reserve : Out(1)
        At least ``max_reserve`` slots are free in this cycle. A register fed by a second,
        lagging copy of the count that sees ``reserve`` and pops only through registers,
        so the producer's handshake is never part of an adder path. The lag makes it
        conservative: a producer reserving at full rate through it needs
        ``2 * max_reserve`` more depth than one using ``free``.
    reserve : In(range(max_reserve + 1))
        Slots claimed this cycle; the producer must keep ``reserve <= free``.
    w_en, w_data : In(1), In(layout)
        Write one result into a reserved slot. Writes are not checked for space (the
        credits guarantee it), so ``w_en`` drives the storage directly.
    o : Out(stream.Signature(layout))
        Results in write order, from a register (``read_latency`` cycles after the write
        when the buffer is empty).

    Storage: a memory of ``depth`` rounded up to a power of two whose read register is the
    output register.
    """

    def __init__(self, layout, *, depth, max_reserve):
        if max_reserve > depth:
            raise ValueError(f"max_reserve ({max_reserve}) exceeds depth ({depth})")
        self._layout = layout
        self._depth = depth
        self._max_reserve = max_reserve
        super().__init__({
            "free": Out(range(depth + 1), init=depth),
            "can_reserve": Out(1, init=depth >= 3 * max_reserve),
            "reserve": In(range(max_reserve + 1)),
            "w_en": In(1),
            "w_data": In(layout),
            "o": Out(stream.Signature(layout)),
        })

    #: Cycles from a write to its word being offered on ``o`` (empty buffer).
    read_latency = 2

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        width = data.Layout.cast(self._layout).size
        # Storage rounded up to a power of two, so the pointers wrap by themselves; the
        # credits (``free``) still hand out only ``depth`` slots. Writes need no full check:
        # every write has a reserved slot, so the write enable fans out to the storage
        # straight from the producer's register.
        mem_depth = max(2, 1 << (self._depth - 1).bit_length())
        m.submodules.storage = storage = memory.Memory(shape=width, depth=mem_depth, init=[])
        wr = storage.write_port()
        # The read port's own register is the output register: block RAM on iCE40 (which has
        # no asynchronous read), LUT RAM and flip-flops on ECP5. A refill never reads the
        # word being written (that slot would be the storage's last free one, and then
        # nothing can be written), so the port need not be transparent.
        rd = storage.read_port(domain="sync", transparent_for=())
        w_ptr = Signal(range(mem_depth))
        r_ptr = Signal(range(mem_depth))
        m.d.comb += [wr.en.eq(self.w_en), wr.addr.eq(w_ptr), wr.data.eq(self.w_data.as_value()),
                     rd.addr.eq(r_ptr)]
        with m.If(self.w_en):
            m.d.sync += w_ptr.eq(w_ptr + 1)
        # Output register: refilled from the storage whenever it is empty or being taken.
        # Whether the storage holds a word comes from registered flags (no count comparison
        # in front of the refill, whose enable fans out over the whole output register).
        stored = Signal(range(mem_depth + 1))  # words in the storage, not yet in the output
        nonempty = Signal()  # stored >= 1
        many = Signal()  # stored >= 2
        load = Signal()
        popped = Signal()
        m.d.comb += [
            load.eq(nonempty & (~self.o.valid | self.o.ready)),
            popped.eq(self.o.valid & self.o.ready),
        ]
        m.d.sync += [
            stored.eq(stored + self.w_en - load),
            nonempty.eq(self.w_en | (nonempty & ~load) | many),
        ]
        with m.If(self.w_en & ~load):
            m.d.sync += many.eq(nonempty)
        with m.Elif(~self.w_en & load):
            # stored >= 3 from the bits (a >= on the count became a carry chain).
            three = stored[:2] == 3
            if len(stored) > 2:
                three = three | (stored[2:] != 0)
            m.d.sync += many.eq(three)
        m.d.comb += [rd.en.eq(load), self.o.payload.eq(rd.data)]
        with m.If(load):
            m.d.sync += [self.o.valid.eq(1), r_ptr.eq(r_ptr + 1)]
        with m.Elif(popped):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += self.free.eq(self.free - self.reserve + popped)
        # lagging(n) = free(n-1): it follows reserve and pops through registers. free falls by
        # at most max_reserve per cycle, so lagging(n) >= 3 * max_reserve, registered into
        # can_reserve(n+1), guarantees free(n+1) >= max_reserve.
        k = self._max_reserve
        reserved_q = Signal.like(self.reserve)
        popped_q = Signal()
        lagging = Signal.like(self.free, init=self._depth)
        m.d.sync += [
            reserved_q.eq(self.reserve),
            popped_q.eq(popped),
            lagging.eq(lagging - reserved_q + popped_q),
        ]
        if 3 * k <= self._depth:  # otherwise never (and no constant comparison in the Verilog)
            m.d.sync += self.can_reserve.eq(lagging >= 3 * k)
        return m
