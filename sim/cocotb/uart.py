r"""A simulated UART for cocotb: the host side of ``rx``/``tx`` at ``divisor`` cycles per bit.

:class:`SimUart` is a transport for :class:`npugen.sim.host.client.HostClient`, so the client that
drives a real board over pyserial drives the Verilator model bit by bit here.

Bit times are waited as :class:`~cocotb.triggers.Timer`\ s of ``divisor`` clock periods, one
simulator callback per bit, and a reply is awaited on an :class:`~cocotb.triggers.Event` that
the receiver sets, so no Python runs on the clock cycles in between (``ClockCycles`` calls
back on every edge; waiting for a reply polled it). ``rx`` changes and ``tx`` is sampled on
the clock's falling edges, half a period away from the rising edges where the design samples
and drives them.
"""

from collections import deque

import cocotb
from cocotb.simtime import get_sim_time
from cocotb.triggers import Event, FallingEdge, First, Timer

from ..host.client import LinkError

__all__ = ["SimUart"]


class SimUart:
    """Bit-level 8N1 UART on ``dut.rx`` (driven) and ``dut.tx`` (monitored).

    ``period_ns`` is the period of the clock on ``dut.clk``; ``timeout_cycles`` bounds each
    :meth:`recv`.
    """

    def __init__(self, dut, divisor, period_ns, timeout_cycles=200_000):
        self.dut = dut
        self.divisor = divisor
        self.period_ns = period_ns
        self.timeout_cycles = timeout_cycles
        self.received = deque()
        self.gap = 0  # idle bit times between sent bytes
        self._arrived = Event()
        dut.rx.value = 1
        self._monitor = cocotb.start_soon(self._receive())

    def _cycles(self, count):
        return Timer(count * self.period_ns, unit="ns")

    async def send(self, data):
        """Shift ``data`` out on ``rx``: start bit, 8 data bits LSB first, stop bit."""
        await FallingEdge(self.dut.clk)
        bit_time = self._cycles(self.divisor)
        for byte in data:
            for bit in [0, *((byte >> k) & 1 for k in range(8)), 1]:
                self.dut.rx.value = bit
                await bit_time
            if self.gap:
                await self._cycles(self.gap * self.divisor)

    async def _receive(self):
        bit_time = self._cycles(self.divisor)
        while True:
            await FallingEdge(self.dut.tx)  # the start bit, driven on a rising clock edge
            # to the middle of the start bit, on a falling clock edge
            await Timer((self.divisor // 2 + 0.5) * self.period_ns, unit="ns")
            if int(self.dut.tx.value) != 0:
                continue  # a glitch
            byte = 0
            for k in range(8):
                await bit_time
                byte |= int(self.dut.tx.value) << k
            await bit_time
            if int(self.dut.tx.value) != 1:
                raise AssertionError("tx: stop bit low")
            self.received.append(byte)
            self._arrived.set()

    async def recv(self, count):
        """Wait for ``count`` bytes from ``tx``; LinkError after ``timeout_cycles``."""
        deadline = get_sim_time("ns") + self.timeout_cycles * self.period_ns
        while len(self.received) < count:
            left = deadline - get_sim_time("ns")
            if left <= 0:
                raise LinkError(f"timeout: {len(self.received)} of {count} bytes")
            self._arrived.clear()
            await First(self._arrived.wait(), Timer(left, unit="ns", round_mode="ceil"))
        return bytes(self.received.popleft() for _ in range(count))

    def stop(self):
        """Stop the tx monitor."""
        self._monitor.cancel()
