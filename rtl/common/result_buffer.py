"""Output FIFO with credit accounting, so a pipeline can run without internal stalls."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import Spec, Validated
from .ram import BufferRam, Ecp5BlockRam, pipelined_ram

__all__ = ["ResultBuffer"]


class ResultBuffer(Validated, wiring.Component):
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
    ram : BufferRam or str
        Storage: ``inferred`` (portable) or ``ecp5`` (DP16KD block RAM with its output
        register; depth up to 512), see :mod:`~npugen.rtl.common.ram`.

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
        :meth:`can_reserve_slack` more depth than one using ``free``.
    reserve : In(range(max_reserve + 1))
        Slots claimed this cycle; the producer must keep ``reserve <= free``.
    w_en, w_data : In(1), In(layout)
        Write one result into a reserved slot. Both are registered on entry (the buffer
        sits next to its RAM, the producer may not) and then drive the storage: writes are
        not checked for space, the credits guarantee it.
    level : Out(range(depth + 1))
        Words inside: written and not yet taken from ``o`` (the registered write, the
        storage, the read and output registers). From registers; exposed for monitoring and
        for the formal proof (``free`` + reserved-but-unwritten + ``level`` == ``depth``).
    consistent : Out(1)
        The internal bookkeeping agrees with itself: the storage's word count equals the
        pointer distance and its two flags (``>= 1``, ``>= 2``), and the write counter is
        the address plus the registered write, no more than ``depth`` words are inside, and
        the lagging copy behind ``can_reserve`` equals ``free`` minus the reservations and
        pops it has not seen yet.
        Always 1 while the producer keeps ``reserve <= free``; exposed as the
        invariant that makes the formal proof inductive. Unused in a design, it costs nothing.
    o : Out(stream.Signature(layout))
        Results in write order, from the RAM's output register (``read_latency`` cycles
        after the write when the buffer is empty).

    Storage: a RAM of the next power of two above ``depth`` words, with a read register
    and an output register (:func:`~npugen.rtl.common.ram.pipelined_ram`), so ``o.payload`` always
    starts at a register.
    """

    @classmethod
    def validate(cls, layout, *, depth, max_reserve, ram=BufferRam.INFERRED):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        if max_reserve > depth:
            raise ValueError(f"max_reserve ({max_reserve}) exceeds depth ({depth})")
        ram = Spec("enum", "", choices=BufferRam).check("ram", ram, None)
        limit = Ecp5BlockRam.BLOCK_DEPTH
        if ram is BufferRam.ECP5 and depth > limit:
            raise ValueError(f"depth must be at most {limit} with ram=ecp5, not {depth}")

    def __init__(self, layout, *, depth, max_reserve, ram=BufferRam.INFERRED):
        self._ram = Spec("enum", "", choices=BufferRam).check("ram", ram, None)
        self._layout = layout
        self._depth = depth
        self._max_reserve = max_reserve
        super().__init__({
            "free": Out(range(depth + 1), init=depth),
            "level": Out(range(depth + 1)),
            "consistent": Out(1),
            "can_reserve": Out(1, init=depth >= 3 * max_reserve),
            "reserve": In(range(max_reserve + 1)),
            "w_en": In(1),
            "w_data": In(layout),
            "o": Out(stream.Signature(layout)),
        })

    @staticmethod
    def can_reserve_slack(max_reserve):
        """Extra depth a producer needs to reserve at full rate through ``can_reserve``."""
        return 2 * max_reserve + 1

    #: Cycles from a write to its word being offered on ``o`` (empty buffer): the input
    #: register, the storage's read register, then the output register.
    read_latency = 4

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        width = data.Layout.cast(self._layout).size
        # Storage: the next power of two above ``depth``, so the pointers wrap by themselves
        # and the slot under the write pointer never holds an unread word (at most
        # ``depth`` words are reserved or held). The storage therefore writes every cycle,
        # into that slot, and ``w_en`` only moves the pointer: no write enable fans out to
        # the RAM, and the write path needs no full check (the credits guarantee space).
        mem_depth = 1 << self._depth.bit_length()
        w_en = Signal()
        w_data = Signal(width, reset_less=True)
        m.d.sync += [w_en.eq(self.w_en), w_data.eq(self.w_data.as_value())]
        # The write pointer counts the incoming w_en and is registered once more into the
        # address: the same value as counting the registered w_en, but the count's register
        # then feeds only the word counter below, and the address register only the RAM
        # (which can sit far apart, a block RAM row away).
        w_count = Signal(range(mem_depth))
        w_ptr = Signal(range(mem_depth))
        r_ptr = Signal(range(mem_depth))
        with m.If(self.w_en):
            m.d.sync += w_count.eq(w_count + 1)
        m.d.sync += w_ptr.eq(w_count)
        # The read side is a two-register pipeline: the storage's read register (``held``
        # says it holds a word) and the output register (``o.valid``). Both are registers
        # of the block RAM itself where the RAM has an output register (ECP5 DP16KD), so no
        # path starts at the RAM's slow read-data outputs. ``to_out`` moves the read
        # register into the output register, ``fetch`` reads the storage into the read
        # register. A fetch never reads the slot being written (it reads a stored word).
        held = Signal()
        fetch = Signal()
        to_out = Signal()
        popped = Signal()
        m.submodules.storage = storage = pipelined_ram(self._ram, width, mem_depth)
        m.d.comb += [
            storage.w_en.eq(1), storage.w_addr.eq(w_ptr), storage.w_data.eq(w_data),
            storage.r_addr.eq(r_ptr), storage.r_en.eq(fetch), storage.o_en.eq(to_out),
            self.o.payload.eq(storage.r_data),
        ]
        # Whether the storage holds a word comes from registered flags (no count comparison
        # in front of the fetch, whose enable fans out over the whole read register).
        stored = Signal(range(mem_depth + 1))  # words in the storage, not yet fetched
        nonempty = Signal()  # stored >= 1
        many = Signal()  # stored >= 2
        m.d.comb += [
            popped.eq(self.o.valid & self.o.ready),
            to_out.eq(held & (~self.o.valid | self.o.ready)),
            fetch.eq(nonempty & (~held | to_out)),
        ]
        inside = w_en + stored + held + self.o.valid  # full width (level is depth-wide)
        m.d.comb += self.level.eq(inside)
        ptr_bits = len(w_ptr)
        bookkeeping = (
            (inside <= self._depth)
            & (nonempty == (stored != 0)) & (many == (stored > 1))
            & (stored == (w_ptr - r_ptr)[:ptr_bits])
            & (w_count == (w_ptr + w_en)[:ptr_bits]))
        # The counts' adds work from registers; ``fetch`` and ``popped`` (which follow
        # ``o.ready``) only choose between two sums, not feed a carry chain. Each sum is
        # one carry chain (``stored + w_en - 1`` as ``stored - ~w_en``: written as two
        # operations it was two chains in series, the sparse engine's critical path).
        m.d.sync += [
            stored.eq(Mux(fetch, stored - ~w_en, stored + w_en)),
            nonempty.eq(w_en | (nonempty & ~fetch) | many),
        ]
        with m.If(w_en & ~fetch):
            m.d.sync += many.eq(nonempty)
        with m.Elif(~w_en & fetch):
            # stored >= 3 from the bits (a >= on the count became a carry chain).
            three = stored[:2] == 3
            if len(stored) > 2:
                three = three | (stored[2:] != 0)
            m.d.sync += many.eq(three)
        with m.If(fetch):
            m.d.sync += [held.eq(1), r_ptr.eq(r_ptr + 1)]
        with m.Elif(to_out):
            m.d.sync += held.eq(0)
        with m.If(to_out):
            m.d.sync += self.o.valid.eq(1)
        with m.Elif(popped):
            m.d.sync += self.o.valid.eq(0)
        free_left = self.free - self.reserve
        m.d.sync += self.free.eq(Mux(popped, free_left + 1, free_left))
        # lagging follows reserve one cycle late and pops two cycles late, through registers
        # (the pops happen at the output, the reservations at the producer, which may be far
        # apart), so lagging(n) <= free(n-1). free falls by at most max_reserve per cycle, so
        # lagging(n) >= 3 * max_reserve, registered into can_reserve(n+1), guarantees
        # free(n+1) >= max_reserve.
        k = self._max_reserve
        reserved_q = Signal.like(self.reserve)
        popped_q = Signal()
        popped_qq = Signal()
        lagging = Signal.like(self.free, init=self._depth)
        m.d.sync += [
            reserved_q.eq(self.reserve),
            popped_q.eq(popped),
            popped_qq.eq(popped_q),
            lagging.eq(lagging - reserved_q + popped_qq),
        ]
        if 3 * k <= self._depth:  # otherwise never (and no constant comparison in the Verilog)
            m.d.sync += self.can_reserve.eq(lagging >= 3 * k)
        # The lagging copy is ``free`` minus what it has not seen yet.
        lag_ok = (lagging + popped_q + popped_qq) == (self.free + reserved_q)
        m.d.comb += self.consistent.eq(bookkeeping & lag_ok)
        return m
