"""Which rounding LiteRT (TFLite) really uses on this machine, measured on int8 FULLY_CONNECTED.

LiteRT's default CPU path on x86-64 is XNNPACK. Its int8 layers requantize in float32:
``float32(acc) * float32(float32(s_in * s_w) / s_out)``, rounded half to even - the ``ort``
mode's arithmetic, not TFLite's integer single rounding (the ``tflite`` mode). The test
picks accumulators on which the ``ort`` and ``tflite`` golden models disagree (and a few
where they agree), writes them as the biases of a one-input FULLY_CONNECTED layer, runs it
in LiteRT and compares every output with both models: all must equal ``ort``, and some must
differ from ``tflite`` (else the test could not tell the modes apart). A second test
runs random weights and inputs (zero points included) through the same comparison. A
third checks XNNPACK's int8 ADD formula (:mod:`npugen.sim.models.xnn_add`) on every input
pair of random layers (and its SUB, the compiler's constants for ADD mode 1), another
XNNPACK's int8 MEAN (:mod:`npugen.sim.models.xnn_mean`) on the sums where plausible formulas
disagree, a fourth LiteRT's reference ADD kernel against TFLite's integer add
(:mod:`npugen.sim.models.tfl_add`, double rounding), on layers where the two roundings
differ too.
"""

import numpy as np
import pytest

from npugen.sim.compiler.tflite_write import Graph
from npugen.sim.models.qladd import ort_add
from npugen.sim.models.requant import (
    float32_scale,
    quantize_multiplier,
    requantize_ort,
    requantize_tflite,
)
from npugen.sim.models.tfl_add import tflite_add, tflite_add_int, tflite_add_params
from npugen.sim.models.tfl_softmax import softmax_int8, softmax_table
from npugen.sim.models.xnn_add import xnnpack_add, xnnpack_add_int
from npugen.sim.models.xnn_mean import xnnpack_mean

pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is in the dev install")

from .tflite_models import OpResolverType, fc_model, run, tfl  # noqa: E402 (after the import check)


def _scales(s_in, s_w, s_out):
    """``ort`` (mantissa, exponent) and ``tflite`` (q, s) per output channel."""
    ort = [float32_scale(np.float32(np.float32(s_in) * w) / np.float32(s_out)) for w in s_w]
    tfl = [quantize_multiplier(float(s_in) * float(w) / float(s_out)) for w in s_w]
    return ort, tfl


def _models(acc, ort, tfl, zp_out):
    """Both golden models on ``acc`` (rows x channels)."""
    want_ort = np.stack([requantize_ort(acc[:, c], m, e, zp_out, -128, 127)
                         for c, (m, e) in enumerate(ort)], axis=1)
    want_tfl = np.stack([requantize_tflite(acc[:, c], q, s, zp_out, -128, 127)
                         for c, (q, s) in enumerate(tfl)], axis=1)
    return want_ort, want_tfl


