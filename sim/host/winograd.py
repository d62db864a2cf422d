"""Self-checking workload of the Winograd layer over the link (``npugen run winograd``)."""

import numpy as np

from ..formats.winograd import cfg_beat, filter_beats, out_beats, parse_out, pixel_beats
from ..models.intmath import signed_range
from ..models.winograd import conv2d_direct
from .client import finish_workload

__all__ = ["run_winograd", "winograd_layers"]


def winograd_layers(params, count):
    """Return ``count`` layer shapes ``(H, W, C, K, padding)`` for :func:`run_winograd`.

    Each layer's output is at most 12 beats, within the tile engine's result buffer (15):
    the link forwards a WRITE frame completely before it serves a READ, so a layer whose
    output had to be read while its pixels were still being written would stall the link.
    The shapes alternate between valid padding and same padding on an odd size (masked edge
    tiles).
    """
    p = params
    c = min(p.c_max, 3)
    shapes = [(min(p.h_max, 6), min(p.w_max, 6), c, min(p.k_max, 3), "valid"),
              (min(p.h_max, 5), 3, c, min(p.k_max, 2), "same")]
    return [shapes[i % 2] for i in range(count)]


async def run_winograd(client, params, seed, vectors=3, log=print):
    """Run ``vectors`` small convolution layers through a Winograd layer; check every pixel.

    Each layer (:func:`winograd_layers`) is its configuration, random filters (raw or
    host-transformed, as the build takes them) and random pixels; the output beats are read
    back and compared, lane by lane where the mask says the pixel exists, with the direct
    convolution :func:`npugen.sim.models.winograd.conv2d_direct`. Returns a summary
    dictionary (``words``, ``mismatches`` and the status).
    """
    p = params
    nrng = np.random.default_rng(seed)
    lo, hi = signed_range(p.data_width)
    await client.reset()
    mismatches, words = 0, 0
    for n, (h, w, c, k, padding) in enumerate(winograd_layers(p, vectors)):
        x = nrng.integers(lo, hi + 1, size=(h, w, c))
        g = nrng.integers(lo, hi + 1, size=(k, c, 3, 3))
        want = out_beats(p, conv2d_direct(p, x, g, padding))
        await client.write("i_cfg", [cfg_beat(p, h, w, c, k, padding)])
        await client.write("i_filter", filter_beats(p, g))
        await client.write("i_pixel", pixel_beats(p, x))
        got = parse_out(p, await client.read("o", len(want)))
        bad = sum(gb != wb for g_beat, e_beat in zip(got, want, strict=True)
                  for gb, wb in zip(g_beat["y"], e_beat["y"], strict=True))
        bad += sum(g_beat["mask"] != e_beat["mask"] or g_beat["last"] != e_beat["last"]
                   for g_beat, e_beat in zip(got, want, strict=True))
        log(f"layer {n}: {h} x {w} x {c}, K = {k}, {padding}: {len(want)} output beats, "
            f"{bad} mismatches")
        if bad:
            log(f"  got  {got[:2]}")
            log(f"  want {want[:2]}")
        mismatches += bad
        words += sum(e is not None for b in want for e in b["y"])
    return await finish_workload(client, words, mismatches, log)
