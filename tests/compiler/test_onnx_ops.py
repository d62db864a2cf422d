"""Each ONNX operator mapping, on small generated models, bit-exact with onnxruntime.

Random shapes (the seed is pytest's ``--seed``, logged in the header), per-tensor and
per-channel weight scales, input zero points at both extremes, ReLU and ReLU6 folded into
the output range; both QOperator and QDQ forms. Every output element is compared with
onnxruntime's (CPUExecutionProvider) as float32 bit patterns.
"""

import dataclasses
import json

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from npugen.rtl.npu import NpuParams
from npugen.rtl.systolic.params import SystolicParams
from npugen.rtl.winograd.params import WinogradParams
from npugen.sim.compiler.onnx_import import ModelError
from npugen.sim.flow.infer import compile_model, infer, onnxruntime_outputs
from npugen.sim.models.qladd import ort_kernel

from .onnx_models import build, ops_of

# Odd lane count and array size, few accumulator words (convolutions run as bands); the
# scratchpads hold the largest draw of every random test here: test_conv's 13x13x10 map
# (676 activation words), test_pool_fc's 11x11x8 map into a 7-output layer (over 2048
# weight words; seed 1675692067 drew 2268 when this was 2048)
SMALL = NpuParams(lanes=3, act_words=1024, wgt_words=4096, acc_words=16, tab_entries=64,
                  imem_words=32, systolic=SystolicParams(rows=3, cols=3))
DEFAULT = NpuParams()


def _check(tmp_path, q_path, input_shape, rng, p=DEFAULT, n=6, input_range=(-1.0, 1.0),
           engine_for=None):
    folder = tmp_path / "compiled"
    compile_model(q_path, folder, p, engine_for)
    lo, hi = input_range
    # beyond the calibration range too: saturation at both ends of the input quantizer
    x = rng.uniform(lo - 0.5 * (hi - lo), hi + 0.5 * (hi - lo),
                    size=(n, *input_shape)).astype(np.float32)
    r = infer(folder, x, check=True)
    assert r.checked
    assert not r.mismatches, r.mismatches[:10]
    ref = onnxruntime_outputs(q_path, x)
    assert np.array_equal(r.outputs.view(np.uint32), ref.view(np.uint32))
    return r


def _conv_spec(rng):
    k = int(rng.choice([1, 3, 5]))
    pads = [int(v) for v in rng.integers(0, k, size=4)] if k > 1 else [0, 0, 0, 0]
    return {"cout": int(rng.integers(1, 11)), "k": k, "stride": int(rng.integers(1, 3)),
            "pads": pads, "act": str(rng.choice(["none", "relu", "relu6"]))}


@pytest.mark.parametrize("fmt", ["QOperator", "QDQ"])
@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
def test_conv(tmp_path, seed, fmt, per_channel):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 7)), int(rng.integers(5, 10)), int(rng.integers(5, 10)))
    spec = [("conv", _conv_spec(rng)), ("conv", {**_conv_spec(rng), "k": 3,
                                                 "pads": [1, 1, 1, 1], "stride": 1})]
    q, _ = build(tmp_path, rng, shape, spec, fmt=fmt, per_channel=per_channel)
    if fmt == "QOperator":
        assert ops_of(q).count("QLinearConv") == 2, ops_of(q)
    _check(tmp_path, q, shape, rng, p=SMALL)


