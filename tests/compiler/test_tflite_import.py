"""The TFLite frontend against LiteRT's default path (XNNPACK) on this machine.

Random int8 ``.tflite`` chains are compiled, run on the ISA simulator and compared element
by element with LiteRT.

Models are written from scratch (:mod:`.tflite_models`): float input, ``QUANTIZE``,
convolutions (SAME/VALID, stride 1/2, per-channel and per-tensor weights, fused NONE/RELU/
RELU6), ``MAX_POOL_2D``, a flatten ``RESHAPE``, ``FULLY_CONNECTED``, ``DEQUANTIZE``. The
seed is pytest's ``--seed``.
"""

import json

import numpy as np
import pytest

from npugen.rtl.npu import NpuParams
from npugen.rtl.systolic.params import SystolicParams
from npugen.sim.cli import main
from npugen.sim.compiler.ir import TensorQuant
from npugen.sim.compiler.onnx_import import ModelError
from npugen.sim.compiler.quant import quantize
from npugen.sim.flow.infer import compile_model, infer

pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is in the dev install")

from .tflite_models import Graph, OpResolverType, run, tfl  # noqa: E402

# Odd lanes and a small array: convolutions run as bands, channels split across words.
NPU = NpuParams(lanes=3, act_words=2048, wgt_words=8192, acc_words=32, tab_entries=64,
                imem_words=64, systolic=SystolicParams(rows=3, cols=3))
ACTS = [tfl.ActivationFunctionType.NONE, tfl.ActivationFunctionType.RELU,
        tfl.ActivationFunctionType.RELU6]


def _quant(rng):
    return np.float32(rng.uniform(0.01, 0.08)), int(rng.integers(-128, 128))


