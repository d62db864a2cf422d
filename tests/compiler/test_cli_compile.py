"""``npugen compile`` and ``npugen infer`` as a user meets them: outputs, errors, files.

Every refusal is one line on stderr with exit code 2 and leaves no output behind.
"""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from npugen.rtl.npu import NpuParams
from npugen.sim.cli import main
from npugen.sim.flow.digits import network_path, quantize

from .onnx_models import build

NPU = NpuParams()


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _refused(capsys, *argv, match):
    code, out, err = _run(capsys, *argv)
    assert code == 2, (code, out, err)
    assert err.startswith("npugen: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert match in err, err
    return err


def test_compile_and_infer_the_cnn(tmp_path, capsys, seed):
    folder = tmp_path / "cnn"
    code, out, _ = _run(capsys, "compile", network_path("digits_cnn"), "-o", folder)
    assert code == 0, out
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx", "plan.json",
                                                       "program.npup"]
    plan = json.loads((folder / "plan.json").read_text())
    assert [layer["op"] for layer in plan["layers"]] == ["Conv", "Conv", "MaxPool", "Conv"]
    assert all(layer["engine"] in ("systolic", "pool") for layer in plan["layers"])
    x = np.random.default_rng(seed).uniform(0, 1, size=(5, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, out, _ = _run(capsys, "infer", folder, "--input", tmp_path / "x.npy", "-o",
                        tmp_path / "y.npy", "--check")
    assert code == 0, out
    assert "check: 0 of 50 elements differ from onnxruntime (bit-exact)" in out, out
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (5, 10) and y.dtype == np.float32
    code, out, _ = _run(capsys, "infer", folder, "--input", tmp_path / "x.npy", "-o",
                        tmp_path / "q.npy", "--raw")
    q = np.load(tmp_path / "q.npy")
    assert code == 0 and q.dtype == np.int8 and q.shape == (5, 10)
    zp, scale = plan["output"]["quant"]["zero_point"], plan["output"]["quant"]["scale"]
    assert np.array_equal((q.astype(np.float32) - zp) * np.float32(scale), y)


def test_compile_replaces_a_folder_whole(tmp_path, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "stale.txt").write_text("old")
    assert _run(capsys, "compile", network_path("digits_mlp"), "-o", folder)[0] == 0
    assert not (folder / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary left


def _nothing_written(tmp_path, before):
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)


def test_malformed_models(tmp_path, capsys):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07not a protobuf" * 10)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(network_path("digits_cnn").read_bytes()[:700])
    before = [p.name for p in tmp_path.iterdir()]
    for path, match in ((tmp_path / "missing.onnx", "cannot read model"),
                        (garbage, "not a valid ONNX model"),
                        (truncated, "not a valid ONNX model")):
        _refused(capsys, "compile", path, "-o", tmp_path / "out", match=match)
        _nothing_written(tmp_path, before)


def _qop_model(tmp_path, nodes_fn, name="m"):
    """Write a hand-made QOperator model: x -> QuantizeLinear -> <nodes> -> DequantizeLinear."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.float32(0.05), "s"),
             numpy_helper.from_array(np.int8(0), "z"),
             numpy_helper.from_array(np.full(4, 0.01, np.float32), "ws"),
             numpy_helper.from_array(np.zeros(4, np.int8), "wz"),
             numpy_helper.from_array(rng.integers(-100, 100, (4, 2, 3, 3)).astype(np.int8),
                                     "w")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"])]
    last = nodes_fn(nodes, inits)
    nodes.append(helper.make_node("DequantizeLinear", [last, "s", "z"], ["y"]))
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 2, 6, 6])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 4, 4, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    return path


def _conv(**attrs):
    def add(nodes, inits):
        nodes.append(helper.make_node("QLinearConv", ["xq", "s", "z", "w", "ws", "wz", "s",
                                                      "z"], ["c"], **attrs))
        return "c"
    return add


@pytest.mark.parametrize("attrs,match", [
    ({"dilations": [1, 2]}, "dilations must be two equal values of 1 or more"),
    ({"pads": [0, 0, 3, 0]}, "pads must be 4 values in 0..2 (the window's size less 1)"),
    ({"dilations": [2, 2], "pads": [0, 0, 5, 0]}, "pads must be 4 values in 0..4"),
    ({"strides": [0, 2]}, "strides must be two values of 1 or more, not [0, 2]"),
    ({"kernel_shape": [3, 2]}, "kernel_shape [3, 2] does not match the weights [3, 3]"),
    ({"kernel_shape": [3, 1], "pads": [0, 1, 0, 0]},
     "pads must be 4 values in 0..2 (top, bottom) and 0..0 (left, right)"),
    ({"auto_pad": "SAME_UPPER"}, "auto_pad SAME_UPPER is not supported"),
])
def test_unsupported_attributes(tmp_path, capsys, attrs, match):
    path = _qop_model(tmp_path, _conv(**attrs))
    before = [p.name for p in tmp_path.iterdir()]
    _refused(capsys, "compile", path, "-o", tmp_path / "out", match=match)
    _nothing_written(tmp_path, before)


@pytest.mark.parametrize("group,shape,match", [
    (3, (4, 1, 3, 3), ("group must divide the input channels (2) and the output channels "
                       "(4), not 3")),
    (2, (4, 2, 3, 3), "weights (4, 2, 3, 3) do not fit input channels 2 in 2 group"),
])
def test_bad_grouped_convolution(tmp_path, capsys, group, shape, match):
    def add(nodes, inits):
        inits.append(numpy_helper.from_array(np.zeros(shape, np.int8), "wg"))
        nodes.append(helper.make_node("QLinearConv", ["xq", "s", "z", "wg", "ws", "wz", "s",
                                                      "z"], ["c"], group=group))
        return "c"
    _refused(capsys, "compile", _qop_model(tmp_path, add), "-o", tmp_path / "out",
             match=match)


def test_add_with_a_scale_ratio_the_npu_cannot_run_exactly(tmp_path, capsys):
    def add(nodes, inits):
        inits += [numpy_helper.from_array(np.float32(2.0 ** 30), "big"),
                  numpy_helper.from_array(np.ones((2, 2, 3, 3), np.int8), "w2"),
                  numpy_helper.from_array(np.full(2, 0.01, np.float32), "ws2"),
                  numpy_helper.from_array(np.zeros(2, np.int8), "wz2")]
        nodes.append(helper.make_node("QLinearConv", ["xq", "s", "z", "w2", "ws2", "wz2",
                                                      "big", "z"], ["c"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("QLinearAdd", ["xq", "s", "z", "c", "big", "z", "s",
                                                     "z"], ["a"], domain="com.microsoft"))
        return "a"
    _refused(capsys, "compile", _qop_model(tmp_path, add), "-o", tmp_path / "out",
             match="outside the range the NPU's ADD computes exactly")


def test_add_of_two_shapes(tmp_path, capsys):
    def add(nodes, inits):
        nodes.append(helper.make_node("MaxPool", ["xq"], ["p"], kernel_shape=[2, 2]))
        nodes.append(helper.make_node("QLinearAdd", ["xq", "s", "z", "p", "s", "z", "s", "z"],
                                      ["a"], domain="com.microsoft"))
        return "a"
    _refused(capsys, "compile", _qop_model(tmp_path, add), "-o", tmp_path / "out",
             match="must have one shape (broadcasting is not supported)")


def test_uint8_activations(tmp_path, capsys, seed):
    rng = np.random.default_rng(seed)
    _, float_path = build(tmp_path, rng, (2, 5, 5), [("conv", {"cout": 3, "k": 3})])
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"x": rng.uniform(-1, 1, (1, 2, 5, 5)).astype(np.float32)}])

        def get_next(self):
            return next(self.items, None)

    q = tmp_path / "u8.onnx"
    quantize_static(str(float_path), str(q), Reader(), activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    _refused(capsys, "compile", q, "-o", tmp_path / "out", match="uint8")


def test_network_too_big_for_the_npu(tmp_path, capsys):
    _refused(capsys, "compile", network_path("digits_cnn"), "-o", tmp_path / "out",
             "--act-words", "64", match="raise --act-words")
    _refused(capsys, "compile", network_path("digits_cnn"), "-o", tmp_path / "out",
             "--wgt-words", "100", match="raise --wgt-words")
    _refused(capsys, "compile", network_path("digits_cnn"), "-o", tmp_path / "out",
             "--engine-for", "conv=winograd", match="built without the Winograd engine")
    _refused(capsys, "compile", network_path("digits_mlp"), "-o", tmp_path / "out",
             "--engine-for", "fc=sparse", match="built without the sparse engine")
    _refused(capsys, "compile", network_path("digits_mlp"), "-o", tmp_path / "out",
             "--engine-for", "fc=winograd", match="fc must be one of sparse, systolic")
    # the CNN's fully connected layer reads a 4x4 map, not a flat vector
    _refused(capsys, "compile", network_path("digits_cnn"), "-o", tmp_path / "out",
             "--sparse", "on", "--engine-for", "fc=sparse", match="not a flat 1x1xC vector")
    # a width the NPU cannot take, given by hand
    _refused(capsys, "compile", network_path("digits_mlp"), "-o", tmp_path / "out",
             "--sparse", "on", "--sparse-act-width", "8", match="sparse.act_width must be 16")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flags", [("--sparse", "on"), ("--lanes", "4", "--systolic-rows", "4",
                                   "--systolic-cols", "4", "--sparse-n-pe", "2")])
def test_compile_mlp_onto_the_sparse_engine(tmp_path, capsys, flags):
    """``--sparse on`` (or any sparse flag) alone: the engine takes the NPU's width and lanes."""
    code, out, _ = _run(capsys, "compile", network_path("digits_mlp"), "-o", tmp_path / "mlp",
                        *flags)
    assert code == 0
    assert [line.split()[5] for line in out.splitlines() if line.startswith("  ")] == [
        "sparse", "systolic"]
    params = json.loads((tmp_path / "mlp" / "plan.json").read_text())["npu"]["sparse"]
    lanes = 4 if "--lanes" in flags else 8
    assert (params["act_width"], params["act_lanes"]) == (16, lanes)


def test_infer_refusals(tmp_path, capsys):
    folder = tmp_path / "mlp"
    assert _run(capsys, "compile", network_path("digits_mlp"), "-o", folder)[0] == 0
    np.save(tmp_path / "wrong.npy", np.zeros((3, 1, 8, 8), np.float32))
    np.save(tmp_path / "ints.npy", np.zeros((3, 64), np.int32))
    np.save(tmp_path / "empty.npy", np.zeros((0, 64), np.float32))
    (tmp_path / "bad.npy").write_bytes(b"junk")
    before = sorted(p.name for p in tmp_path.iterdir())
    y = tmp_path / "y.npy"
    _refused(capsys, "infer", folder, "--input", tmp_path / "wrong.npy", "-o", y,
             match="input must have shape (N, 64)")
    _refused(capsys, "infer", folder, "--input", tmp_path / "ints.npy", "-o", y,
             match="input must be float")
    _refused(capsys, "infer", folder, "--input", tmp_path / "empty.npy", "-o", y,
             match="input holds no images")
    _refused(capsys, "infer", folder, "--input", tmp_path / "bad.npy", "-o", y,
             match="cannot read")
    _refused(capsys, "infer", tmp_path, "--input", tmp_path / "ints.npy", "-o", y,
             match="is not a compiled network")
    _refused(capsys, "infer", folder, "--input", tmp_path / "ints.npy", "-o", y,
             "--engine", "board", match="--engine board needs --port")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_qdq_cnn_compiles_to_the_shipped_program(tmp_path, capsys):
    """The shipped CNN's float model, quantized as QDQ, compiles to the same program."""
    from npugen.sim.flow.digits import dataset

    x_tr = dataset()[0]
    quantize(network_path("digits_cnn", int8=False), tmp_path / "qdq.onnx", x_tr[:256],
             fmt="QDQ")
    assert _run(capsys, "compile", tmp_path / "qdq.onnx", "-o", tmp_path / "a")[0] == 0
    assert _run(capsys, "compile", network_path("digits_cnn"), "-o", tmp_path / "b")[0] == 0
    assert (tmp_path / "a" / "program.npup").read_bytes() == \
        (tmp_path / "b" / "program.npup").read_bytes()


def test_missing_activation_zero_point(tmp_path, capsys):
    """A QuantizeLinear without a zero point makes uint8: refused, not taken as int8."""
    def add(nodes, inits):
        nodes[0] = helper.make_node("QuantizeLinear", ["x", "s"], ["xq"])
        nodes.append(helper.make_node("QLinearConv", ["xq", "s", "z", "w", "ws", "wz", "s",
                                                      "z"], ["c"]))
        return "c"
    _refused(capsys, "compile", _qop_model(tmp_path, add), "-o", tmp_path / "out",
             match="the input zero point is missing")


def test_output_row_wider_than_the_accumulators(tmp_path, capsys, seed):
    rng = np.random.default_rng(seed)
    q, _ = build(tmp_path, rng, (1, 2, 20), [("conv", {"cout": 2, "k": 1})])
    _refused(capsys, "compile", q, "-o", tmp_path / "out", "--acc-words", "16",
             match="an output row has 20 pixels; acc_words is 16 (raise --acc-words)")


def test_huge_inputs_saturate_like_onnxruntime(tmp_path, seed):
    """Values far beyond the int8 range (and beyond int64 after scaling) clamp, not wrap."""
    from npugen.sim.flow.infer import compile_model, infer

    rng = np.random.default_rng(seed)
    q, _ = build(tmp_path, rng, (6,), [("gemm", {"cout": 3})])
    compile_model(q, tmp_path / "c", NPU)
    x = np.array([[3e38, -3e38, 1e19, -1e19, 0.5, -0.5]] * 2, dtype=np.float32)
    r = infer(tmp_path / "c", x, check=True)
    assert r.checked and r.mismatches == [], r.mismatches


def test_dead_branch(tmp_path, capsys):
    def nodes(nodes, inits):
        nodes.append(helper.make_node("MaxPool", ["xq"], ["dead"], kernel_shape=[2, 2],
                                      name="unused_pool"))
        nodes.append(helper.make_node("MaxPool", ["xq"], ["p"], kernel_shape=[3, 3]))
        return "p"
    _refused(capsys, "compile", _qop_model(tmp_path, nodes), "-o", tmp_path / "out",
             match="node 'unused_pool' (MaxPool): its output is never used")


def test_compile_and_check_a_residual_network(tmp_path, capsys, seed):
    """The summary shows where a layer reads from; --check names the QLinearAdd kernel."""
    rng = np.random.default_rng(seed)
    same = {"cout": 3, "k": 3, "pads": [1, 1, 1, 1]}
    spec = [("conv", {**same, "act": "relu"}), ("mark", {"as": "s"}), ("conv", same),
            ("add", {"with": "s"})]
    q, _ = build(tmp_path, rng, (2, 5, 5), spec)
    code, out, _ = _run(capsys, "compile", q, "-o", tmp_path / "res")
    assert code == 0, out
    layer = {line.split(":")[0].strip(): line for line in out.splitlines()
             if line.startswith("  ")}
    assert "reads" not in layer["1"] and layer["2"].endswith("reads 1, 0"), out
    np.save(tmp_path / "x.npy", rng.uniform(-1, 1, size=(3, 2, 5, 5)).astype(np.float32))
    code, out, _ = _run(capsys, "infer", tmp_path / "res", "--input", tmp_path / "x.npy",
                        "-o", tmp_path / "y.npy", "--check")
    assert "check: onnxruntime's QLinearAdd kernel on this CPU: " in out, out
    assert code == 0 or "other kernels round differently" in out, out