@pytest.mark.parametrize("fmt", ["QOperator", "QDQ"])
@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
def test_conv_on_the_winograd_engine(tmp_path, seed, fmt, per_channel):
    """3x3 stride-1 convolutions forced onto the Winograd engine: any padding, odd sizes.

    SMALL's 16 accumulator words would split each layer into bands of rows on the array;
    the Winograd engine takes the whole map in one CONV.
    """
    rng = np.random.default_rng([seed, 3])
    p = dataclasses.replace(SMALL, winograd=WinogradParams(c_max=12, k_max=12))
    shape = (int(rng.integers(1, 9)), int(rng.integers(3, 11)), int(rng.integers(3, 11)))
    spec = [("conv", {"cout": int(rng.integers(1, 13)), "k": 3, "stride": 1,
                      "pads": [int(v) for v in rng.integers(0, 3, size=4)],
                      "act": str(rng.choice(["none", "relu", "relu6"]))}),
            ("conv", {"cout": int(rng.integers(1, 13)), "k": 3, "stride": 1,
                      "pads": [1, 1, 1, 1], "act": "none"})]
    print(f"input {shape}, layers {spec}")
    q, _ = build(tmp_path, rng, shape, spec, fmt=fmt, per_channel=per_channel)
    r = _check(tmp_path, q, shape, rng, p=p, engine_for={"conv": "winograd"})
    plan = json.loads((tmp_path / "compiled" / "plan.json").read_text())
    assert [layer["engine"] for layer in plan["layers"]] == ["winograd"] * 2, plan["layers"]
    assert [layer["tiles"] for layer in plan["layers"]] == [1, 1], plan["layers"]
    assert r.cycles[0] == plan["predicted_cycles"]


@pytest.mark.parametrize("fmt", ["QOperator", "QDQ"])
@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
@pytest.mark.parametrize("pool_on_array", [False, True], ids=["pool_unit", "pool_on_array"])
def test_unequal_strides(tmp_path, seed, fmt, per_channel, pool_on_array):
    """Convolution and max-pool strides (rows, columns) that differ, every output exact.

    The first two layers: two different strides of 1..3 each, windows 1..5 x 1..5 (the
    convolution's), random pads; the NPU runs each as one instruction per output row
    (MAXPOOL on its own unit, or on the array with ``pool_on_array``).
    """
    rng = np.random.default_rng([seed, 67])
    shape = (int(rng.integers(1, 5)), int(rng.integers(11, 16)), int(rng.integers(11, 16)))

    def strides():
        return tuple(int(v) for v in rng.choice(np.arange(1, 4), 2, replace=False))

    kh, kw = (int(v) for v in rng.integers(1, 6, 2))
    conv = {"cout": int(rng.integers(1, 7)), "k": (kh, kw), "stride": strides(),
            "pads": [int(rng.integers(0, span)) for span in (kh, kw, kh, kw)],
            "act": str(rng.choice(["none", "relu", "relu6"]))}
    k = int(rng.integers(2, 4))
    pool = {"k": k, "stride": strides(), "pads": [int(v) for v in rng.integers(0, k, 4)]}
    spec = [("conv", conv), ("maxpool", pool), ("conv", {"cout": 3, "k": 3, "pads": [1] * 4})]
    print(f"input {shape}, {conv}, {pool}")
    q, _ = build(tmp_path, rng, shape, spec, fmt=fmt, per_channel=per_channel)
    # (rows of up to 19 pixels; an instruction per row)
    p = dataclasses.replace(SMALL, acc_words=32, imem_words=64)
    if pool_on_array:
        p = dataclasses.replace(p, serial_setup=True, array_broadcast=True, pool_on_array=True)
    _check(tmp_path, q, shape, rng, p=p)
    layers = json.loads((tmp_path / "compiled" / "plan.json").read_text())["layers"]
    for layer, drawn in zip(layers, (conv, pool), strict=False):
        assert layer["stride"] == list(drawn["stride"]), layer
        assert layer["tiles"] == layer["output"][0], layer  # one instruction per row


