"""Golden model of the sparse matrix-vector engine: ``y = W_q . x``, exact int64, then wrap.

``W_q`` is the quantized weight matrix, ``codebook[w_idx]`` (signed 16-bit fixed-point
integers; the engine never looks at the fraction width), ``x`` the ``act_width``-bit signed
activation vector. Every product is exact (16 + act_width bits); sums are exact in int64 and
then wrap to ``acc_width`` bits, which equals the hardware's wrapping accumulators because
addition modulo ``2**acc_width`` is associative. ``relu`` clamps the wrapped sum at zero.

Also: the cycle-free work counts the benchmark reports (useful MACs, stored entries read).
Only parameters are shared with the RTL, never arithmetic.
"""

import numpy as np

from npugen.rtl.sparse.params import WEIGHT_WIDTH, SparseParams

from .intmath import check_signed, wrap

__all__ = [
    "decoder_pairs", "dense_weights", "entries_read", "sparse_matvec", "useful_macs",
]


def dense_weights(codebook, w_idx):
    """Quantized weights ``codebook[w_idx]`` as int64 (``w_idx`` entries in 0..15)."""
    cb = check_signed("codebook", codebook, WEIGHT_WIDTH)
    return cb[np.asarray(w_idx, dtype=np.int64)]


def sparse_matvec(params: SparseParams, w_q, x):
    """``y = relu?(wrap(W_q @ x, acc_width))`` for one activation vector ``x``."""
    w_q = check_signed("w_q", w_q, WEIGHT_WIDTH)
    x = check_signed("x", x, params.act_width)
    rows, cols = w_q.shape
    if x.shape != (cols,):
        raise ValueError(f"x must have shape ({cols},), not {x.shape}")
    if not (1 <= rows <= params.rows_max and 1 <= cols <= params.cols_max):
        raise ValueError(f"shape {rows}x{cols} exceeds rows_max={params.rows_max}, "
                         f"cols_max={params.cols_max}")
    # |w * x| < 2**31 and cols <= 4096, so the int64 sum is exact.
    y = wrap((w_q * x[None, :]).sum(axis=1), params.acc_width)
    return np.maximum(y, 0) if params.relu else y


def useful_macs(w_idx, x):
    """Multiply-accumulates with a non-zero weight index and a non-zero activation."""
    return int(((np.asarray(w_idx) != 0) & (np.asarray(x)[None, :] != 0)).sum())


def entries_read(enc, x):
    """Count the stored entries (padding included) read: those of non-zero activations."""
    nz = np.flatnonzero(np.asarray(x))
    return int(sum(enc.ptr[p][j + 1] - enc.ptr[p][j] for p in range(enc.n_pe) for j in nz))


def decoder_pairs(columns, codebook, n_pe, pe, rows):
    """Golden model of one PE's RelIndexDecoder.

    ``columns`` is a list of ``(entries, act)``. Returns ``(pairs, error)``: the ``(local
    row, codebook[index], act)`` of every entry with a non-zero index, and whether an entry
    ran to a global row ``>= rows``; such an entry and the rest of its column are dropped.
    """
    pairs, error = [], False
    for entries, act in columns:
        local = -1
        for e in entries:
            local += (int(e) >> 4) + 1
            if local * n_pe + pe >= rows:
                error = True
                break
            if int(e) & 15:
                pairs.append((local, int(codebook[int(e) & 15]), int(act)))
    return pairs, error
