"""onnxruntime's QLinearAdd kernels: the exact FMA, each kernel model, and the machine's ORT.

The ORT test runs every one of the 65,536 int8 input pairs through a one-node QLinearAdd
model for random scales and zero points (seeded) and compares each output with the model
of the kernel this CPU selects. The last test is the evidence that the kernels disagree.
"""

from fractions import Fraction

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from npugen.sim.models.qladd import KERNELS, fma_f32, ort_add, ort_kernel

F32 = np.float32
A = np.repeat(np.arange(-128, 128), 256).astype(np.int8)
B = np.tile(np.arange(-128, 128), 256).astype(np.int8)


def _round_f32(q):
    """Return the float32 nearest the rational ``q`` (ties to even) among three neighbours."""
    lo = np.float32(float(q))  # within one float32 step of q
    cands = [np.nextafter(lo, F32(-np.inf)), lo, np.nextafter(lo, F32(np.inf))]
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - q),
                                     int(np.array(c).view(np.int32)) & 1))
    return best


def test_fma_rounds_once(seed):
    rng = np.random.default_rng(seed)
    n = 3000
    x = F32(rng.standard_normal(n) * 10.0 ** rng.integers(-6, 6, n))
    y = F32(rng.standard_normal(n) * 10.0 ** rng.integers(-6, 6, n))
    z = F32(rng.standard_normal(n) * 10.0 ** rng.integers(-12, 12, n))
    # near-cancellation and ties: z = -round(x * y) +- a little
    k = n // 3
    z[:k] = -(x[:k] * y[:k]) * F32(1.0 + rng.choice([0.0, 2.0 ** -23, -(2.0 ** -23)], k))
    got = fma_f32(x, y, z)
    for i in range(n):
        exact = Fraction(float(x[i])) * Fraction(float(y[i])) + Fraction(float(z[i]))
        assert got[i] == _round_f32(exact), (seed, i, x[i], y[i], z[i])


def test_fma_against_hand_cases():
    one, eps = F32(1.0), F32(2.0 ** -23)
    # (1 + eps) * (1 - eps) - 1 = -eps**2: exact in one rounding, 0 in two
    assert fma_f32(one + eps, one - eps, -one) == -(eps * eps)
    assert (one + eps) * (one - eps) - one == 0
    # 3 * float32(1/3) - 1 = 2**-25 exactly, which one rounding keeps
    third = F32(1.0) / F32(3.0)
    assert fma_f32(F32(3.0), third, -one) == F32(3 * Fraction(float(third)) - 1)


def _model(sa, za, sb, zb, sc, zc, n):
    init = [numpy_helper.from_array(np.array(v, dtype=d), name) for name, v, d in
            (("sa", sa, np.float32), ("za", za, np.int8), ("sb", sb, np.float32),
             ("zb", zb, np.int8), ("sc", sc, np.float32), ("zc", zc, np.int8))]
    node = helper.make_node("QLinearAdd", ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["c"],
                            domain="com.microsoft")
    io = [helper.make_tensor_value_info(name, TensorProto.INT8, [n]) for name in "abc"]
    graph = helper.make_graph([node], "qladd", io[:2], io[2:], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _layers(rng, count):
    for _ in range(count):
        sa, sb, sc = (F32(10 ** rng.uniform(-3, -1)) for _ in range(3))
        za, zb, zc = (int(rng.integers(-128, 128)) for _ in range(3))
        yield sa, za, sb, zb, sc, zc


def test_machine_onnxruntime_equals_its_kernel_model(seed):
    kernel = ort_kernel()
    assert kernel in KERNELS, "no model of onnxruntime's QLinearAdd kernel for this CPU"
    rng = np.random.default_rng(seed)
    layers = list(_layers(rng, 60))
    # the zero-point extremes and equal scales (exact ties) too
    layers += [(F32(0.02), -128, F32(0.02), 127, F32(0.04), 0),
               (F32(0.01), 127, F32(0.01), -128, F32(0.005), -128),
               (F32(0.5), 0, F32(0.25), 0, F32(1.0), 0)]
    for sa, za, sb, zb, sc, zc in layers:
        got = _model(sa, za, sb, zb, sc, zc, A.size).run(None, {"a": A, "b": B})[0]
        want = ort_add(kernel, A, B, sa, za, sb, zb, sc, zc)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (f"seed {seed}, kernel {kernel}, layer {(sa, za, sb, zb, sc, zc)}"
                               f": {bad.size} pairs differ, first (a, b) = "
                               f"{(int(A[bad[0]]), int(B[bad[0]]))}")


def test_the_kernels_disagree():
    """Evidence that QLinearAdd's int8 result depends on the CPU (fixed seed, 200 layers)."""
    rng = np.random.default_rng(2026)
    differ = sum(bool((ort_add("avx2", A, B, *layer) != ort_add("sse2", A, B, *layer)).any())
                 for layer in _layers(rng, 200))
    assert differ >= 10, differ


@pytest.mark.parametrize("bad, match", [({"kernel": "neon"}, "kernel must be one of"),
                                        ({"za": 128}, "za must be an int8 zero point")])
def test_bad_arguments(bad, match):
    args = {"kernel": "avx2", "a": A[:4], "b": B[:4], "sa": 0.1, "za": 0, "sb": 0.1, "zb": 0,
            "sc": 0.1, "zc": 0} | bad
    with pytest.raises(ValueError, match=match):
        ort_add(**args)


def test_kernel_from_cpu_flags(tmp_path, monkeypatch):
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n")
    assert ort_kernel(info) == "avx2"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx\n")
    assert ort_kernel(info) == "sse2"
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    assert ort_kernel(info) is None