@pytest.mark.parametrize("fmt", ["QOperator", "QDQ"])
@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
@pytest.mark.parametrize("kind", ["depthwise", "grouped", "dilated", "rectangular"])
def test_grouped_and_dilated_conv(tmp_path, seed, fmt, per_channel, kind):
    """Depthwise, grouped, dilated and rectangular (kh != kw) convolutions, every output exact.

    Depthwise: group = channels, a channel multiplier of 1 or 2; rectangular: windows
    1..5 x 1..5, dilation 1 or 2. The NPU runs each as a dense square convolution with zero
    weights; the plan counts the source layer's MACs.
    """
    rng = np.random.default_rng([seed, len(kind)])
    groups = int(rng.integers(2, 4))
    c = groups * int(rng.integers(1, 3))
    shape = (c, int(rng.integers(9, 12)), int(rng.integers(9, 12)))
    if kind == "rectangular":
        kh, kw = (int(v) for v in rng.choice(np.arange(1, 6), 2, replace=False))
        d = int(rng.integers(1, 3))
    else:
        kh = kw = int(rng.choice([1, 3])) if kind != "dilated" else 3
        d = int(rng.integers(2, 4)) if kind == "dilated" else 1
    span_h, span_w = (kh - 1) * d + 1, (kw - 1) * d + 1
    first = {"k": (kh, kw), "stride": int(rng.integers(1, 3)), "dilation": d,
             "pads": [int(rng.integers(0, span)) for span in (span_h, span_w, span_h, span_w)],
             "act": str(rng.choice(["none", "relu", "relu6"]))}
    group = 1
    if kind == "depthwise":
        group = c
        first.update(group=c, cout=c * int(rng.integers(1, 3)))
    elif kind == "grouped":
        group = groups
        first.update(group=groups, cout=groups * int(rng.integers(1, 3)))
    else:
        first.update(cout=int(rng.integers(1, 6)))
    spec = [("conv", first), ("conv", {"cout": 3, "k": 3, "pads": [1, 1, 1, 1]})]
    print(f"{kind}: input {shape}, {first}")
    q, _ = build(tmp_path, rng, shape, spec, fmt=fmt, per_channel=per_channel)
    if fmt == "QOperator":
        assert ops_of(q).count("QLinearConv") == 2, ops_of(q)
    _check(tmp_path, q, shape, rng, p=SMALL)
    layer = json.loads((tmp_path / "compiled" / "plan.json").read_text())["layers"][0]
    oh, ow, oc = layer["output"]
    assert layer["kernel"] == max(span_h, span_w)
    assert layer["macs"] == oh * ow * oc * (c // group) * kh * kw, layer


@pytest.mark.parametrize("input_range", [(0.0, 2.0), (-2.0, 0.0)], ids=["zp_min", "zp_max"])
def test_zero_point_extremes(tmp_path, seed, input_range):
    """All-positive input: zero point -128; all-negative: +127 (and ReLU outputs: -128)."""
    rng = np.random.default_rng(seed)
    shape = (2, 6, 6)
    spec = [("conv", {"cout": 4, "k": 3, "pads": [1, 1, 1, 1], "act": "relu"}),
            ("maxpool", {"k": 2, "stride": 2}), ("flatten", {}), ("gemm", {"cout": 5})]
    q, _ = build(tmp_path, rng, shape, spec, input_range=input_range)
    assert ops_of(q) == ["QuantizeLinear", "QLinearConv", "MaxPool", "Flatten", "QGemm",
                         "DequantizeLinear"], ops_of(q)
    import onnx
    from onnx import numpy_helper
    zps = {i.name: int(numpy_helper.to_array(i)) for i in onnx.load(q).graph.initializer
           if i.name.endswith("zero_point") and numpy_helper.to_array(i).size == 1}
    assert zps["x_zero_point"] == (-128 if input_range[0] == 0 else 127), zps
    _check(tmp_path, q, shape, rng, input_range=input_range)


def _residual_spec(rng, branch):
    c = int(rng.integers(1, 7))
    same = {"cout": c, "k": 3, "pads": [1, 1, 1, 1], "stride": 1}
    spec = [("conv", {**same, "act": "relu"}), ("mark", {"as": "s"})]
    spec += [("conv", {**same, "act": str(rng.choice(["none", "relu"]))})] * branch
    return spec + [("add", {"with": "s", "act": "relu"}), ("mark", {"as": "t"}),
                   ("conv", same), ("add", {"with": "t"})]


@pytest.mark.parametrize("branch", [1, 2], ids=["copy", "same_bank"])
def test_residual_add(tmp_path, seed, branch):
    """Residual blocks, conv -> (branch convs) + skip -> ReLU -> conv -> + skip, on ADD.

    A branch of one convolution leaves the two addends in different banks (the compiler
    copies one); two convolutions bring them back to one bank.
    """
    rng = np.random.default_rng([seed, branch])
    shape = (int(rng.integers(1, 4)), int(rng.integers(3, 8)), int(rng.integers(3, 8)))
    if ort_kernel() != "avx2":
        pytest.skip("this CPU's onnxruntime runs another QLinearAdd kernel than ADD's")
    q, _ = build(tmp_path, rng, shape, _residual_spec(rng, branch))
    assert ops_of(q).count("QLinearAdd") == 2, ops_of(q)
    r = _check(tmp_path, q, shape, rng, p=SMALL, n=20)
    assert r.kernel == "avx2"
    plan = json.loads((tmp_path / "compiled" / "plan.json").read_text())
    # an odd branch leaves the addends in different banks: a copy (a second instruction)
    assert [layer["tiles"] for layer in plan["layers"] if layer["op"] == "Add"] == \
        ([2, 2] if branch == 1 else [1, 2])


def test_residual_add_in_qdq_form_is_refused(tmp_path, seed):
    """Onnxruntime runs a QDQ Add unfused in float32: not what ADD computes."""
    rng = np.random.default_rng(seed)
    q, _ = build(tmp_path, rng, (2, 4, 4), _residual_spec(rng, 2), fmt="QDQ")
    with pytest.raises(ValueError, match="in QDQ form onnxruntime computes Add in float32"):
        compile_model(q, tmp_path / "compiled", SMALL)


@pytest.mark.parametrize("fmt", ["QOperator", "QDQ"])
def test_pool_fc(tmp_path, seed, fmt):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(6, 10))
    k = int(rng.integers(2, 4))
    stride = int(rng.integers(1, k + 1))
    pads = [int(v) for v in rng.integers(0, k, size=4)]
    spec = [("conv", {"cout": int(rng.integers(2, 9)), "k": 3, "pads": [1, 1, 1, 1],
                      "act": "relu"}),
            ("maxpool", {"k": k, "stride": stride, "pads": pads})]
    # the fully connected layer needs a square input: pad the pooled map's shape check
    q, _ = build(tmp_path, rng, (3, size, size), spec + [("flatten", {}),
                                                         ("gemm", {"cout": 7})], fmt=fmt)
    _check(tmp_path, q, (3, size, size), rng, p=SMALL)