def _conv(g, rng, x, shape, cout, k, stride, same, per_channel, act):
    h, w, cin = shape
    s_in = g.tensors[x].quantization.scale[0]
    s_w = rng.uniform(0.002, 0.02, cout if per_channel else 1).astype(np.float32)
    weights = rng.integers(-127, 128, (cout, k, k, cin))
    bias = rng.integers(-3000, 3000, cout)
    wt = g.tensor([cout, k, k, cin], np.int8, s_w, 0, data=weights)
    bt = g.tensor([cout], np.int32, np.float32(s_in) * s_w, 0,
                  data=bias)
    if same:
        oh, ow = -(-h // stride), -(-w // stride)
    else:
        oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    s_out, zp = _quant(rng)
    y = g.tensor([1, oh, ow, cout], np.int8, s_out * 4, zp)
    o = tfl.Conv2DOptionsT()
    o.padding = tfl.Padding.SAME if same else tfl.Padding.VALID
    o.strideH = o.strideW = stride
    o.dilationHFactor = o.dilationWFactor = 1
    o.fusedActivationFunction = act
    g.op("CONV_2D", [x, wt, bt], [y], o)
    return y, (oh, ow, cout)


def _network(rng, per_channel):
    """Return a random chain: conv, conv (stride 2 or max-pool), flatten, fully connected."""
    g = Graph()
    h = int(rng.integers(5, 10))
    c = int(rng.integers(1, 6))
    xf = g.tensor([1, h, h, c], np.float32, name="image")
    s, zp = _quant(rng)
    x = g.tensor([1, h, h, c], np.int8, s, zp)
    g.op("QUANTIZE", [xf], [x])
    x, shape = _conv(g, rng, x, (h, h, c), int(rng.integers(1, 9)), 3, 1,
                     bool(rng.integers(2)), per_channel, ACTS[rng.integers(3)])
    if rng.integers(2):
        x, shape = _conv(g, rng, x, shape, int(rng.integers(1, 9)), int(rng.integers(1, 4)),
                         2, True, per_channel, ACTS[rng.integers(3)])
    else:
        o = tfl.Pool2DOptionsT()
        o.padding, o.strideH, o.strideW = tfl.Padding.SAME, 2, 2
        o.filterHeight = o.filterWidth = 2
        q = g.tensors[x].quantization
        y = g.tensor([1, -(-shape[0] // 2), -(-shape[1] // 2), shape[2]], np.int8,
                     q.scale[0], q.zeroPoint[0])
        g.op("MAX_POOL_2D", [x], [y], o)
        x, shape = y, (-(-shape[0] // 2), -(-shape[1] // 2), shape[2])
    q = g.tensors[x].quantization
    features = int(np.prod(shape))
    flat = g.tensor([1, features], np.int8, q.scale[0], q.zeroPoint[0])
    new = g.tensor([2], np.int32, data=[1, features])
    o = tfl.ReshapeOptionsT()
    o.newShape = [1, features]
    g.op("RESHAPE", [x, new], [flat], o)
    n = int(rng.integers(2, 12))
    s_w = rng.uniform(0.002, 0.02, n if per_channel else 1).astype(np.float32)
    wt = g.tensor([n, features], np.int8, s_w, 0, data=rng.integers(-127, 128, (n, features)))
    bt = g.tensor([n], np.int32, np.float32(q.scale[0]) * s_w, 0,
                  data=rng.integers(-3000, 3000, n))
    s_out, zp = _quant(rng)
    y = g.tensor([1, n], np.int8, s_out * 8, zp)
    o = tfl.FullyConnectedOptionsT()
    o.fusedActivationFunction = ACTS[rng.integers(3)]
    g.op("FULLY_CONNECTED", [flat, wt, bt], [y], o)
    out = g.tensor([1, n], np.float32, name="logits")
    g.op("DEQUANTIZE", [y], [out])
    return g.model([xf], [out]), (h, h, c)


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
def test_random_chains_match_litert(tmp_path, seed, per_channel):
    rng = np.random.default_rng([seed, per_channel])
    for n in range(3):
        model, shape = _network(rng, per_channel)
        path = tmp_path / f"m{n}.tflite"
        path.write_bytes(model)
        plan = compile_model(path, tmp_path / f"c{n}", NPU)
        # XNNPACK's arithmetic (test_litert_rounding.py and test_quantize_follows_xnnpack
        # measure it; random layers rarely tell the roundings apart)
        assert plan["mode"] == "ort" and plan["input"]["quantize"] == "mul_inverse"
        x = rng.uniform(-2.5, 2.5, (6, *shape)).astype(np.float32)
        r = infer(tmp_path / f"c{n}", x, check=True)
        assert r.checked and r.runtime == "LiteRT"
        assert not r.mismatches, (f"model {n}: {len(r.mismatches)} of {r.outputs.size} "
                                  f"differ from LiteRT, first {r.mismatches[:3]}")
        # the int8 outputs too (the dequantized check could hide a constant offset)
        raw = infer(tmp_path / f"c{n}", x, raw=True).outputs.astype(np.int64)
        assert raw.std() > 0 or n > 0


def test_quantize_follows_xnnpack(seed):
    """QUANTIZE multiplies by the float32 reciprocal; inputs next to rounding ties."""
    rng = np.random.default_rng(seed)
    g = Graph()
    s, zp = np.float32(rng.uniform(0.003, 0.2)), int(rng.integers(-128, 128))
    a = g.tensor([1, 4096], np.float32)
    b = g.tensor([1, 4096], np.int8, s, zp)
    g.op("QUANTIZE", [a], [b])
    x = (np.float32(rng.integers(-300, 300, 4096) + 0.5) * s).astype(np.float32)
    x = np.nextafter(x, np.where(rng.random(4096) < 0.5, np.inf, -np.inf).astype(np.float32))
    got = run(g.model([a], [b]), x[None])[0]
    want = quantize(x, TensorQuant(float(s), zp), "mul_inverse")
    assert np.array_equal(got, want)
    # the onnxruntime rule differs on these inputs: the test tells the two apart
    assert (quantize(x, TensorQuant(float(s), zp), "div") != got).any()
    assert (run(g.model([a], [b]), x[None], OpResolverType.AUTO)[0] == got).all()


def test_unsupported_operator_is_named(tmp_path):
    g = Graph()
    a = g.tensor([1, 4], np.float32)
    b = g.tensor([1, 4], np.int8, 0.1, 0)
    c = g.tensor([1, 4], np.int8, 0.1, 0)
    g.op("QUANTIZE", [a], [b])
    g.op("SOFTMAX", [b], [c], tfl.SoftmaxOptionsT())
    path = tmp_path / "m.tflite"
    path.write_bytes(g.model([a], [c]))
    with pytest.raises(ModelError, match="operator SOFTMAX is not supported"):
        compile_model(path, tmp_path / "out", NPU)
    assert not (tmp_path / "out").exists()


def test_malformed_file_is_refused(tmp_path):
    path = tmp_path / "bad.tflite"
    path.write_bytes(b"\x10\x00\x00\x00TFL3" + bytes(range(200)))
    with pytest.raises(ModelError, match="not a valid TFLite model"):
        compile_model(path, tmp_path / "out", NPU)
    path.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a TFLite model"):
        compile_model(path, tmp_path / "out", NPU)


def test_cli_compile_and_check(tmp_path, capsys, seed):
    rng = np.random.default_rng(seed)
    model, shape = _network(rng, True)
    path = tmp_path / "net.tflite"
    path.write_bytes(model)
    folder = tmp_path / "net"
    assert main(["compile", str(path), "-o", str(folder), "--lanes", "4", "--systolic-rows", "4",
                 "--systolic-cols", "4"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["model.tflite", "plan.json",
                                                       "program.npup"]
    plan = json.loads((folder / "plan.json").read_text())
    assert plan["output"]["layout"] == "flat" and plan["input"]["layout"] == "hwc"
    x = rng.uniform(-2, 2, (4, *shape)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    capsys.readouterr()
    code = main(["infer", str(folder), "--input", str(tmp_path / "x.npy"), "-o",
                 str(tmp_path / "y.npy"), "--check"])
    out = capsys.readouterr().out
    assert code == 0, out
    n = plan["output"]["shape_hwc"][2]
    assert f"check: 0 of {4 * n} elements differ from LiteRT (bit-exact)" in out, out
    assert np.load(tmp_path / "y.npy").shape == (4, n)
