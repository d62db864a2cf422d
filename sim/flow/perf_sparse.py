"""Sparse engine benchmark: cycles versus stored entries and versus a dense engine, load balance.

Every figure comes from the Verilator model of :class:`SparseMatVec` (the cocotb test
``test_benchmark``, which also checks every output word against numpy):

1. ``y = W x`` for a ``rows x cols`` matrix at several weight and activation densities:
   stored entries (padding included), entries the PEs read, useful MACs, cycles of the MAC
   phase and of the whole vector (first input beat to last output word, readout included),
   the cycles per vector when the vectors come back to back (steady state: the cycles
   between consecutive vectors' last output words; with ``acc_banks=2`` each readout
   overlaps the next vector's MAC phase), against a dense engine with the same
   ``n_pe`` multipliers at 100% utilisation
   (``rows * cols / n_pe`` cycles); effective GOPS (2 x useful MACs per cycle) and
   dense-equivalent GOPS (2 x rows x cols per vector) at a stated clock.
2. EIE's load-balance study: the fraction of PE-idle cycles in the MAC phase (cycles in which
   a PE reads no stored entry, over ``n_pe x`` MAC-phase cycles) versus the activation queue
   depth per PE, on random sparse matrices.

Run: ``python scripts/bench_sparse.py [--clock-mhz F] [--primitives ecp5|inferred]
[--acc-banks 1|2] [--docs docs]``; it prints Markdown and, with ``--docs``, writes
``sparse_bench.md``/``.json``
and ``sparse_load_balance.png``.
"""

import argparse
import json
from dataclasses import replace
from pathlib import Path

from npugen.rtl.sparse import SparseParams

from .build import run_metric

__all__ = ["DENSITIES", "QUEUE_DEPTHS", "main", "run_case"]

#: (weight density, activation density) pairs of the cycles table; the first is the headline.
DENSITIES = [(0.1, 0.5), (0.01, 0.5), (0.1, 1.0), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)]
QUEUE_DEPTHS = [1, 2, 4, 8, 16, 32]


def run_case(params, rows, cols, weight_density, act_density, vectors, build_root, seed):
    """Run one benchmark case in Verilator; return the metrics dictionary."""
    env = {"NPUGEN_SPARSE_BENCH": json.dumps({
        "rows": rows, "cols": cols, "weight_density": weight_density,
        "act_density": act_density, "vectors": vectors})}
    return run_metric(params, test="test_benchmark",
                      build_root=build_root, seed=seed, env=env)


def _cycles_row(p, rows, cols, wd, ad, r, clock_mhz):
    n = len(r["cycles"])
    total = sum(r["cycles"]) / n
    compute = sum(r["compute_cycles"]) / n
    stream = sum(r["stream_cycles"]) / len(r["stream_cycles"])
    macs = sum(r["useful_macs"]) / n
    read = sum(r["entries_read"]) / n
    dense = rows * cols / p.n_pe
    return {
        "weight_density": wd, "act_density": ad, "stored": r["stored"],
        "entries_read": read, "useful_macs": macs, "compute_cycles": compute,
        "total_cycles": total, "stream_cycles": stream, "dense_cycles": dense,
        "ratio": total / dense, "stream_ratio": stream / dense,
        "effective_gops": 2 * macs / stream * clock_mhz / 1000,
        "dense_equivalent_gops": 2 * rows * cols / stream * clock_mhz / 1000,
    }


def _idle_fraction(p, r):
    busy = sum(r["active"])
    return 1 - busy / (p.n_pe * sum(r["compute_cycles"]))