def test_global_average_pool(tmp_path, seed):
    rng = np.random.default_rng(seed)
    shape = (3, int(rng.integers(2, 9)), int(rng.integers(2, 9)))
    spec = [("conv", {"cout": int(rng.integers(2, 12)), "k": 3, "pads": [1, 1, 1, 1],
                      "act": "relu"}), ("gap", {})]
    q, _ = build(tmp_path, rng, shape, spec)
    assert "QLinearGlobalAveragePool" in ops_of(q), ops_of(q)
    _check(tmp_path, q, shape, rng, n=10)


@pytest.mark.parametrize("fmt", ["QOperator", "QDQ"])
def test_global_average_pool_without_the_unit(tmp_path, seed, fmt):
    """No AVGPOOL unit: a global average pool runs as a CONV of ones (square or not)."""
    rng = np.random.default_rng([seed, 29])
    side = int(rng.integers(2, 7))
    shape = (int(rng.integers(1, 5)), side, side)
    spec = [("conv", {"cout": int(rng.integers(2, 9)), "k": 3, "pads": [1, 1, 1, 1],
                      "act": "relu"}), ("gap", {}), ("flatten", {}), ("gemm", {"cout": 5})]
    q, _ = build(tmp_path, rng, shape, spec, fmt=fmt)
    _check(tmp_path, q, shape, rng, p=dataclasses.replace(SMALL, avgpool=False), n=10)
    plan = json.loads((tmp_path / "compiled" / "plan.json").read_text())
    pool = plan["layers"][1]
    assert (pool["op"], pool["engine"], pool["macs"]) == ("GlobalAvgPool", "systolic", 0), pool
    assert pool["output"] == [1, 1, spec[0][1]["cout"]]
    # a 4x5 map: a 5x5 window with a row of padding and zero weights
    q, _ = build(tmp_path, rng, (2, 4, 5), spec)
    _check(tmp_path, q, (2, 4, 5), rng, p=dataclasses.replace(SMALL, avgpool=False), n=10)
    plan = json.loads((tmp_path / "compiled" / "plan.json").read_text())
    assert plan["layers"][1]["engine"] == "systolic"
    # a 16x16 map: wider than CONV's 15 x 15 window; one line naming --avgpool true
    q, _ = build(tmp_path, rng, (1, 16, 16), spec[:2])
    with pytest.raises(ValueError, match=r"^layer 1 \(GlobalAvgPool.*\): a global average "
                                         r"pool over a 16x16 map needs the AVGPOOL unit "
                                         r"\(--avgpool true\)"):
        compile_model(q, tmp_path / "refused", NpuParams(avgpool=False))
    assert not (tmp_path / "refused").exists()


