"""Self-checking workload of the sparse engine over the link (``npugen run sparse``)."""

import numpy as np

from ..formats.compress import encode
from ..formats.sparse import act_beats, load_program, parse_out
from ..models.intmath import signed_range
from ..models.sparse import dense_weights, sparse_matvec
from .client import finish_workload

__all__ = ["run_sparse"]


async def run_sparse(client, params, seed, vectors=3, log=print):
    """Load a random compressed matrix into a sparse engine and check ``vectors`` results.

    Returns a summary dictionary; ``mismatches`` counts output words that differ from
    :func:`npugen.sim.models.sparse.sparse_matvec`.
    """
    p = params
    nrng = np.random.default_rng(seed)
    rows, cols = p.rows_max, p.cols_max
    density = 0.3
    while True:
        w_idx = np.where(nrng.random((rows, cols)) < density,
                         nrng.integers(1, 16, size=(rows, cols)), 0)
        codebook = nrng.integers(-32768, 32768, size=16)
        codebook[0] = 0
        enc = encode(w_idx, p.n_pe, codebook=codebook)
        if max(len(e) for e in enc.entries) <= p.entries_max:
            break
        density /= 2
    w_q = dense_weights(codebook, w_idx)
    await client.reset()
    program = load_program(enc)
    log(f"loading {rows} x {cols} matrix: {enc.stored} entries, {len(program)} i_cfg beats")
    await client.write("i_cfg", program)
    mismatches, words = 0, 0
    lo, hi = signed_range(p.act_width)
    for v in range(vectors):
        x = np.where(nrng.random(cols) < 0.5, nrng.integers(lo, hi + 1, size=cols), 0)
        await client.write("i_act", act_beats(p, x))
        y, last = parse_out(p, await client.read("o", rows))
        want = sparse_matvec(p, w_q, x)
        bad = int((y != want).sum()) + int((last != (np.arange(rows) == rows - 1)).sum())
        log(f"vector {v}: {rows} outputs, {bad} mismatches")
        if bad:
            log(f"  got  {y[:8].tolist()} last {last.tolist()}")
            log(f"  want {want[:8].tolist()}")
        mismatches += bad
        words += rows
    return await finish_workload(client, words, mismatches, log)
