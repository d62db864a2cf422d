"""The shipped digits networks, end to end on the instruction-level simulator.

The whole held-out split (450 images) through each network; every output element equal to
onnxruntime's; the int8 accuracy next to the float model's. The TFLite forms too (the
MLP's hidden layer on the sparse engine), every element equal to LiteRT's. The training
script reproduces the shipped models.
"""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from npugen.rtl.npu import NpuParams
from npugen.rtl.sparse.params import SparseParams
from npugen.sim.flow.digits import NETWORKS, build, dataset, held_out_split, network_path
from npugen.sim.flow.digits_tflite import MLP_TFLITE_PATH, TFLITE_PATH
from npugen.sim.flow.infer import compile_model, infer, onnxruntime_outputs


def _inputs(name, x):
    return x if name == "digits_cnn" else x.reshape(len(x), -1)


@pytest.mark.parametrize("name", NETWORKS)
def test_test_split_bit_exact(tmp_path, name):
    x_te, y_te = held_out_split()
    x = _inputs(name, x_te)
    compile_model(network_path(name), tmp_path / name, NpuParams())
    r = infer(tmp_path / name, x, check=True)
    assert len(x) == 450
    assert r.checked and r.mismatches == [], r.mismatches[:10]
    int8 = float((r.outputs.argmax(1) == y_te).mean())
    fp = float((onnxruntime_outputs(network_path(name, int8=False), x).argmax(1)
                == y_te).mean())
    print(f"{name}: float {fp:.4f}, int8 {int8:.4f}, cycles/image {r.cycles[0]}")
    assert fp >= 0.95 and int8 >= fp - 0.01


def test_mlp_on_the_sparse_engine_bit_exact(tmp_path):
    """The MLP's pruned, weight-shared hidden layer as an SPFC: same outputs, fewer cycles."""
    x_te, y_te = held_out_split()
    x = x_te.reshape(len(x_te), -1)
    p = NpuParams(sparse=SparseParams(act_width=16, act_lanes=8))
    plan = compile_model(network_path("digits_mlp"), tmp_path / "sparse", p)
    assert [layer["engine"] for layer in plan["layers"]] == ["sparse", "systolic"]
    dense = compile_model(network_path("digits_mlp"), tmp_path / "dense", p,
                          engine_for={"fc": "systolic"})
    assert [layer["engine"] for layer in dense["layers"]] == ["systolic", "systolic"]
    r = infer(tmp_path / "sparse", x, check=True)
    assert r.checked and r.mismatches == [], r.mismatches[:10]
    d = infer(tmp_path / "dense", x)
    assert np.array_equal(r.outputs, d.outputs)
    # The first image loads the matrix; after it, every image beats the array.
    steady = r.cycles[1:]
    assert r.cycles[0] > max(steady) and max(steady) < min(d.cycles)
    print(f"digits_mlp on the sparse engine: int8 {(r.outputs.argmax(1) == y_te).mean():.4f}, "
          f"cycles/image first {r.cycles[0]}, then {min(steady)}..{max(steady)} (mean "
          f"{np.mean(steady):.1f}); on the array {d.cycles[0]}")


def _against_litert(folder, x, name, x_float, labels):
    """Infer a compiled TFLite network with ``--check``: zero mismatches against LiteRT.

    Returns the result, the int8 accuracy and the float ONNX network's (fed ``x_float``).
    """
    r = infer(folder, x, check=True)
    assert r.checked and r.runtime == "LiteRT" and r.mismatches == [], r.mismatches[:10]
    int8 = float((r.outputs.argmax(1) == labels).mean())
    fp = float((onnxruntime_outputs(network_path(name, int8=False), x_float).argmax(1)
                == labels).mean())
    return r, int8, fp

def test_tflite_cnn_test_split_bit_exact(tmp_path):
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is in the dev install")
    x_te, y_te = held_out_split()
    x = x_te.transpose(0, 2, 3, 1)  # TFLite's NHWC input
    plan = compile_model(TFLITE_PATH, tmp_path / "cnn", NpuParams())
    assert [layer["op"] for layer in plan["layers"]] == ["Conv", "Conv", "MaxPool", "Conv"]
    r, int8, fp = _against_litert(tmp_path / "cnn", x, "digits_cnn", x_te, y_te)
    print(f"digits_cnn (TFLite): float {fp:.4f}, int8 {int8:.4f}, cycles/image "
          f"{r.cycles[0]}")
    assert int8 >= fp - 0.01


def test_tflite_mlp_on_the_sparse_engine_bit_exact(tmp_path):
    """The MLP's TFLite form: pruned and shared as the ONNX form, an SPFC, equal to LiteRT."""
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is in the dev install")
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

    interp = Interpreter(model_path=str(MLP_TFLITE_PATH))
    hidden = next(interp.get_tensor(t["index"]) for t in interp.get_tensor_details()
                  if t["name"] == "hidden_weights")
    nz = hidden[hidden != 0]
    assert hidden.shape == (32, 64) and hidden.dtype == np.int8
    assert nz.size / hidden.size <= 0.2 and np.unique(nz).size <= 15
    x_te, y_te = held_out_split()
    x = x_te.reshape(len(x_te), -1)
    p = NpuParams(sparse=SparseParams(act_width=16, act_lanes=8))
    plan = compile_model(MLP_TFLITE_PATH, tmp_path / "mlp", p)
    assert [layer["engine"] for layer in plan["layers"]] == ["sparse", "systolic"]
    r, int8, fp = _against_litert(tmp_path / "mlp", x, "digits_mlp", x, y_te)
    print(f"digits_mlp (TFLite) on the sparse engine: float {fp:.4f}, int8 {int8:.4f}, "
          f"cycles/image first {r.cycles[0]}, then mean {np.mean(r.cycles[1:]):.1f}")
    assert int8 >= fp - 0.01


def test_shipped_split_is_the_held_out_split():
    _, _, x_te, y_te = dataset()
    x, y = held_out_split()
    assert np.array_equal(x, x_te) and np.array_equal(y, y_te)


def test_mlp_is_pruned_and_shared():
    """<= 20 % density, <= 15 distinct non-zero int8 values in the hidden layer."""
    model = onnx.load(network_path("digits_mlp"))
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    hidden = weights["W1_quantized"]
    assert hidden.shape == (32, 64) and hidden.dtype == np.int8
    nz = hidden[hidden != 0]
    assert nz.size / hidden.size <= 0.2
    assert np.unique(nz).size <= 15
    assert weights["W1_scale"].size == 1  # one grid for the whole layer


def test_training_reproduces_the_shipped_models(tmp_path):
    stats = build(tmp_path, log=lambda _: None)
    _, _, x_te, y_te = dataset()
    for name in NETWORKS:
        x = _inputs(name, x_te)
        for int8 in (False, True):
            new = tmp_path / network_path(name, int8).name
            got = onnxruntime_outputs(new, x).argmax(1)
            want = onnxruntime_outputs(network_path(name, int8), x).argmax(1)
            assert np.array_equal(got, want), (name, int8)
            if not int8:  # the script's own numpy accuracy agrees with onnxruntime's
                assert stats[name]["float_accuracy"] == float((want == y_te).mean())
    # the TFLite forms, written from the float ONNX files' weights: byte for byte the shipped
    for path in (TFLITE_PATH, MLP_TFLITE_PATH):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name
    ops = [[n.op_type for n in onnx.load(tmp_path / network_path(n).name).graph.node]
           for n in NETWORKS]
    assert ops == [[n.op_type for n in onnx.load(network_path(n)).graph.node]
                   for n in NETWORKS]