@pytest.mark.parametrize("fmt", ["QOperator", "QDQ"])
def test_average_pool_over_the_whole_input(tmp_path, seed, fmt):
    """An AveragePool whose window is the whole (square) input: onnxruntime's global path."""
    rng = np.random.default_rng([seed, 23])
    side = int(rng.integers(3, 7))
    shape = (int(rng.integers(1, 5)), side, side)
    spec = [("conv", {"cout": int(rng.integers(2, 9)), "k": 3, "pads": [1, 1, 1, 1],
                      "act": "relu"}),
            ("avgpool", {"k": side}), ("flatten", {}), ("gemm", {"cout": 5})]
    q, _ = build(tmp_path, rng, shape, spec, fmt=fmt)
    if fmt == "QOperator":
        assert "QLinearAveragePool" in ops_of(q), ops_of(q)
    _check(tmp_path, q, shape, rng, p=SMALL)


def test_windowed_average_pool_is_refused(tmp_path, seed):
    rng = np.random.default_rng(seed)
    spec = [("conv", {"cout": 3, "k": 3, "pads": [1, 1, 1, 1]}), ("avgpool", {"k": 2})]
    q, _ = build(tmp_path, rng, (2, 6, 6), spec)
    with pytest.raises(ModelError, match=r"an average pool over \[2, 2\] windows of a 6x6 "
                                         r"input .* onnxruntime in float32"):
        compile_model(q, tmp_path / "out", SMALL)


#: Windows where onnxruntime's float32 QLinearAveragePool and the exact integer formula (the
#: NPU's: one rounding of sum * scale) disagree, found among 8 million random 3x3 windows:
#: (x_scale, y_scale, x_zero_point, y_zero_point, window, onnxruntime's output).
AVERAGE_POOL_WITNESSES = [
    (0.086159214, 0.14603081, 110, 53, [-98, -123, -65, -115, -5, -66, 121, -77, 7], -40),
    (0.086159214, 0.14603081, 110, 53, [-20, -101, -35, -122, -21, -49, -104, 98, -67], -40),
    (0.06787849, 0.0564594, 40, 120, [-90, -112, -126, -117, -17, 108, -96, -33, -89], -5),
]


