"""Compiled digits networks on the Verilator NPU, bit-exact with onnxruntime.

A few held-out images per network through ``npugen infer --engine verilator``'s path: the
program loaded once, each image run autonomously; every output element compared with
onnxruntime (LiteRT for the CNN's TFLite form), and the cycle counts with the plan's
prediction.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from npugen.rtl.winograd.params import WinogradParams
from npugen.sim.blocks import NPU_DEMO
from npugen.sim.flow.digits import held_out_split, network_path
from npugen.sim.flow.digits_tflite import TFLITE_PATH
from npugen.sim.flow.infer import compile_model, infer

ROOT = Path(__file__).resolve().parents[2]


# The MLP (its hidden layer on the sparse engine) runs on the same NPU's board core in
# test_board_infer.py, through the UART, checked as here; a build of its own took 100 s of CI.
@pytest.mark.parametrize("name", ["digits_cnn", "digits_cnn_tflite", "digits_cnn_winograd"])
def test_digits_in_verilator(tmp_path, seed, name):
    rng = np.random.default_rng(seed)
    x_te, y_te = held_out_split()
    pick = rng.choice(len(x_te), size=6, replace=False)
    x = x_te[pick].transpose(0, 2, 3, 1) if name == "digits_cnn_tflite" else x_te[pick]
    # 4 lanes: quick to build and run; the CNN's two 3x3 convolutions on the Winograd
    # engine in the last case.
    winograd = name.endswith("winograd")
    p = dataclasses.replace(NPU_DEMO, winograd=WinogradParams()) if winograd else NPU_DEMO
    model = TFLITE_PATH if name.endswith("tflite") else network_path("digits_cnn")
    plan = compile_model(model, tmp_path / name, p, {"conv": "winograd"} if winograd else None)
    engines = [layer["engine"] for layer in plan["layers"]]
    assert "sparse" not in engines, engines
    assert engines.count("winograd") == (2 if winograd else 0), engines
    r = infer(tmp_path / name, x, engine="verilator", check=True,
              build_root=ROOT / "build" / "cocotb", seed=seed)
    assert r.checked and r.mismatches == [], r.mismatches[:10]
    assert r.outputs.shape == (6, 10)
    # The instruction-level simulator's cycles per image: the plan's figure (no
    # data-dependent instruction), and the Verilator model's within 5%.
    isa = infer(tmp_path / name, x, engine="isa")
    assert np.array_equal(isa.outputs, r.outputs)
    assert set(isa.cycles) == {plan["predicted_cycles"]}
    for cycles, model in zip(r.cycles, isa.cycles, strict=True):
        assert abs(cycles - model) <= 0.05 * cycles, (r.cycles, isa.cycles)
    print(f"{name}: labels {y_te[pick].tolist()}, predicted {r.outputs.argmax(1).tolist()}, "
          f"cycles/image {r.cycles} (ISA simulator {isa.cycles}, plan "
          f"{plan['predicted_cycles']}), "
          f"{sum(r.cycles) / r.seconds:,.0f} Verilator cycles/s")


def test_residual_network_in_verilator(tmp_path, seed):
    """Two residual blocks (QLinearAdd, one through a copy between the banks) on the NPU."""
    from ..compiler.onnx_models import build  # the compiler tests' model generator

    rng = np.random.default_rng(seed)
    same = {"cout": 5, "k": 3, "pads": [1, 1, 1, 1]}
    spec = [("conv", {**same, "act": "relu"}), ("mark", {"as": "s"}), ("conv", same),
            ("conv", same), ("add", {"with": "s", "act": "relu"}), ("mark", {"as": "t"}),
            ("conv", same), ("add", {"with": "t"}), ("maxpool", {"k": 2, "stride": 2}),
            ("flatten", {}), ("gemm", {"cout": 10})]
    q, _ = build(tmp_path, rng, (1, 8, 8), spec)
    x = rng.uniform(-1.5, 1.5, size=(4, 1, 8, 8)).astype(np.float32)
    compile_model(q, tmp_path / "residual", NPU_DEMO)
    plan = json.loads((tmp_path / "residual" / "plan.json").read_text())
    assert [layer["op"] for layer in plan["layers"]].count("Add") == 2
    r = infer(tmp_path / "residual", x, engine="verilator", check=True,
              build_root=ROOT / "build" / "cocotb", seed=seed)
    assert r.checked and r.mismatches == [], r.mismatches[:10]
    for cycles in r.cycles:
        assert abs(cycles - plan["predicted_cycles"]) <= 0.05 * cycles
    print(f"residual: {r.cycles[0]} cycles/image (plan {plan['predicted_cycles']})")


@pytest.mark.parametrize("tail", ["average_pool", "mean"])
def test_tflite_sub_and_average_pools_in_verilator(tmp_path, seed, tail):
    """TFLite's SUB, AVERAGE_POOL_2D and MEAN against LiteRT on the Verilator NPU.

    SUB is ADD mode 1 with b's multiplier negated; the 2 x 2 pool a CONV of ones; the mean
    over the whole map (``tail``: AVERAGE_POOL_2D, or MEAN, XNNPACK's arithmetic) an
    AVGPOOL. Every output word, and the cycles exactly the plan's.
    """
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is in the dev install")
    from npugen.sim.compiler.onnx_import import ModelError

    from ..compiler import test_tflite_import as t  # the TFLite tests' model builders

    rng = np.random.default_rng([seed, 31])
    for _ in range(8):  # (a MEAN whose scales no AVGPOOL constants reproduce: new ones)
        g = t.Graph()
        shape = (6, 6, 3)
        xf, x = t._quantized_input(g, rng, shape)
        y, _ = t._conv(g, rng, x, shape, 3, 3, 1, True, True, t.ACTS[1])
        s_out, zp = t._quant(rng)
        d = g.tensor([1, *shape], np.int8, s_out * 2, zp)
        g.op("SUB", [x, y], [d], t.tfl.SubOptionsT())
        p, pshape = t._avg_pool(g, d, shape, 2, 2, False, t.ACTS[0])
        if tail == "mean":
            p, pshape = t._mean(g, p, pshape, False, t._quant(rng))
            flat, features = p, pshape[0]
        else:
            p, pshape = t._avg_pool(g, p, pshape, 3, 1, False, t.ACTS[2])
            flat, features = t._flatten(g, p, pshape)
        z = t._fc(g, rng, flat, features, 4, False, t.ACTS[0])
        out = g.tensor([1, 4], np.float32)
        g.op("DEQUANTIZE", [z], [out])
        path = tmp_path / "m.tflite"
        path.write_bytes(g.model([xf], [out]))
        try:
            plan = compile_model(path, tmp_path / "m", NPU_DEMO)
            break
        except ModelError as exc:
            assert "no AVGPOOL constants" in str(exc)
    else:
        pytest.fail("8 random MEAN layers in a row without exact AVGPOOL constants")
    assert [layer["op"] for layer in plan["layers"]] == [
        "Conv", "Sub", "AveragePool", "Mean" if tail == "mean" else "AveragePool", "Conv"]
    x = rng.uniform(-2.5, 2.5, (4, *shape)).astype(np.float32)
    r = infer(tmp_path / "m", x, engine="verilator", check=True,
              build_root=ROOT / "build" / "cocotb", seed=seed)
    assert r.checked and r.runtime == "LiteRT" and r.mismatches == [], r.mismatches[:10]
    assert all(c == plan["predicted_cycles"] for c in r.cycles), (r.cycles, plan["layers"])
    print(f"SUB + pools ({tail}): {r.cycles[0]} cycles/image (plan "
          f"{plan['predicted_cycles']})")


def test_tflite_rectangular_int8_network_in_verilator(tmp_path, seed):
    """A keyword-spotter-shaped TFLite network with int8 graph edges on the Verilator NPU.

    int8 input (taken as is) -> CONV_2D 5x3 stride 2 SAME -> DEPTHWISE 1x3 with strides
    (1, 2) -> whole-map AVERAGE_POOL_2D over a rectangular map (AVGPOOL) -> FULLY_CONNECTED
    -> SOFTMAX (the host's) -> int8 output (returned as is): the rectangular windows run as
    square CONVs with zero weights, the unequal strides as a CONV per output row.
    Every output word against LiteRT, the cycles exactly the plan's.
    """
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is in the dev install")
    from ..compiler import test_tflite_import as t  # the TFLite tests' model builders

    rng = np.random.default_rng([seed, 61])
    g = t.Graph()
    _, x = t._quantized_input(g, rng, (12, 6, 1), int8=True)
    inp = x
    x, shape = t._conv(g, rng, x, (12, 6, 1), 4, (5, 3), 2, True, True, t.ACTS[1])
    x, shape = t._depthwise(g, rng, x, shape, 1, (1, 3), (1, 2), 1, True, True, t.ACTS[2])
    assert shape == (6, 2, 4)
    x, shape = t._avg_pool(g, x, shape, shape[:2], 1, False, t.ACTS[0])
    flat, features = t._flatten(g, x, shape)
    z = t._softmax(g, t._fc(g, rng, flat, features, 5, True, t.ACTS[0]), (5,))
    path = tmp_path / "kws.tflite"
    path.write_bytes(g.model([inp], [z]))
    plan = compile_model(path, tmp_path / "kws", NPU_DEMO)
    assert plan["input"]["dtype"] == plan["output"]["dtype"] == "int8"
    assert plan["output"]["softmax"] is not None
    assert [layer["op"] for layer in plan["layers"]] == ["Conv", "Conv", "AveragePool", "Conv"]
    assert plan["layers"][1]["stride"] == [1, 2] and plan["layers"][1]["tiles"] == 6
    xs = rng.integers(-128, 128, (4, 12, 6, 1)).astype(np.int8)
    r = infer(tmp_path / "kws", xs, engine="verilator", check=True,
              build_root=ROOT / "build" / "cocotb", seed=seed)
    assert r.checked and r.runtime == "LiteRT" and r.mismatches == [], r.mismatches[:10]
    assert r.outputs.dtype == np.int8 and r.outputs.shape == (4, 5)
    assert all(c == plan["predicted_cycles"] for c in r.cycles), (r.cycles, plan["layers"])
    print(f"rectangular int8 network: {r.cycles[0]} cycles/image (plan "
          f"{plan['predicted_cycles']})")