def _random_scales(rng, n, per_channel, span):
    s_in = np.float32(rng.uniform(1e-3, 0.1))
    s_w = rng.uniform(1e-3, 0.05, n if per_channel else 1).astype(np.float32)
    # Outputs near +-100 for accumulators near +-span.
    s_out = np.float32(s_in * s_w.max() * span / 100 * rng.uniform(0.7, 1.4))
    return s_in, np.broadcast_to(s_w, n).copy(), s_out


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
def test_xnnpack_requantizes_like_ort(seed, per_channel):
    rng = np.random.default_rng([seed, per_channel])
    n, told_apart, checked = 48, 0, 0
    for _ in range(12):
        span = 2 ** int(rng.integers(10, 30))
        s_in, s_w, s_out = _random_scales(rng, n, per_channel, span)
        zp_in, zp_out = int(rng.integers(-128, 128)), int(rng.integers(-100, 101))
        ort, tfl = _scales(s_in, s_w, s_out)
        # Per channel: an accumulator next to a rounding tie (output t + 1/2) on which the
        # two models disagree, if there is one.
        bias = np.empty(n, dtype=np.int64)
        for c in range(n):
            real = float(s_in) * float(s_w[c]) / float(s_out)
            ties = np.round((np.arange(-100, 100) + 0.5) / real).astype(np.int64)
            near = (ties[:, None] + np.arange(-3, 4)).ravel()
            near = near[np.abs(near) < 1 << 31]  # an int32 bias
            a, b = _models(near[:, None], [ort[c]], [tfl[c]], zp_out)
            differ = np.flatnonzero(a[:, 0] != b[:, 0])
            bias[c] = near[differ[rng.integers(len(differ))]] if len(differ) else near[0]
        model = fc_model(np.ones((n, 1)), bias, s_in, zp_in, s_w if per_channel else s_w[0],
                         s_out, zp_out)
        # x = zp_in: the accumulator is the bias alone.
        got = run(model, np.full((1, 1), zp_in))
        want_ort, want_tfl = _models(bias[None, :], ort, tfl, zp_out)
        mismatch = np.flatnonzero(got[0] != want_ort[0])
        assert len(mismatch) == 0, (f"LiteRT/XNNPACK differs from the ort model at accumulators "
                                    f"{bias[mismatch].tolist()}: got {got[0, mismatch]}, "
                                    f"ort model {want_ort[0, mismatch]}")
        told_apart += int((got != want_tfl).sum())
        checked += n
    print(f"seed {seed}: {checked} outputs equal the ort model; {told_apart} of them differ "
          f"from the tflite model")
    # The accumulators really separate the two modes (per tensor a layer's 48 channels share
    # one scale, so they separate all together or not at all: at least one layer must).
    assert told_apart > (checked // 10 if per_channel else 0)


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
def test_xnnpack_random_layers(seed, per_channel):
    rng = np.random.default_rng([seed, per_channel, 1])
    for _ in range(4):
        k, n = int(rng.integers(1, 300)), int(rng.integers(1, 40))
        w = rng.integers(-127, 128, (n, k))
        bias = rng.integers(-(1 << 16), 1 << 16, n)
        span = int(np.abs(w).sum(axis=1).max()) * 128
        s_in, s_w, s_out = _random_scales(rng, n, per_channel, span // 4 + 1)
        zp_in, zp_out = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
        x = rng.integers(-128, 128, (64, k))
        model = fc_model(w, bias, s_in, zp_in, s_w if per_channel else s_w[0], s_out, zp_out)
        got = run(model, x)
        acc = (x - zp_in) @ w.T + bias
        want, _ = _models(acc, *_scales(s_in, s_w, s_out), zp_out)
        assert np.array_equal(got, want), f"{int((got != want).sum())} of {got.size} differ"


def _add_model(sa, za, sb, zb, sc, zc, n, op="ADD"):
    g = Graph()
    a = g.tensor([1, n], np.int8, sa, za)
    b = g.tensor([1, n], np.int8, sb, zb)
    c = g.tensor([1, n], np.int8, sc, zc)
    g.op(op, [a, b], [c], g.tfl.AddOptionsT() if op == "ADD" else g.tfl.SubOptionsT())
    return g.model([a, b], [c])


def _run2(model, a, b, resolver=OpResolverType.AUTO):
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

    interp = Interpreter(model_content=model, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    ia, ib = interp.get_input_details()
    interp.set_tensor(ia["index"], a[None])
    interp.set_tensor(ib["index"], b[None])
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])[0].astype(np.int64)


def test_xnnpack_add_exhaustive(seed):
    """Every int8 pair of random layers: LiteRT's ADD equals :func:`xnnpack_add`."""
    rng = np.random.default_rng([seed, 2])
    a, b = (v.ravel().astype(np.int8) for v in np.meshgrid(np.arange(-128, 128),
                                                           np.arange(-128, 128)))
    differ_from_ort = 0
    for _ in range(4):
        sa, sb, sc = (np.float32(v) for v in rng.uniform(0.005, 0.1, 3))
        za, zb, zc = (int(v) for v in rng.integers(-128, 128, 3))
        got = _run2(_add_model(sa, za, sb, zb, sc, zc, a.size), a, b)
        want = xnnpack_add(a, b, sa, za, sb, zb, sc, zc)
        bad = np.flatnonzero(got != want)
        assert len(bad) == 0, (f"scales {sa, sb, sc}, zero points {za, zb, zc}: pairs "
                               f"{list(zip(a[bad][:5], b[bad][:5], strict=True))} differ")
        differ_from_ort += int((ort_add("avx2", a, b, sa, za, sb, zb, sc, zc) != got).sum())
    print(f"seed {seed}: 4 x 65,536 pairs equal; onnxruntime's QLinearAdd (avx2) formula "
          f"differs on {differ_from_ort}")


def test_xnnpack_sub_exhaustive(seed):
    """Every int8 pair of random layers: LiteRT's SUB equals the compiler's ADD mode 1.

    The constants are :func:`~npugen.sim.compiler.lower.add_constants`' for a subtraction
    (b's multiplier negated), evaluated by :func:`xnnpack_add_int`, the NPU's mode-1 formula.
    """
    from npugen.sim.compiler.ir import TensorQuant  # noqa: PLC0415
    from npugen.sim.compiler.lower import add_constants  # noqa: PLC0415

    rng = np.random.default_rng([seed, 3])
    a, b = (v.ravel().astype(np.int8) for v in np.meshgrid(np.arange(-128, 128),
                                                           np.arange(-128, 128)))
    for _ in range(4):
        sa, sb, sc = (np.float32(v) for v in rng.uniform(0.005, 0.1, 3))
        za, zb, zc = (int(v) for v in rng.integers(-128, 128, 3))
        got = _run2(_add_model(sa, za, sb, zb, sc, zc, a.size, "SUB"), a, b)
        f = add_constants("xnnpack", TensorQuant(sa, za), TensorQuant(sb, zb),
                          TensorQuant(sc, zc), subtract=True)
        ma, mb, bias = (int(np.uint32(f[k]).view(np.int32)) for k in ("rac", "rbc", "fixed"))
        assert f["mode"] == 1 and mb < 0
        want = xnnpack_add_int(a, b, ma, mb, bias, f["shift"], f["zp_out"])
        bad = np.flatnonzero(got != want)
        assert len(bad) == 0, (f"scales {sa, sb, sc}, zero points {za, zb, zc}: pairs "
                               f"{list(zip(a[bad][:5], b[bad][:5], strict=True))} differ")


def _mean_model(n, s_in, zp_in, s_out, zp_out, c):
    g = Graph()
    x = g.tensor([1, 1, n, c], np.int8, s_in, zp_in)
    axes = g.tensor([2], np.int32, data=[1, 2])
    y = g.tensor([1, 1, 1, c], np.int8, s_out, zp_out)
    g.op("MEAN", [x, axes], [y], g.tfl.ReducerOptionsT(keepDims=True))
    return g.model([x], [y])


def test_xnnpack_mean_formula(seed):
    """LiteRT's int8 MEAN equals :func:`xnnpack_mean` where the plausible formulas disagree.

    Random layers (half with a scale ratio a float32 step or a few from ``k / 16``, where
    sums land on or next to ties) are scanned for the sums on which :func:`xnnpack_mean`
    and three alternatives differ (onnxruntime's order: the zero point after rounding; the
    zero points subtracted in integers first; the scale as ``ratio / n``); one input per
    such sum goes through LiteRT. Every output must equal :func:`xnnpack_mean`, and each
    alternative must miss some (else the test could not tell them apart).
    """
    rng = np.random.default_rng([seed, 5])
    f32 = np.float32
    misses, layers = {"zp after": 0, "ints first": 0, "ratio / n": 0}, 0
    for _ in range(4000):
        n = int(rng.integers(2, 40))
        s_out = f32(rng.uniform(0.005, 0.1))
        s_in = f32(s_out * f32(int(rng.integers(1, 64)) / 16) * f32(1 + int(
            rng.integers(-4, 5)) * 2.0 ** -23)) if rng.integers(2) else f32(rng.uniform(0.01,
                                                                                        0.1))
        zi, zo = (int(v) for v in rng.integers(-128, 128, 2))
        t = np.arange(-128 * n, 127 * n + 1)
        want = xnnpack_mean(t, s_in, zi, s_out, zo, n)
        s = f32(f32(s_in / s_out) * f32(f32(1) / f32(n)))
        d = (t - zi * n).astype(f32)
        alt = {"zp after": np.rint((d * s).astype(f32)) + zo,
               "ints first": np.rint((d * s).astype(f32) + f32(zo)),
               "ratio / n": np.rint((t.astype(f32) * f32(f32(s_in / s_out) / f32(n))).astype(
                   f32) + f32(f32(zo) - f32(f32(zi * n) * f32(f32(s_in / s_out) / f32(n)))))}
        alt = {k: np.clip(v, -128, 127) for k, v in alt.items()}
        differ = np.flatnonzero(np.any([v != want for v in alt.values()], axis=0))
        if len(differ) == 0:
            continue
        sums = t[differ][:16]
        x = np.zeros((1, n, len(sums)), dtype=np.int64)  # inputs summing to each sum
        for j, total in enumerate(sums):
            x[0, :, j] = total // n
            x[0, : total - n * (total // n), j] += 1
        got = run(_mean_model(n, s_in, zi, s_out, zo, len(sums)), x[None].astype(np.int8))
        got = got.reshape(-1)
        assert np.array_equal(got, want[differ][:16]), (n, s_in, zi, s_out, zo)
        for k, v in alt.items():
            misses[k] += int((v[differ][:16] != got).sum())
        layers += 1
        if layers == 40:
            break
    assert layers == 40 and all(misses.values()), (layers, misses)
    print(f"seed {seed}: 40 layers with disagreeing sums, LiteRT equal to xnnpack_mean on "
          f"all; the alternatives miss {misses}")


def test_reference_add_is_double_rounding(seed):
    """LiteRT's reference ADD kernel equals :func:`tflite_add` (``gemmlowp``) on every pair.

    Random layers, then layers found (by the golden models alone) on which double and single
    rounding differ for some pair: there LiteRT must give the double rounding's value.
    """
    rng = np.random.default_rng([seed, 4])
    a, b = (v.ravel().astype(np.int8) for v in np.meshgrid(np.arange(-128, 128),
                                                           np.arange(-128, 128)))
    layers, separating = [], 0
    for _ in range(3):
        sa, sb, sc = (np.float32(v) for v in rng.uniform(0.005, 0.1, 3))
        layers.append((sa, sb * np.float32(rng.choice([1.0, 1e-3])), sc))
    for _ in range(3000):  # about one random layer in fifty separates the roundings
        sa, sb, sc = (np.float32(v) for v in rng.uniform(0.005, 0.1, 3))
        za, zb, zc = (int(v) for v in rng.integers(-128, 128, 3))
        params = tflite_add_params(sa, sb, sc)
        double, single = (tflite_add_int(a, b, za, zb, *params, zc, r)
                          for r in ("gemmlowp", "tflite"))
        if (double != single).any():
            layers.append((sa, sb, sc, za, zb, zc))
            separating += 1
            if separating == 3:
                break
    assert separating == 3, "too few layers tell the roundings apart"
    told_apart = 0
    for layer in layers:
        sa, sb, sc = layer[:3]
        za, zb, zc = layer[3:] if len(layer) == 6 else \
            (int(v) for v in rng.integers(-128, 128, 3))
        got = _run2(_add_model(sa, za, sb, zb, sc, zc, a.size), a, b,
                    OpResolverType.BUILTIN_REF)
        want = tflite_add(a, b, sa, za, sb, zb, sc, zc, "gemmlowp")
        bad = np.flatnonzero(got != want)
        assert len(bad) == 0, (f"scales {sa, sb, sc}, zero points {za, zb, zc}: pairs "
                               f"{list(zip(a[bad][:5], b[bad][:5], strict=True))} differ")
        told_apart += int((tflite_add(a, b, sa, za, sb, zb, sc, zc, "tflite") != got).sum())
    print(f"seed {seed}: {len(layers)} x 65,536 pairs equal the gemmlowp form; the single "
          f"rounding differs on {told_apart}")


def _softmax_model(n, s_in, zp_in, beta):
    """int8 ``(1, n)`` -> ``SOFTMAX(beta)`` -> int8 at LiteRT's required (1/256, -128)."""
    g = Graph()
    x = g.tensor([1, n], np.int8, s_in, zp_in)
    y = g.tensor([1, n], np.int8, 1 / 256, -128)
    o = tfl.SoftmaxOptionsT()
    o.beta = beta
    g.op("SOFTMAX", [x], [y], o)
    return g.model([x], [y])


def test_softmax_follows_litert(seed):
    """LiteRT's int8 SOFTMAX is :func:`softmax_int8`, on its default and built-in paths.

    Per run 24 layers: 1..300 elements, input scales 0.001..2, beta 1 or random, a quarter
    of the rows all equal, 30 rows each. (The reference kernels, ``BUILTIN_REF``, compute
    it otherwise: 1 of 8,790 words differed on one layer of one run.)
    """
    rng = np.random.default_rng([seed, 71])
    for n_layer in range(24):
        n = int(rng.integers(1, 300)) if n_layer % 3 else int(rng.integers(1, 6))
        s_in = float(np.float32(rng.uniform(0.001, 2.0)))
        beta = float(np.float32(1.0 if n_layer % 2 else rng.uniform(0.1, 3.0)))
        model = _softmax_model(n, s_in, int(rng.integers(-128, 128)), beta)
        x = rng.integers(-128, 128, (30, n))
        x[::4] = x[::4, :1]  # all equal
        want = softmax_int8(x, s_in, beta, 1 / 256, -128)
        for resolver in (OpResolverType.AUTO, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES):
            got = run(model, x, resolver)
            assert np.array_equal(got, want), (
                f"layer {n_layer} (n {n}, s_in {s_in}, beta {beta}), {resolver}: "
                f"{int((got != want).sum())} of {want.size} differ")


def _softmax_alternative(q, s_in, kind):
    """Return a plausible other int8 softmax (output 1/256, -128) of ``q``.

    The test shows LiteRT is not it.

    ``pairwise``: numpy's pairwise float32 sum; ``f64``: float64 arithmetic after the
    table; ``even``: probabilities rounded half to even.
    """
    e = softmax_table(s_in, 1.0)[255 - q.max(-1, keepdims=True) + q]
    if kind == "pairwise":
        total = e.sum(-1, dtype=np.float32)
    else:
        total = np.zeros(e.shape[:-1], np.float32)
        for j in range(e.shape[-1]):
            total = (total + e[..., j]).astype(np.float32)
    if kind == "f64":
        p = e * (1 / (total.astype(np.float64) * (1 / 256)))[..., None]
    else:
        inv = (np.float32(1) / (total * np.float32(1 / 256)).astype(np.float32))
        p = (e * inv.astype(np.float32)[..., None]).astype(np.float32).astype(np.float64)
    r = np.rint(p) if kind == "even" else np.sign(p) * np.floor(np.abs(p) + 0.5)
    return np.clip(r.astype(np.int64) - 128, -128, 127)


def test_softmax_where_the_alternatives_differ():
    """LiteRT gives :func:`softmax_int8`'s words where plausible alternatives differ.

    Rows on which a pairwise sum, float64 arithmetic or half-to-even rounding would give
    other words (searched among random rows, fixed seed; and a 512-element row of equal
    values, whose probabilities 0.5 are ties).
    """
    rng = np.random.default_rng(7)
    cases = [(512, 0.1, np.zeros((1, 512), np.int64), "even")]
    wanted = {"pairwise", "f64"}
    for _ in range(200):
        if not wanted:
            break
        n, s_in = int(rng.integers(2, 300)), float(np.float32(rng.uniform(0.001, 2)))
        x = rng.integers(-128, 128, (3000, n))
        golden = softmax_int8(x, s_in, 1.0, 1 / 256, -128)
        for kind in sorted(wanted):
            rows = np.nonzero((_softmax_alternative(x, s_in, kind) != golden).any(-1))[0]
            if len(rows):
                cases.append((n, s_in, x[rows[:1]], kind))
                wanted.discard(kind)
    assert not wanted, f"no row found where {wanted} differ"
    for n, s_in, rows, kind in cases:
        got = run(_softmax_model(n, s_in, 0, 1.0), rows)
        assert np.array_equal(got, softmax_int8(rows, s_in, 1.0, 1 / 256, -128)), (n, s_in)
        assert not np.array_equal(got, _softmax_alternative(rows, s_in, kind)), kind