def _qlinear_average_pool(x, xs, xz, ys, yz, k, w):
    """Run one QLinearAveragePool (k x k windows at stride w over a k x w int8 input)."""
    inits = [numpy_helper.from_array(np.array(v, t), n) for v, t, n in (
        (xs, np.float32, "xs"), (xz, np.int8, "xz"), (ys, np.float32, "ys"), (yz, np.int8, "yz"))]
    node = helper.make_node("QLinearAveragePool", ["x", "xs", "xz", "ys", "yz"], ["y"],
                            domain="com.microsoft", kernel_shape=[k, k], strides=[w, w])
    graph = helper.make_graph(
        [node], "pool", [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 1, k, w])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 1, 1, 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return int(session.run(None, {"x": x})[0].reshape(-1)[0])


@pytest.mark.parametrize("witness", AVERAGE_POOL_WITNESSES)
def test_windowed_average_pool_is_a_float32_path(witness):
    """Show why a windowed QLinearAveragePool is refused.

    onnxruntime sums dequantized float32 values in window order and divides in float32; an
    integer sum rounded once (what the NPU's requantization computes) gives another answer
    on these windows. A window over the whole input takes onnxruntime's global path, which
    the NPU reproduces (the test above).
    """
    f32 = np.float32
    xs, ys, xz, yz, window, want = witness
    xs, ys = f32(xs), f32(ys)
    x = np.zeros((1, 1, 3, 4), np.int8)  # one 3x3 window, not the whole input
    x[0, 0, :, :3] = np.array(window, np.int8).reshape(3, 3)
    assert _qlinear_average_pool(x, xs, xz, ys, yz, 3, 4) == want
    acc = f32(0)
    for v in window:  # the kernel's float32 path, step by step
        acc = f32(acc + f32(xs * f32(v - xz)))
    acc = f32(acc / f32(9))
    assert int(np.clip(np.rint(f32(f32(acc / ys) + f32(yz))), -128, 127)) == want
    total = sum(v - xz for v in window)  # exact, then one float32 scale: off by one here
    scale = f32(f32(xs / ys) / f32(9))
    assert int(np.clip(np.rint(f32(f32(total) * scale)) + yz, -128, 127)) == want + 1


@pytest.mark.parametrize("op", ["gemm", "matmul"])
def test_mlp(tmp_path, seed, op):
    rng = np.random.default_rng(seed)
    features = int(rng.integers(4, 40))
    spec = [(op, {"cout": int(rng.integers(2, 20))}), (op, {"cout": int(rng.integers(2, 12))})]
    q, _ = build(tmp_path, rng, (features,), spec, per_channel=op == "gemm")
    want = "QGemm" if op == "gemm" else "QLinearMatMul"
    assert ops_of(q).count(want) == 2, ops_of(q)
    _check(tmp_path, q, (features,), rng, p=SMALL, n=10)


def test_qdq_and_qoperator_compile_alike(tmp_path, seed):
    """The two forms of one model give the same program and the same outputs."""
    rng = np.random.default_rng(seed)
    shape = (2, 8, 8)
    spec = [("conv", {"cout": 5, "k": 3, "pads": [1, 1, 1, 1], "act": "relu"}),
            ("maxpool", {"k": 2, "stride": 2}), ("flatten", {}), ("gemm", {"cout": 4})]
    q1, float_path = build(tmp_path, rng, shape, spec, fmt="QOperator", tag="a")
    cal_rng = np.random.default_rng(seed)
    from npugen.sim.flow.digits import quantize
    cal = cal_rng.uniform(-1, 1, size=(16, *shape)).astype(np.float32)
    q1 = tmp_path / "qop.onnx"
    q2 = tmp_path / "qdq.onnx"
    quantize(float_path, q1, cal, fmt="QOperator")
    quantize(float_path, q2, cal, fmt="QDQ")
    compile_model(q1, tmp_path / "c1", DEFAULT)
    compile_model(q2, tmp_path / "c2", DEFAULT)
    assert (tmp_path / "c1" / "program.npup").read_bytes() == \
        (tmp_path / "c2" / "program.npup").read_bytes()
    x = rng.uniform(-1.5, 1.5, size=(8, *shape)).astype(np.float32)
    r1 = infer(tmp_path / "c1", x, check=True)
    r2 = infer(tmp_path / "c2", x, check=True)
    assert not r1.mismatches and not r2.mismatches
    assert np.array_equal(r1.outputs, r2.outputs)


