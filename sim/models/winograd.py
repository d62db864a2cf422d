"""Golden models for 3x3 convolution: direct (the reference) and Winograd F(2x2, 3x3).

Layouts: feature maps are ``(H, W, C)``, filters ``(K, C, 3, 3)``, outputs ``(H', W', K)``.
Convolution is cross-correlation as in CNN frameworks, stride 1:
``y[i, j, k] = sum_{c, u, v} x[i+u, j+v, c] * w[k, c, u, v]`` over the (zero-padded for
``same``) input. Arithmetic is exact in int64; outputs wrap to ``acc_width`` bits.

The Winograd model uses the scaled filter transform G' = 2G, so every stage is an exact
integer: ``U' = G' g G'^T = 4U``, ``V = B^T d B``, ``M = sum_c U' * V``,
``Y = (A^T M A) >> 2``. Every stage asserts the bound derived in
:mod:`npugen.rtl.winograd.params`. Only parameters and bounds are shared with the RTL.
"""

import numpy as np

from npugen.rtl.winograd.params import WinogradParams

from .intmath import check_signed, wrap

__all__ = [
    "AT", "BT", "G2", "conv2d_direct", "conv2d_winograd", "filter_transform", "input_transform",
    "output_shape", "output_transform", "tile_origins",
]

BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.int64)
#: G' = 2G: the halves of G become integers.
G2 = np.array([[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]], dtype=np.int64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.int64)


def _bounded(name, x, bound):
    if np.abs(x).max(initial=0) > bound:
        raise AssertionError(f"{name} exceeds its derived bound {bound}")
    return x


def input_transform(params, d):
    """``V = B^T d B`` for a 4x4 tile (or a stack of them, ``(..., 4, 4)``)."""
    d = check_signed("d", d, params.data_width)
    return _bounded("V", BT @ d @ BT.T, params.v_bound)


def filter_transform(params, g):
    """``U' = G' g G'^T`` (= 4U) for a 3x3 filter (or a stack, ``(..., 3, 3)``)."""
    g = check_signed("g", g, params.data_width)
    return _bounded("U'", G2 @ g @ G2.T, params.u_bound)


def output_transform(m):
    """``(A^T M A) >> 2``: exact, because A^T M A = 4Y when M comes from U' = 4U."""
    y4 = AT @ np.asarray(m, dtype=np.int64) @ AT.T
    if np.any(y4 & 3):
        raise AssertionError("A^T M A is not a multiple of 4: U' was not 4U")
    return y4 >> 2


def output_shape(h, w, padding):
    """Output (H', W') of a 3x3 stride-1 convolution."""
    if padding == "same":
        return h, w
    if padding == "valid":
        return h - 2, w - 2
    raise ValueError(f"padding must be 'valid' or 'same', not {padding!r}")


def _pad(params, x, padding):
    x = check_signed("x", x, params.data_width)
    if x.ndim != 3:
        raise ValueError(f"x must be (H, W, C), not shape {x.shape}")
    if padding == "same":
        x = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    elif padding != "valid":
        raise ValueError(f"padding must be 'valid' or 'same', not {padding!r}")
    if x.shape[0] < 3 or x.shape[1] < 3:
        raise ValueError(f"the (padded) input must be at least 3x3, not {x.shape[:2]}")
    return x


def conv2d_direct(params, x, w, padding="valid"):
    """Direct 3x3 convolution: ``(H, W, C)`` x ``(K, C, 3, 3)`` -> ``(H', W', K)``, wrapped."""
    w = check_signed("w", w, params.data_width)
    xp = _pad(params, x, padding)
    if w.ndim != 4 or w.shape[1:] != (xp.shape[2], 3, 3):
        raise ValueError(f"w must be (K, {xp.shape[2]}, 3, 3), not {w.shape}")
    ho, wo = xp.shape[0] - 2, xp.shape[1] - 2
    y = np.zeros((ho, wo, w.shape[0]), dtype=np.int64)
    for u in range(3):
        for v in range(3):
            # (ho, wo, C) @ (C, K): exact int64 matmul.
            y += xp[u:u + ho, v:v + wo, :] @ w[:, :, u, v].T
    return wrap(y, params.acc_width)


def tile_origins(ho, wo):
    """Top-left corners (in output coordinates) of the 2x2 output tiles, row-major.

    Odd sizes: the last tile row/column is cut; the input beyond the edge reads as zero.
    """
    return [(i, j) for i in range(0, ho, 2) for j in range(0, wo, 2)]


def conv2d_winograd(params, x, w, padding="valid"):
    """Winograd F(2x2, 3x3) convolution, bit-exact to :func:`conv2d_direct`."""
    if not isinstance(params, WinogradParams):
        raise TypeError(f"params must be WinogradParams, not {type(params).__name__}")
    w = check_signed("w", w, params.data_width)
    xp = _pad(params, x, padding)
    c = xp.shape[2]
    if c > params.c_max or w.shape[0] > params.k_max:
        raise ValueError(f"C={c}, K={w.shape[0]} exceed c_max={params.c_max}, "
                         f"k_max={params.k_max}")
    ho, wo = xp.shape[0] - 2, xp.shape[1] - 2
    # Zero-extend so every 4x4 tile exists (odd output sizes).
    xe = np.zeros((ho + (ho & 1) + 2, wo + (wo & 1) + 2, c), dtype=np.int64)
    xe[:xp.shape[0], :xp.shape[1]] = xp
    u = filter_transform(params, w)  # (K, C, 4, 4)
    y = np.zeros((ho + (ho & 1), wo + (wo & 1), w.shape[0]), dtype=np.int64)
    m_bound = c * params.product_bound
    for i, j in tile_origins(ho, wo):
        d = np.moveaxis(xe[i:i + 4, j:j + 4, :], 2, 0)  # (C, 4, 4)
        v = input_transform(params, d)
        prod = _bounded("U'V", u * v[None], params.product_bound)  # (K, C, 4, 4)
        m = _bounded("M", prod.sum(axis=1), m_bound)  # (K, 4, 4)
        y[i:i + 2, j:j + 2, :] = np.moveaxis(output_transform(m), 0, 2)
    return wrap(y[:ho, :wo], params.acc_width)
