"""Systolic-array GEMM benchmark: cycles, MACs/cycle, PE utilisation, simulation speed.

Runs full GEMMs through the Verilator model (the cocotb tests ``test_ws_gemm`` and
``test_os_gemm``, which also check every result word) and prints a Markdown table.
Cycles count from the first input handshake to the last output handshake, with the output
always ready, so they include the first weight load and the pipeline fill and drain.
Utilisation = useful MACs / (rows * cols * cycles).

Run: ``python scripts/bench_systolic.py [--rows 8 --cols 8] [--seed N]``.
"""

import argparse

from npugen.rtl.systolic import SystolicParams

from .build import run_metric

__all__ = ["default_shapes", "main", "run"]


def default_shapes(rows, cols):
    """GEMM shapes (M, K, N) per dataflow, scaled to the array so the targets are tested."""
    return {
        # WS: M vectors per weight tile; M >= 16*rows is the utilisation target's regime.
        "ws": [(16 * rows, 8 * rows, 8 * cols), (32 * rows, 4 * rows, 4 * cols),
               (4 * rows, 8 * rows, 8 * cols), (16 * rows, rows, cols)],
        # OS: K beats per output tile; K >= 8*rows is the target's regime.
        "os": [(8 * rows, 8 * rows, 8 * cols), (4 * rows, 32 * rows, 4 * cols),
               (8 * rows, 2 * rows, 8 * cols), (8 * rows, rows, 8 * cols)],
    }




def run(params, shape, build_root, seed):
    """Run one GEMM; return the metrics dictionary the bench wrote."""
    return run_metric(params,
                      test=f"test_{params.dataflow.value}_gemm", build_root=build_root,
                      seed=seed, env={"NPUGEN_GEMM": ",".join(map(str, shape))})


def main(argv=None):
    """Command-line entry point; prints the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--cols", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--build", default="build/bench")
    args = parser.parse_args(argv)
    print("| dataflow | array | M x K x N | cycles | MACs/cycle | PE utilisation "
          "| sim cycles/s |\n|---|---|---|---:|---:|---:|---:|", flush=True)
    for dataflow, shapes in default_shapes(args.rows, args.cols).items():
        params = SystolicParams(rows=args.rows, cols=args.cols, dataflow=dataflow)
        for shape in shapes:
            r = run(params, shape, args.build, args.seed)
            print(f"| {dataflow} | {args.rows}x{args.cols} | {r['m']} x {r['k']} x {r['n']} "
                  f"| {r['cycles']} | {r['macs'] / r['cycles']:.2f} "
                  f"| {100 * r['utilisation']:.1f}% | {r['cycles_per_second']:.0f} |",
                  flush=True)
    return 0
