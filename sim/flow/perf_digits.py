"""Digits benchmark: the shipped networks on the whole held-out split, and in Verilator.

For each network (``digits_cnn``, ``digits_mlp``), compiled for the NPU given by the flags:

- the instruction-level simulator on all 450 held-out images, every output element compared
  with onnxruntime (CPUExecutionProvider); accuracy of the int8 network and of the float
  model (onnxruntime on the float ONNX file);
- the NPU's Verilator model on the first ``--verilator-images`` images (compared with
  onnxruntime too), with the cycles per image the NPU's own counter reports;
- cycles per image, useful MACs per cycle, and inferences per second at each clock given
  with ``--clock NAME=MHZ`` (for example a device's measured Fmax).

With ``--sparse-n-pe N`` the NPU gains an N-PE sparse engine and the compiler puts the
MLP's pruned hidden layer on it; the first image then loads the matrix, so the table gives
the mean over the Verilator images and the first image's cycles apart.

Run: ``python scripts/bench_digits.py [--lanes 8] [--verilator-images 50]
[--sparse-n-pe 4] [--clock ecp5-85f=24.3]``.
"""

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

from npugen.rtl.npu import NpuParams
from npugen.rtl.sparse.params import SparseParams
from npugen.rtl.systolic.params import SystolicParams

from ..blocks import NPU_ICEBREAKER, NPU_UP5K
from .digits import NETWORKS, held_out_split, network_path
from .infer import compile_model, infer, onnxruntime_outputs

__all__ = ["main", "measure"]


def _inputs(name, x):
    return x if name == "digits_cnn" else x.reshape(len(x), -1)


def measure(name, p, verilator_images, build_root, seed=1):
    """Return the figures of network ``name`` on NPU ``p`` (a dict)."""
    x_te, y_te = held_out_split()
    x = _inputs(name, x_te)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, name)
        plan = compile_model(network_path(name), folder, p)
        isa = infer(folder, x, check=True)
        row = {"network": name, "images": len(x), "macs": plan["macs"],
               "isa_mismatches": len(isa.mismatches),
               "int8_accuracy": float((isa.outputs.argmax(1) == y_te).mean()),
               "float_accuracy": float((onnxruntime_outputs(
                   network_path(name, int8=False), x).argmax(1) == y_te).mean()),
               "engines": "+".join(sorted({layer["engine"] for layer in plan["layers"]})),
               "isa_first": isa.cycles[0], "plan_cycles": plan["predicted_cycles"]}
        n = min(verilator_images, len(x)) or len(x)
        row["isa_cycles"] = sum(isa.cycles[:n]) / n
        if verilator_images:
            v = infer(folder, x[:verilator_images], engine="verilator", check=True,
                      build_root=build_root, seed=seed)
            row.update(verilator_images=len(v.cycles), verilator_mismatches=len(v.mismatches),
                       cycles=sum(v.cycles) / len(v.cycles), first=v.cycles[0],
                       cycles_per_second=sum(v.cycles) / v.seconds)
    return row


def main(argv=None):
    """Print the table as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, default=8, help="NPU lanes = array size")
    parser.add_argument("--verilator-images", type=int, default=50)
    parser.add_argument("--clock", action="append", default=[], metavar="NAME=MHZ",
                        help="report inferences/s at this clock (repeatable)")
    parser.add_argument("--sparse-n-pe", type=int, default=0,
                        help="add a sparse engine with this many PEs (0: none)")
    parser.add_argument("--up5k", action="store_true",
                        help="the iCE40 UP5K build (NPU_UP5K: 4 lanes, serial requantizer "
                             "and set-up products, weights in SPRAM); --lanes is ignored")
    parser.add_argument("--icebreaker", action="store_true",
                        help="the iCEBreaker bitstream's NPU (NPU_ICEBREAKER: NPU_UP5K at 2 "
                             "lanes with the compact requantizer); --lanes is ignored")
    parser.add_argument("--build", default="build/bench")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.verilator_images < 0:
        parser.error(f"--verilator-images must be 0 or more, not {args.verilator_images}")
    try:
        sparse = (SparseParams(n_pe=args.sparse_n_pe, act_width=16, act_lanes=args.lanes)
                  if args.sparse_n_pe else None)
        p = NpuParams(lanes=args.lanes,
                      systolic=SystolicParams(rows=args.lanes, cols=args.lanes), sparse=sparse)
        for flag, small in (("up5k", NPU_UP5K), ("icebreaker", NPU_ICEBREAKER)):
            if getattr(args, flag):
                p = replace(small, sparse=sparse if sparse is None else replace(
                    sparse, act_lanes=small.lanes))
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    clocks = [(name, float(mhz)) for name, _, mhz in (c.partition("=") for c in args.clock)]
    print(f"NPU {p.slug} ({p.macs} MACs/cycle peak)\n")
    print("| network | engines | images (ISA / Verilator) | mismatches vs onnxruntime "
          "| float acc | int8 acc | MACs/image | cycles/image (mean) | first image "
          "| MACs/cycle | Verilator cycles/s |"
          + "".join(f" inf/s @ {n} {m:g} MHz |" for n, m in clocks))
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(clocks),
          flush=True)
    bad = 0
    for name in NETWORKS:
        r = measure(name, p, args.verilator_images, args.build, args.seed)
        bad += r["isa_mismatches"] + r.get("verilator_mismatches", 0)
        cycles = r.get("cycles", r["isa_cycles"])
        measured = f"{r['cycles']:.0f}" if "cycles" in r else "-"
        print(f"| {name} | {r['engines']} | {r['images']} / {r.get('verilator_images', 0)} "
              f"| {r['isa_mismatches']} / {r.get('verilator_mismatches', '-')} "
              f"| {r['float_accuracy']:.2%} | {r['int8_accuracy']:.2%} | {r['macs']} "
              f"| {measured} (model {r['isa_cycles']:.0f}) "
              f"| {r.get('first', '-')} (model {r['isa_first']}) "
              f"| {r['macs'] / cycles:.2f} "
              f"| {r.get('cycles_per_second', 0):,.0f} |"
              + "".join(f" {m * 1e6 / cycles:,.0f} |" for _, m in clocks), flush=True)
    return 1 if bad else 0