def test_bands(tmp_path, seed):
    """A convolution with more output pixels than acc_words runs as bands of rows."""
    rng = np.random.default_rng(seed)
    shape = (2, 11, 7)
    spec = [("conv", {"cout": 4, "k": 3, "stride": 1, "pads": [2, 1, 1, 2], "act": "relu"}),
            ("conv", {"cout": 3, "k": 5, "stride": 2, "pads": [2, 2, 2, 2]})]
    q, _ = build(tmp_path, rng, shape, spec)
    r = _check(tmp_path, q, shape, rng, p=SMALL)
    import json
    plan = json.loads((tmp_path / "compiled" / "plan.json").read_text())
    assert plan["layers"][0]["tiles"] > 1, plan["layers"][0]
    assert r.cycles[0] == plan["predicted_cycles"]


def test_a_million_outputs(tmp_path, seed):
    """Enough outputs (about 2 * 10^6) that a one-ulp error in a scale would show.

    onnxruntime's float32 scale expression, reproduced; a float64 one fails here.
    """
    rng = np.random.default_rng(seed)
    shape = (4, 32, 32)
    spec = [("conv", {"cout": 16, "k": 1})]
    q, _ = build(tmp_path, rng, shape, spec, per_channel=True)
    r = _check(tmp_path, q, shape, rng, n=128)
    assert r.outputs.size == 128 * 16 * 32 * 32


#: SMALL pooling on its array: a MAXPOOL has at most acc_words (16) output pixels.
SMALL_POOL_ON_ARRAY = dataclasses.replace(SMALL, serial_setup=True, array_broadcast=True,
                                          pool_on_array=True)


def test_maxpool_bands_on_the_array(tmp_path, seed):
    """With ``pool_on_array`` a max-pool of more than acc_words outputs runs as bands.

    A padded 3x3 window, stride 1, over an 11 x 7 map: 77 outputs in bands of two rows.
    """
    rng = np.random.default_rng(seed)
    shape = (2, 11, 7)
    spec = [("conv", {"cout": 5, "k": 3, "pads": [1, 1, 1, 1], "act": "relu"}),
            ("maxpool", {"k": 3, "stride": 1, "pads": [1, 1, 1, 1]})]
    q, _ = build(tmp_path, rng, shape, spec)
    r = _check(tmp_path, q, shape, rng, p=SMALL_POOL_ON_ARRAY)
    plan = json.loads((tmp_path / "compiled" / "plan.json").read_text())
    pool = [layer for layer in plan["layers"] if layer["op"] == "MaxPool"]
    assert [layer["tiles"] for layer in pool] == [6], pool
    assert r.cycles[0] == plan["predicted_cycles"]


def test_residual_copy_bands_on_the_array(tmp_path, seed):
    """The copy before an ADD (a 1 x 1 MAXPOOL) runs as bands too with ``pool_on_array``."""
    rng = np.random.default_rng([seed, 1])
    if ort_kernel() != "avx2":
        pytest.skip("this CPU's onnxruntime runs another QLinearAdd kernel than ADD's")
    shape = (2, 6, 6)
    q, _ = build(tmp_path, rng, shape, _residual_spec(rng, 1))
    _check(tmp_path, q, shape, rng, p=SMALL_POOL_ON_ARRAY, n=8)
    plan = json.loads((tmp_path / "compiled" / "plan.json").read_text())
    # the copy of 36 pixels in bands of 2 rows (12 pixels): 3 instructions and the ADD
    assert [layer["tiles"] for layer in plan["layers"] if layer["op"] == "Add"][0] == 4
