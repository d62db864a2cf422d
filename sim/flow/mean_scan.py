"""How often a TFLite ``MEAN`` compiles exactly, over random layers.

``python scripts/scan_mean.py`` runs
:func:`~npugen.sim.compiler.tflite_import.mean_constants` on three kinds of layer, as many
of each: random input and output scales; the output at the input's scale; scale ratios a
few float32 steps from ``k / 16`` (sums on or next to ties). Window sizes ``n = h * w``
with ``h, w`` in 1..8, zero points at random. For each kind it prints how many layers
compile with XNNPACK's own scale and zero point, how many need the search's moved scale or
zero point, and how many are refused.
"""

import argparse

import numpy as np

from ..compiler.tflite_import import mean_constants
from ..models.xnn_mean import xnnpack_mean_params

__all__ = ["main", "scan"]

KINDS = ("random scales", "same scale", "ratio next to k/16")


def scan(layers, seed):
    """Return ``{kind: {"own": a, "moved": b, "refused": c}}`` over ``layers`` per kind."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    out = {kind: {"own": 0, "moved": 0, "refused": 0} for kind in KINDS}
    for i in range(layers * len(KINDS)):
        kind = KINDS[i % len(KINDS)]
        n = int(np.prod(rng.integers(1, 9, 2)))
        s_out = f32(rng.uniform(0.005, 0.1))
        s_in = {"random scales": f32(rng.uniform(0.01, 0.1)), "same scale": s_out,
                "ratio next to k/16": f32(s_out * f32(int(rng.integers(1, 64)) / 16)
                                          * f32(1 + int(rng.integers(-4, 5)) * 2.0 ** -23))
                }[kind]
        zi, zo = (int(v) for v in rng.integers(-128, 128, 2))
        try:
            bias, scale, zp = mean_constants(s_in, zi, s_out, zo, n)
        except ValueError:
            out[kind]["refused"] += 1
            continue
        own = (bias, zp) == (-zi * n, zo) and scale == xnnpack_mean_params(
            s_in, zi, s_out, zo, n)[0]
        out[kind]["own" if own else "moved"] += 1
    return out


def main(argv=None):
    """Command line: ``--layers`` per kind (80), ``--seed`` (3)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=80, help="layers per kind (80)")
    ap.add_argument("--seed", type=int, default=3, help="random seed (3)")
    args = ap.parse_args(argv)
    if args.layers < 1:
        ap.error("--layers must be 1 or more")
    print(f"| layers ({args.layers} per kind, seed {args.seed}) | XNNPACK's constants | "
          "moved (scale or zero point) | refused |")
    print("|---|---:|---:|---:|")
    for kind, r in scan(args.layers, args.seed).items():
        print(f"| {kind} | {r['own']} | {r['moved']} | {r['refused']} |")
    return 0
