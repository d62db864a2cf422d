"""8N1 UART receiver and transmitter with byte streams."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..common.params import Validated, check_int

__all__ = ["UartRx", "UartTx"]


class _Uart(Validated):
    @classmethod
    def validate(cls, divisor):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        check_int("divisor", divisor, 4, 65535)


class UartRx(_Uart, wiring.Component):
    """8N1 receiver: ``divisor`` clock cycles per bit, bytes out as a stream.

    The line is synchronised through two flip-flops; a start bit is confirmed at its middle
    and every bit is sampled at its middle. A byte whose stop bit is low is dropped
    (``framing_error`` pulses); a byte that arrives while the previous one still waits on
    ``o`` is dropped too (``overrun`` pulses).

    Members
    -------
    rx : In(1)
        Serial line, idle high.
    o : Out(stream.Signature(8))
    framing_error, overrun : Out(1)
        One-cycle pulses.
    """

    def __init__(self, divisor):
        self.divisor = divisor
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8)),
                          "framing_error": Out(1), "overrun": Out(1)})

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        d = self.divisor
        sync1 = Signal(init=1)
        line = Signal(init=1)
        m.d.sync += [sync1.eq(self.rx), line.eq(sync1)]
        timer = Signal(range(d))
        bit = Signal(range(10))
        shift = Signal(8)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    m.next = "IDLE"  # a glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.eq(d - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [timer.eq(d - 1), shift.eq(Cat(shift[1:], line)),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    with m.If(~line):
                        m.d.comb += self.framing_error.eq(1)
                    with m.Elif(self.o.valid & ~self.o.ready):
                        m.d.comb += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                    m.next = "IDLE"
        return m


class UartTx(_Uart, wiring.Component):
    """8N1 transmitter: ``divisor`` clock cycles per bit, bytes in as a stream.

    Members
    -------
    i : In(stream.Signature(8))
    tx : Out(1)
        Serial line, idle high.
    """

    def __init__(self, divisor):
        self.divisor = divisor
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        d = self.divisor
        timer = Signal(range(d))
        bits = Signal(10, init=0x3FF)
        left = Signal(range(11))
        m.d.comb += [self.tx.eq(bits[0]), self.i.ready.eq(left == 0)]
        with m.If(left == 0):
            with m.If(self.i.valid):
                m.d.sync += [bits.eq(Cat(0, self.i.payload, 1)), left.eq(10),
                             timer.eq(d - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [bits.eq(Cat(bits[1:], 1)), left.eq(left - 1), timer.eq(d - 1)]
        return m
