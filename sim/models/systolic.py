"""Golden model of the systolic MAC array: exact int64 products and sums, explicit wrap.

Semantics (both dataflows): every product ``a * w`` is exact; every sum wraps modulo
``2**acc_width`` in two's complement. Wrapping after each addition and wrapping once at the
end give the same result (addition modulo 2**n is a ring homomorphism), so the model wraps
once at the end; int64 cannot overflow on the way because |a*w| <= 2**30 and the checks
below bound K.

The model shares only :class:`~npugen.rtl.systolic.SystolicParams` with the RTL, never
arithmetic code.
"""

import numpy as np

from npugen.rtl.systolic.params import Dataflow, SystolicParams

from .intmath import check_signed, wrap

__all__ = ["gemm", "os_tile", "ws_tile"]

# |a*w| <= 2**30 for 16-bit operands; 2**32 terms keep the int64 sum exact.
_K_MAX = 1 << 32


def _check_params(params, dataflow=None):
    if not isinstance(params, SystolicParams):
        raise TypeError(f"params must be SystolicParams, not {type(params).__name__}")
    if dataflow is not None and params.dataflow is not dataflow:
        raise ValueError(f"params.dataflow must be {dataflow.value}, not {params.dataflow.value}")


def gemm(params, a, w, psum=None):
    """``wrap(psum + a @ w)`` for any shapes ``(M, K) @ (K, N)``, no tiling.

    Parameters
    ----------
    params : SystolicParams
        Supplies ``a_width``, ``w_width`` and ``acc_width``.
    a : array_like, (M, K)
        Activations, ``a_width``-bit signed.
    w : array_like, (K, N)
        Weights, ``w_width``-bit signed.
    psum : array_like, (M, N), optional
        Partial sums, ``acc_width``-bit signed (zero when absent).

    Returns
    -------
    numpy.ndarray of int64, (M, N), every value in the ``acc_width``-bit signed range.
    """
    _check_params(params)
    a = check_signed("a", a, params.a_width)
    w = check_signed("w", w, params.w_width)
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[0]:
        raise ValueError(f"shapes {a.shape} and {w.shape} do not form a matrix product")
    if a.shape[1] >= _K_MAX:
        raise ValueError(f"K must be below {_K_MAX} for exact int64 sums")
    acc = np.zeros((a.shape[0], w.shape[1]), dtype=np.int64)
    if psum is not None:
        psum = check_signed("psum", psum, params.acc_width)
        if psum.shape != acc.shape:
            raise ValueError(f"psum must have shape {acc.shape}, not {psum.shape}")
        acc += psum
    # Integer matmul in numpy is exact (no BLAS); operands are int64.
    acc += a @ w
    return wrap(acc, params.acc_width)


def ws_tile(params, a, w, psum=None):
    """One weight-stationary pass: M activation vectors through one ``rows x cols`` tile.

    ``a`` is ``(M, rows)``, ``w`` is ``(rows, cols)``, ``psum`` is ``(M, cols)`` or None.
    Output row m is what the array emits for activation vector m: ``a[m] @ w + psum[m]``.
    """
    _check_params(params, Dataflow.WS)
    a = np.asarray(a)
    w = np.asarray(w)
    if a.ndim != 2 or a.shape[1] != params.rows:
        raise ValueError(f"a must have shape (M, {params.rows}), not {a.shape}")
    if w.shape != (params.rows, params.cols):
        raise ValueError(f"w must have shape ({params.rows}, {params.cols}), not {w.shape}")
    return gemm(params, a, w, psum)


def os_tile(params, a, b):
    """One output-stationary tile: ``(rows, K) @ (K, cols)`` accumulated in the PEs.

    The array emits the result as ``rows`` vectors of ``cols`` lanes, row 0 first.
    """
    _check_params(params, Dataflow.OS)
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 2 or a.shape[0] != params.rows or a.shape[1] < 1:
        raise ValueError(f"a must have shape ({params.rows}, K >= 1), not {a.shape}")
    if b.ndim != 2 or b.shape != (a.shape[1], params.cols):
        raise ValueError(f"b must have shape ({a.shape[1]}, {params.cols}), not {b.shape}")
    return gemm(params, a, b)
