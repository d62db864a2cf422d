"""Board tops: clock and UART pins around a block behind :class:`npugen.rtl.link.HostLink`.

The core runs from the board's default oscillator (12 MHz on the iCEBreaker, 25 MHz on the
ULX3S), with no PLL; the UART divisor is ``round(clock / baud)``.
"""

import importlib
from dataclasses import dataclass

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io

from npugen.rtl.link import HostLink

__all__ = ["BOARDS", "Board", "BoardTop"]


@dataclass(frozen=True)
class Board:
    """A supported board: its amaranth-boards platform and toolchain."""

    name: str
    platform: str  # "module:Class" in amaranth_boards
    family: str  # "ice40" or "ecp5"
    bitstream: str  # file suffix of the bitstream

    def make_platform(self):
        """Instantiate the amaranth-boards platform."""
        module, cls = self.platform.split(":")
        return getattr(importlib.import_module(module), cls)()


BOARDS = {
    "icebreaker": Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40",
                        "bin"),
    "ulx3s-85f": Board("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5", "bit"),
}


class BoardTop(Elaboratable):
    """Pins only: the board's UART to ``HostLink(block)``'s ``rx``/``tx``.

    ``block`` is any component whose streams are its interface (every npugen top);
    ``counters``: the link's STATUS cycle counters.
    """

    def __init__(self, block, baud=115200, counters=True):
        self.block = block
        self.baud = baud
        self.counters = counters

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        divisor = round(platform.default_clk_frequency / self.baud)
        m.submodules.core = core = HostLink(self.block, divisor=divisor,
                                            counters=self.counters)
        # Raw ports for every subsignal (the ULX3S UART also has dtr/rts), buffers below.
        subsignals = [io.name for io in platform.lookup("uart", 0).ios]
        uart = platform.request("uart", 0, dir=dict.fromkeys(subsignals, "-"))
        m.submodules.rx_buffer = rx = io.Buffer("i", uart.rx)
        m.submodules.tx_buffer = tx = io.Buffer("o", uart.tx)
        m.d.comb += [core.rx.eq(rx.i), tx.o.eq(core.tx)]
        return m
