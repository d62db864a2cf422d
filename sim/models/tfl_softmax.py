"""Golden model of LiteRT's int8 ``SOFTMAX`` (its built-in kernel; XNNPACK takes no int8 one).

At set-up LiteRT fills a float32 table of 256 exponentials,
``table[255 - v] = exp(float32(float32(-s_in * beta) * v))`` for ``v`` in 0..255. For each row
(the last axis) with maximum ``m``, every element ``x`` looks up ``e(x) = table[255 - m + x]``
(``exp(-s_in * beta * (m - x))``, at most 1), then

- ``sum = e(x_0) + e(x_1) + ...`` in float32, in element order;
- ``inv = float32(1 / float32(sum * s_out))``;
- ``y = round(float32(e(x) * inv)) + zp_out``, rounded half away from zero, clamped to int8.

The input's zero point cancels (only differences to the maximum enter). The exponentials
are float64 ``exp`` rounded to float32 (correctly rounded); glibc's ``expf``, which LiteRT
calls, differs from that in a few table entries per thousand by one unit in the last place,
and on the outputs measured no such difference changed a word.

Measured against LiteRT 2.3 on x86-64, its default resolver and the built-in kernels
without delegates (``tests/compiler/test_litert_rounding.py::test_softmax_follows_litert``);
its reference kernels (``BUILTIN_REF``) run a fixed-point algorithm of their own (1 word of
312,570 differed), and LiteRT built for aarch64 with clang runs yet another (a uint16
table): this is the x86-64 default path only.
"""

import numpy as np

__all__ = ["softmax_int8", "softmax_table"]

_F32 = np.float32


def softmax_table(s_in, beta):
    """Return the 256 float32 exponentials of an input scale ``s_in`` and ``beta``."""
    scale = _F32(-_F32(s_in) * _F32(beta))
    v = np.arange(256, dtype=_F32)
    table = np.empty(256, dtype=_F32)
    with np.errstate(over="ignore", invalid="ignore"):  # (float32 overflow: as the kernel)
        table[255 - np.arange(256)] = np.exp((scale * v).astype(np.float64)).astype(_F32)
    return table


def softmax_int8(q, s_in, beta, s_out, zp_out):
    """int8 softmax of int8 ``q`` along its last axis; returns int64 values in [-128, 127]."""
    q = np.asarray(q, dtype=np.int64)
    if q.size and (q.min() < -128 or q.max() > 127):
        raise ValueError("q must hold int8 values")
    table = softmax_table(s_in, beta)
    e = table[255 - q.max(axis=-1, keepdims=True) + q]  # float32, <= 1
    total = np.zeros(e.shape[:-1], dtype=_F32)
    for j in range(e.shape[-1]):  # in element order, as the kernel's loop
        total = (total + e[..., j]).astype(_F32)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        inv = (_F32(1) / (total * _F32(s_out)).astype(_F32)).astype(_F32)
        p = (e * inv[..., None]).astype(_F32).astype(np.float64)
    rounded = np.sign(p) * np.floor(np.abs(p) + 0.5)  # std::round: half away from zero
    return np.clip(rounded.astype(np.int64) + int(zp_out), -128, 127)
