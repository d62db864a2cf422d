"""Self-checking workload of the systolic array over the link (``npugen run systolic``)."""

import numpy as np

from npugen.rtl.systolic import Dataflow
from npugen.rtl.systolic.ports import ws_buffer_depth

from ..formats.systolic import act_beats, os_beats, parse_out, weight_beats
from ..models.intmath import signed_range
from ..models.systolic import os_tile, ws_tile
from .client import finish_workload

__all__ = ["run_systolic"]


async def run_systolic(client, params, seed, vectors=3, log=print):
    """Run two random tiles through a systolic array; check every output word.

    Weight-stationary: each tile is ``rows`` weight beats followed by ``vectors``
    activation vectors (random operands, random partial sums, ``last`` on the final one),
    compared with :func:`npugen.sim.models.systolic.ws_tile`; ``vectors`` is kept within
    the array's result buffer, so a tile never waits for a read. Output-stationary: each
    tile is K = ``vectors`` beats of A columns and B rows, its ``rows`` result vectors
    compared with :func:`~npugen.sim.models.systolic.os_tile`. Results are read back after
    each tile. Returns a summary dictionary (``words``, ``mismatches`` and the status).
    """
    p = params
    ws = p.dataflow is Dataflow.WS
    if ws:
        vectors = min(vectors, ws_buffer_depth(p))
    nrng = np.random.default_rng(seed)

    def ints(width, shape):
        lo, hi = signed_range(width)
        return nrng.integers(lo, hi + 1, size=shape)

    await client.reset()
    mismatches, words = 0, 0
    for t in range(2):
        if ws:
            w = ints(p.w_width, (p.rows, p.cols))
            a = ints(p.a_width, (vectors, p.rows))
            psum = ints(p.acc_width, (vectors, p.cols))
            await client.write("i_weight", weight_beats(p, w))
            await client.write("i_act", act_beats(p, a, psum))
            want = ws_tile(p, a, w, psum)
        else:
            a = ints(p.a_width, (p.rows, vectors))
            b = ints(p.w_width, (vectors, p.cols))
            await client.write("i", os_beats(p, a, b))
            want = os_tile(p, a, b)
        n = len(want)
        y, last = parse_out(p, await client.read("o", n))
        bad = int((y != want).sum()) + int((last != (np.arange(n) == n - 1)).sum())
        log(f"tile {t}: {n} result vectors x {p.cols} outputs, {bad} mismatches")
        if bad:
            log(f"  got  {y[:2].tolist()}")
            log(f"  want {want[:2].tolist()}")
        mismatches += bad
        words += n * p.cols
    return await finish_workload(client, words, mismatches, log)
