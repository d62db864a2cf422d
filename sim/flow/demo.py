"""The main job: generate every block with default parameters and self-check it in Verilator.

Used by ``npugen demo``. Each block gets a folder under the output directory with its
Verilog, manifest, Verilator build and logs; a short random workload runs through the
cocotb bench and is compared word by word with the golden model.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ..blocks import BLOCKS, DemoCase
from .build import read_results, run_bench

__all__ = ["DemoResult", "demo_cases", "format_table", "run_demo"]


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
        xml = run_bench(case.params, build_dir=build_dir, seed=seed, isolate=True,
                        test_filter=rf"\.{case.test}$", quiet=True,
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
