"""Output FIFO with credit accounting, so a pipeline can run without internal stalls."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, fifo, stream, wiring
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
    reserve : In(range(max_reserve + 1))
        Slots claimed this cycle; the producer must keep ``reserve <= free``.
    w_en, w_data : In(1), In(layout)
        Write one result into a reserved slot.
    o : Out(stream.Signature(layout))
        Results in write order.
    """

    def __init__(self, layout, *, depth, max_reserve):
        if max_reserve > depth:
            raise ValueError(f"max_reserve ({max_reserve}) exceeds depth ({depth})")
        self._layout = layout
        self._depth = depth
        super().__init__({
            "free": Out(range(depth + 1), init=depth),
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
        m.submodules.fifo = buf = fifo.SyncFIFOBuffered(width=width, depth=self._depth)
        m.d.comb += [
            buf.w_en.eq(self.w_en),
            buf.w_data.eq(self.w_data.as_value()),
            self.o.valid.eq(buf.r_rdy),
            self.o.payload.eq(buf.r_data),
            buf.r_en.eq(self.o.ready),
        ]
        popped = Signal()
        m.d.comb += popped.eq(self.o.valid & self.o.ready)
        m.d.sync += self.free.eq(self.free - self.reserve + popped)
        return m
