"""The main job: generate every block with default parameters and self-check it in Verilator.

Used by ``npugen demo``. Each block gets a folder under the output directory with its
Verilog, manifest, Verilator build and logs; a short random workload runs through the
cocotb bench and is compared word by word with the golden model.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..blocks import BLOCKS, NPU_DEMO, DemoCase
from .build import BUILD_FAST, read_results, run_bench
from .digits import held_out_split, network_path
from .infer import compile_model, infer

__all__ = ["DemoResult", "demo_cases", "format_table", "run_demo", "run_digits_demo"]


def demo_cases():
    """Every block's demo cases, in registry order."""
    return [case for block in BLOCKS.values() for case in block.demo]


@dataclass
class DemoResult:
    """Outcome of one demo case."""

    case: DemoCase
    passed: bool
    cycles: int | None
    macs: int | None
    seconds: float
    detail: str


def _describe(params):
    return " ".join(f"{row['name']}={row['value']}" for row in params.describe()
                    if row["value"] is not None and row["name"] != "block")


def _run_case(case, out_dir, seed, stage):
    build_dir = out_dir / case.params.slug
    build_dir.mkdir(parents=True, exist_ok=True)
    result_file = build_dir / "demo_result.json"
    if result_file.exists():
        result_file.unlink()
    start = time.monotonic()
    try:
        # short simulations: compiling the model with -O0 saves more than it costs them
        xml = run_bench(case.params, build_dir=build_dir, seed=seed, isolate=True,
                        cxx_opt=BUILD_FAST, test_filter=rf"\.{case.test}$", quiet=True,
                        extra_env={"NPUGEN_RESULT": str(result_file)}, stage=stage)
    except (RuntimeError, SystemExit, OSError) as exc:
        return DemoResult(case, False, None, None, time.monotonic() - start,
                          f"build or run failed: {exc}; see {build_dir}/build.log")
    names, failed, skipped = read_results(xml)
    passed = bool(names) and not failed and not skipped and result_file.exists()
    metrics = json.loads(result_file.read_text()) if result_file.exists() else {}
    detail = "" if passed else f"self-check failed; see {build_dir}/test.log"
    return DemoResult(case, passed, metrics.get("cycles"), metrics.get("macs"),
                      time.monotonic() - start, detail)


def run_demo(out_dir, seed, progress=print):
    """Run every demo case; report progress through ``progress``; return the results."""
    out_dir = Path(out_dir).resolve()  # the simulator runs inside the build folder
    results = []
    cases = demo_cases()
    total = len(cases)
    for n, case in enumerate(cases, 1):
        progress(f"[{n}/{total}] {case.params.block} {_describe(case.params)}")
        start = time.monotonic()

        def stage(what, n=n, start=start):
            progress(f"[{n}/{total}]   {time.monotonic() - start:5.1f} s  {what}")
        result = _run_case(case, out_dir, seed, stage)
        state = "pass" if result.passed else "FAIL"
        progress(f"[{n}/{total}]   {result.seconds:5.1f} s  {state}"
                 + (f": {result.detail}" if result.detail else ""))
        results.append(result)
    return results


def format_table(results):
    """Return the summary table as text."""
    # Winograd counts direct-convolution MACs (36 per cycle from 16 multipliers).
    header = ("block", "parameters", "cycles", "MACs/cycle", "peak", "result")
    rows = []
    for r in results:
        p = r.case.params
        rate = f"{r.macs / r.cycles:.2f}" if r.cycles and r.macs is not None else "-"
        # The slug names every parameter; drop the block prefix the first column shows.
        described = p.slug.removeprefix(f"{p.block}_")
        rows.append((p.block, described, str(r.cycles or "-"), rate, str(p.macs),
                     "pass" if r.passed else "FAIL"))
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
             for row in (header, tuple("-" * w for w in widths), *rows)]
    return "\n".join(lines)


def run_digits_demo(out_dir, seed, images=8, progress=print):
    """Compile the digits CNN for the demo NPU and run ``images`` test images in Verilator.

    Every output element is compared with onnxruntime's. Returns ``(passed, lines)``: the
    verdict and the report (predictions, labels, cycles, the comparison).
    """
    out_dir = Path(out_dir).resolve()
    rng = np.random.default_rng(seed)
    x_te, y_te = held_out_split()
    pick = np.sort(rng.choice(len(x_te), size=images, replace=False))
    folder = out_dir / "digits_cnn"
    progress(f"digits CNN: compiling {network_path('digits_cnn').name} for "
             f"{NPU_DEMO.slug}")
    plan = compile_model(network_path("digits_cnn"), folder, NPU_DEMO)
    progress(f"digits CNN: {images} held-out test images through the Verilator NPU")
    start = time.monotonic()
    try:
        # in the NPU demo case's folder, built with the same flags: its model is reused
        r = infer(folder, x_te[pick], engine="verilator", check=True, seed=seed,
                  cxx_opt=BUILD_FAST, build_dir=out_dir / NPU_DEMO.slug)
    except RuntimeError as exc:
        return False, [f"digits CNN: FAIL: {exc}"]
    predicted = r.outputs.argmax(axis=1)
    exact = r.checked and not r.mismatches
    lines = [
        (f"digits CNN ({len(plan['layers'])} layers, {plan['macs']} MACs/image) on "
         f"{NPU_DEMO.slug}, {time.monotonic() - start:.1f} s:"),
        f"  labels     {' '.join(str(v) for v in y_te[pick])}",
        f"  predicted  {' '.join(str(v) for v in predicted)}",
        (f"  {int((predicted == y_te[pick]).sum())}/{images} correct, "
         f"{r.cycles[0]} cycles/image, "
         + ("bit-exact vs onnxruntime" if exact else
            f"{len(r.mismatches)} elements differ from onnxruntime: FAIL")),
    ]
    return exact, lines