def _plot(points, n_pe, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label, series in points.items():
        ax.plot([d for d, _ in series], [100 * f for _, f in series], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(QUEUE_DEPTHS, [str(d) for d in QUEUE_DEPTHS])
    ax.set_xlabel("activation queue depth per PE")
    ax.set_ylabel("PE-idle cycles in the MAC phase (%)")
    ax.set_title(f"Load balance, {n_pe} PEs (Verilator, cycle-exact)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    """Run both studies and print Markdown tables; optionally write them into ``--docs``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--cols", type=int, default=256)
    parser.add_argument("--n-pe", type=int, default=8)
    parser.add_argument("--vectors", type=int, default=4)
    parser.add_argument("--clock-mhz", type=float, default=100.0,
                        help="clock for the GOPS columns (default: 100)")
    parser.add_argument("--primitives", default="ecp5", choices=["ecp5", "inferred"],
                        help="the engine's memories and multipliers (default: ecp5, the "
                             "build whose Fmax --clock-mhz should be)")
    parser.add_argument("--acc-banks", type=int, default=2, choices=[1, 2],
                        help="accumulator banks (default: 2, the readout hidden)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--build", default="build/bench")
    parser.add_argument("--docs", default=None, help="folder for the Markdown, JSON and PNG")
    args = parser.parse_args(argv)
    if args.vectors < 2:
        parser.error("--vectors: at least 2 (the streamed figure is between vectors)")
    rows, cols = args.rows, args.cols
    per_pe = len(range(0, rows, args.n_pe))
    p = SparseParams(n_pe=args.n_pe, rows_max=rows, cols_max=cols,
                     entries_max=min(65535, max(16, per_pe * cols + cols)),
                     acc_banks=args.acc_banks, primitives=args.primitives)
    lines = [(f"Cycles for y = W x, {rows} x {cols}, {p.n_pe} PEs ({p.slug}), "
             f"{args.vectors} random vectors per row, GOPS at {args.clock_mhz:g} MHz "
             "(total: one vector alone, first beat to last word; streamed: the vectors back "
             "to back, cycles between consecutive last words; GOPS from the streamed cycles):"), "",
             ("| weight density | act. density | stored entries | entries read | useful MACs "
             "| MAC-phase cycles | total cycles | streamed cycles / vector | dense cycles "
             "| total / dense | streamed / dense | effective GOPS | dense-equiv. GOPS |"),
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    table = []
    for wd, ad in DENSITIES:
        r = run_case(p, rows, cols, wd, ad, args.vectors, args.build, args.seed)
        row = _cycles_row(p, rows, cols, wd, ad, r, args.clock_mhz)
        table.append(row)
        line = (f"| {wd:.0%} | {ad:.0%} | {row['stored']} | {row['entries_read']:.0f} "
                f"| {row['useful_macs']:.0f} | {row['compute_cycles']:.0f} "
                f"| {row['total_cycles']:.0f} | {row['stream_cycles']:.0f} "
                f"| {row['dense_cycles']:.0f} "
                f"| {row['ratio']:.3f} (1/{1 / row['ratio']:.1f}) "
                f"| {row['stream_ratio']:.3f} (1/{1 / row['stream_ratio']:.1f}) "
                f"| {row['effective_gops']:.3f} "
                f"| {row['dense_equivalent_gops']:.2f} |")
        lines.append(line)
        print(line, flush=True)

    balance_sets = [(0.1, 0.5), (0.05, 1.0)]
    head = ["", (f"PE-idle fraction of the MAC phase versus activation queue depth ({rows} x "
            f"{cols}, {p.n_pe} PEs, act_lanes {p.act_lanes}, {args.vectors} vectors):"), "",
            "| queue depth | " + " | ".join(f"idle, W {wd:.0%} / x {ad:.0%}"
                                           for wd, ad in balance_sets)
            + " | " + " | ".join(f"MAC-phase cycles, W {wd:.0%} / x {ad:.0%}"
                                 for wd, ad in balance_sets) + " |",
            "|---:|" + "---:|" * (2 * len(balance_sets))]
    print("\n".join(head), flush=True)
    lines += head
    points = {f"W {wd:.0%}, x {ad:.0%}": [] for wd, ad in balance_sets}
    balance = []
    for depth in QUEUE_DEPTHS:
        q = replace(p, queue_depth=depth)
        fractions, cycles = [], []
        for (wd, ad), series in zip(balance_sets, points.values(), strict=True):
            r = run_case(q, rows, cols, wd, ad, args.vectors, args.build, args.seed)
            f = _idle_fraction(q, r)
            fractions.append(f)
            cycles.append(sum(r["compute_cycles"]) / len(r["compute_cycles"]))
            series.append((depth, f))
        balance.append({"queue_depth": depth, "idle": fractions, "compute_cycles": cycles})
        line = (f"| {depth} | " + " | ".join(f"{100 * f:.1f}%" for f in fractions) + " | "
                + " | ".join(f"{c:.0f}" for c in cycles) + " |")
        lines.append(line)
        print(line, flush=True)

    if args.docs:
        docs = Path(args.docs)
        docs.mkdir(parents=True, exist_ok=True)
        (docs / "sparse_bench.md").write_text("\n".join(lines) + "\n")
        (docs / "sparse_bench.json").write_text(json.dumps(
            {"params": p.to_dict(), "rows": rows, "cols": cols, "vectors": args.vectors,
             "seed": args.seed, "clock_mhz": args.clock_mhz, "cycles": table,
             "load_balance": {"sets": balance_sets, "rows": balance}}, indent=2) + "\n")
        _plot(points, p.n_pe, docs / "sparse_load_balance.png")
        print(f"\nwrote {docs}/sparse_bench.md, sparse_bench.json, sparse_load_balance.png")
    return 0
