"""Golden models of onnxruntime's int8 ``QLinearAdd`` (com.microsoft), kernel by kernel.

``QLinearAdd`` computes ``c = saturate(round((sa * (a - za) + sb * (b - zb)) / sc) + zc)``,
but onnxruntime's CPU provider (MLAS, ``MlasQLinearAdd<int8_t>``) evaluates it in float32
in an order that depends on the CPU, and the orders round differently:

``avx2``
    x86-64 with AVX2 and FMA3 (``MlasQLinearAddS8KernelAvx2``): with ``rac = sa / sc``,
    ``rbc = sb / sc`` (float32 divisions) and
    ``fixed = zc - fma(rac, za, rbc * zb)`` (the compiler contracts ``rac * za + rbc * zb``
    into one fused multiply-add), each element is ``v = fma(a, rac, fma(b, rbc, fixed))``,
    converted to int32 rounding half to even (``cvtps2dq``) and saturated to int8 (two
    saturating packs; a ``v`` beyond the int32 range converts to ``INT32_MIN`` and gives -128).
``sse2``
    x86-64 without AVX2 (the SSE2 kernel of ``qladd.cpp``): no fused operations:
    ``fixed = zc - (rac * za + rbc * zb)`` and ``v = (fixed + a * rac) + b * rbc``, every
    operation rounded to float32; then as ``avx2``.

On this project's reference machine (Linux x86-64, AVX2 + FMA3, onnxruntime 1.32.0's PyPI
wheel, built with GCC, whose contraction of the constant term the ``avx2`` model follows)
:func:`ort_add` with the ``avx2`` kernel equals onnxruntime on every one of the 65,536 input
pairs of every layer tested (tests/models/test_qladd.py). The ``sse2`` model, transcribed
from MLAS's source and not yet checked against onnxruntime on a CPU without AVX2, differs
from it in about one layer in eight (one to three of the 65,536 pairs), and so does rounding
the exact real value: the same model gives different int8 outputs on different CPUs, and an
NPU can be bit-exact with one kernel, not with "onnxruntime". AArch64 builds use a third,
integer kernel (``MlasCalcQLinearAddParameters``, NEON; a float path for scale ratios
outside [2**-14, 256)) that is not modelled here.

float32 arithmetic is numpy's (IEEE round half to even); the fused multiply-add is exact:
the product of two float32 values is exact in float64, the sum is formed with TwoSum and
rounded to odd in float64, and a round-to-odd value with 53 >= 24 + 2 bits rounds to float32
exactly as the infinitely precise sum would (Boldo and Melquiond, "When double rounding is
odd", 2005).
"""

import platform
from pathlib import Path

import numpy as np

__all__ = ["KERNELS", "avx2_add", "avx2_constants", "f32_bits", "fma_f32", "ort_add",
           "ort_kernel"]

#: The kernels :func:`ort_add` models (see the module text).
KERNELS = ("avx2", "sse2")

_F32 = np.float32


def f32_bits(value):
    """Return the bit pattern of ``value`` as float32 (an int), as ``ADD`` carries its constants."""
    return int(np.float32(value).view(np.uint32))


def fma_f32(x, y, z):
    """float32 ``x * y + z`` with one rounding (half to even), elementwise; finite inputs."""
    x, y, z = (np.asarray(v, dtype=np.float32).astype(np.float64) for v in (x, y, z))
    p = x * y  # exact: 24-bit by 24-bit significands
    s = p + z
    t = s - p
    err = (p - (s - t)) + (z - t)  # TwoSum: s + err == p + z exactly
    even = (s.view(np.int64) & 1) == 0
    s = np.where((err != 0) & even, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
    return s.astype(np.float32)


def _to_int8(v):
    """``cvtps2dq`` (half to even; out of int32 range -> INT32_MIN), then saturating packs."""
    v = np.asarray(v, dtype=np.float32).astype(np.float64)
    r = np.rint(v)
    r = np.where((r >= 2.0 ** 31) | (r < -(2.0 ** 31)), -(2.0 ** 31), r)
    return np.clip(r, -128, 127).astype(np.int8)


def avx2_constants(sa, za, sb, zb, sc, zc):
    """Return the ``avx2`` kernel's float32 layer constants ``(rac, rbc, fixed)``.

    ``rac = sa / sc``, ``rbc = sb / sc``, ``fixed = zc - fma(rac, za, rbc * zb)``; each
    element is then ``fma(a, rac, fma(b, rbc, fixed))``.
    """
    rac = _F32(sa) / _F32(sc)
    rbc = _F32(sb) / _F32(sc)
    fixed = _F32(int(zc)) - fma_f32(rac, _F32(int(za)), rbc * _F32(int(zb)))
    return rac, rbc, _F32(fixed)


def avx2_add(a, b, rac, rbc, fixed):
    """Add int8 arrays ``a``, ``b`` as the ``avx2`` kernel does, given its layer constants."""
    a = np.asarray(a, dtype=np.int8).astype(np.float32)
    b = np.asarray(b, dtype=np.int8).astype(np.float32)
    return _to_int8(fma_f32(a, rac, fma_f32(b, rbc, fixed)))


def ort_add(kernel, a, b, sa, za, sb, zb, sc, zc):
    """``QLinearAdd`` of int8 arrays ``a``, ``b`` (same shape) as onnxruntime's ``kernel``.

    ``sa``, ``sb``, ``sc``: positive float32 scales; ``za``, ``zb``, ``zc``: int8 zero
    points. Returns int8 values of ``a``'s shape.
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, not {kernel!r}")
    for name, z in (("za", za), ("zb", zb), ("zc", zc)):
        if not -128 <= int(z) <= 127:
            raise ValueError(f"{name} must be an int8 zero point (-128..127), not {z}")
    a = np.asarray(a, dtype=np.int8).astype(np.float32)
    b = np.asarray(b, dtype=np.int8).astype(np.float32)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have one shape, not {a.shape} and {b.shape}")
    if kernel == "avx2":
        return avx2_add(a, b, *avx2_constants(sa, za, sb, zb, sc, zc))
    rac = _F32(sa) / _F32(sc)
    rbc = _F32(sb) / _F32(sc)
    za, zb, zc = _F32(int(za)), _F32(int(zb)), _F32(int(zc))
    fixed = zc - (rac * za + rbc * zb)
    return _to_int8((fixed + a * rac) + b * rbc)


def ort_kernel(cpuinfo="/proc/cpuinfo"):
    """Return the kernel this machine's onnxruntime runs (from the CPU flags), or None.

    MLAS picks the AVX2 kernel when the CPU (and the OS) support AVX2; its AVX2 kernels
    also use FMA3.
    """
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return "avx2" if {"avx2", "fma"} <= flags else "sse2"
