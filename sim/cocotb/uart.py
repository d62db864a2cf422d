"""A simulated UART for cocotb: the host side of ``rx``/``tx`` at ``divisor`` cycles per bit.

:class:`SimUart` is a transport for :class:`npugen.sim.host.client.HostClient`, so the client that
drives a real board over pyserial drives the Verilator model bit by bit here.
"""

from collections import deque

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge

from ..host.client import LinkError

__all__ = ["SimUart"]


class SimUart:
    """Bit-level 8N1 UART on ``dut.rx`` (driven) and ``dut.tx`` (monitored)."""

    def __init__(self, dut, divisor, timeout_cycles=200_000):
        self.dut = dut
        self.divisor = divisor
        self.timeout_cycles = timeout_cycles
        self.received = deque()
        self.gap = 0  # idle bit times between sent bytes
        dut.rx.value = 1
        self._monitor = cocotb.start_soon(self._receive())

    async def send(self, data):
        """Shift ``data`` out on ``rx``: start bit, 8 data bits LSB first, stop bit."""
        for byte in data:
            for bit in [0, *((byte >> k) & 1 for k in range(8)), 1]:
                self.dut.rx.value = bit
                await ClockCycles(self.dut.clk, self.divisor)
            if self.gap:
                await ClockCycles(self.dut.clk, self.gap * self.divisor)

    async def _receive(self):
        while True:
            await FallingEdge(self.dut.tx)
            await ClockCycles(self.dut.clk, self.divisor // 2)
            if int(self.dut.tx.value) != 0:
                continue  # a glitch
            byte = 0
            for k in range(8):
                await ClockCycles(self.dut.clk, self.divisor)
                byte |= int(self.dut.tx.value) << k
            await ClockCycles(self.dut.clk, self.divisor)
            if int(self.dut.tx.value) != 1:
                raise AssertionError("tx: stop bit low")
            self.received.append(byte)

    async def recv(self, count):
        """Wait for ``count`` bytes from ``tx``; LinkError after ``timeout_cycles``."""
        waited = 0
        while len(self.received) < count:
            if waited >= self.timeout_cycles:
                raise LinkError(f"timeout: {len(self.received)} of {count} bytes")
            await ClockCycles(self.dut.clk, self.divisor)
            waited += self.divisor
        return bytes(self.received.popleft() for _ in range(count))

    def stop(self):
        """Stop the tx monitor."""
        self._monitor.cancel()
