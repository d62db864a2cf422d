"""NPU benchmark: cycles and systolic-array utilisation per layer, in Verilator.

Each layer is one CONV instruction through the Verilator model of the whole NPU (the cocotb
test ``test_benchmark_layer``, which checks every output word against the instruction-level
simulator): cycles of the program, cycles the convolution unit was busy, the simulator's
prediction, and utilisation = useful MACs / (array MACs x busy cycles). A fully connected
layer is a CONV whose kernel covers the whole input.

Fully connected layers also run as ``SPFC`` on the NPU's sparse engine (``test_benchmark_
spfc``): a random pruned, weight-shared matrix at several weight and input densities, its
cycles with the matrix load and with the matrix loaded, and the engine's utilisation =
useful MACs (non-zero weight x non-zero input) / (PEs x cycles the unit was busy).

The 3x3 layers also run on the Winograd engine (``--winograd``: an NPU with the engine,
``c_max`` = ``k_max`` = 64): utilisation = useful MACs / (36 x cycles its unit was busy),
36 being the direct-convolution MACs of one 2x2 output tile and filter per cycle.

Run: ``python scripts/bench_npu.py [--lanes 8] [--quick] [--winograd]``.
"""

import argparse

from npugen.rtl.npu import NpuParams
from npugen.rtl.sparse.params import SparseParams
from npugen.rtl.systolic.params import SystolicParams
from npugen.rtl.winograd.params import WinogradParams

from .build import run_metric

__all__ = ["LAYERS", "main"]

#: (label, k, size, cin, cout): 3x3 and 1x1 convolutions, 8..64 channels, FC layers.
LAYERS = [
    ("conv 3x3", 3, 8, 8, 8), ("conv 3x3", 3, 8, 16, 16), ("conv 3x3", 3, 8, 32, 32),
    ("conv 3x3", 3, 8, 64, 64), ("conv 3x3", 3, 16, 16, 16), ("conv 3x3", 3, 16, 32, 32),
    ("conv 1x1", 1, 8, 16, 16), ("conv 1x1", 1, 8, 64, 64), ("conv 1x1", 1, 16, 32, 32),
    ("fc", 4, 4, 16, 10), ("fc", 4, 4, 64, 64), ("fc", 1, 1, 64, 64),
]
QUICK = [LAYERS[1], LAYERS[6], LAYERS[9]]
#: (cin, cout, weight density, input density) of the SPFC rows.
SPFC_LAYERS = [(64, 64, 0.1, 0.5), (64, 64, 0.1, 1.0), (64, 64, 0.2, 0.5), (64, 64, 0.5, 1.0),
               (64, 32, 0.2, 1.0), (64, 64, 1.0, 1.0)]


def bench_params(lanes, winograd=False):
    """Return the benchmarked NPU: a ``lanes x lanes`` array, memories for 16x16x64 layers.

    ``winograd``: the Winograd engine for 64 channels instead of the sparse engine.
    """
    engines = {"winograd": WinogradParams(c_max=64, k_max=64)} if winograd else {
        "sparse": SparseParams(n_pe=lanes, rows_max=64, cols_max=64, entries_max=1024,
                               act_width=16, act_lanes=lanes)}
    return NpuParams(lanes=lanes, act_words=16 * 16 * 64 // lanes, wgt_words=65536 // lanes
                     * 9 // 8, acc_words=256, tab_entries=128, imem_words=8,
                     systolic=SystolicParams(rows=lanes, cols=lanes), **engines)


def main(argv=None):
    """Print the table as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--build", default="build/bench")
    parser.add_argument("--quick", action="store_true", help="three layers only")
    parser.add_argument("--only", default=None, help="only layers whose label starts so")
    parser.add_argument("--winograd", action="store_true",
                        help="the 3x3 layers on the Winograd engine (an NPU with it)")
    args = parser.parse_args(argv)
    if args.winograd:
        return _winograd(args)
    p = bench_params(args.lanes)
    print(f"NPU {p.slug}: {p.macs} MACs/cycle peak\n")
    print("| layer | input | Cin -> Cout | MACs | cycles (program) | unit busy | model "
          "| model error | utilisation | Verilator cycles/s |\n"
          "|---|---|---|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    layers = [row for row in (QUICK if args.quick else LAYERS)
              if args.only is None or row[0].startswith(args.only)]
    for label, k, size, cin, cout in layers:
        r = run_metric(p, test="test_benchmark_layer", build_root=args.build, seed=args.seed,
                       env={"NPUGEN_LAYER": f"{k},{size},{cin},{cout}"})
        error = r["model_cycles"] / r["cycles"] - 1
        print(f"| {label} | {size}x{size} | {cin} -> {cout} | {r['macs']} | {r['cycles']} "
              f"| {r['busy']} | {r['model_cycles']} | {error:+.1%} "
              f"| {100 * r['macs'] / (r['peak'] * r['busy']):.1f}% "
              f"| {r['cycles_per_second']:,.0f} |", flush=True)
    if args.only is not None and not "sparse".startswith(args.only):
        return 0
    print(f"\nSPFC on the sparse engine ({p.sparse.n_pe} PEs; program = HEADER, SPFC, HALT)\n")
    print("| Cin -> Cout | weights | inputs | stored beats | useful MACs | cycles with load "
          "(model) | cycles loaded (model) | engine busy | utilisation |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for cin, cout, wd, ad in (SPFC_LAYERS[:2] if args.quick else SPFC_LAYERS):
        r = run_metric(p, test="test_benchmark_spfc", build_root=args.build, seed=args.seed,
                       env={"NPUGEN_SPFC": f"{cin},{cout},{wd},{ad}"})
        print(f"| {cin} -> {cout} | {wd:.0%} | {ad:.0%} | {r['stored']} | {r['macs']} "
              f"| {r['cycles_load']} ({r['model_load']}) | {r['cycles']} ({r['model_cycles']}) "
              f"| {r['busy']} | {100 * r['macs'] / (r['peak'] * r['busy']):.1f}% |",
              flush=True)
    return 0


def _winograd(args):
    """Print the 3x3 layers on the Winograd engine and on the array of the same NPU."""
    p = bench_params(args.lanes, winograd=True)
    print(f"NPU {p.slug}: Winograd engine {p.winograd.macs} MACs/cycle, array {p.macs}\n")
    print("| layer | input | Cin -> Cout | MACs | engine | cycles (program) | unit busy | model "
          "| utilisation | Verilator cycles/s |\n"
          "|---|---|---|---:|---|---:|---:|---:|---:|---:|", flush=True)
    layers = [row for row in (QUICK if args.quick else LAYERS) if row[0] == "conv 3x3"]
    for label, k, size, cin, cout in layers:
        for engine in (1, 0):
            r = run_metric(p, test="test_benchmark_layer", build_root=args.build,
                           seed=args.seed, env={"NPUGEN_LAYER": f"{k},{size},{cin},{cout},"
                                                                f"{engine}"})
            print(f"| {label} | {size}x{size} | {cin} -> {cout} | {r['macs']} "
                  f"| {'winograd' if engine else 'array'} | {r['cycles']} | {r['busy']} "
                  f"| {r['model_cycles']} | {100 * r['macs'] / (r['peak'] * r['busy']):.1f}% "
                  f"| {r['cycles_per_second']:,.0f} |", flush=True)
    return 0
