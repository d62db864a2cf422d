"""The TFLite frontend against LiteRT's default path (XNNPACK) on this machine.

Random int8 ``.tflite`` chains are compiled, run on the ISA simulator and compared element
by element with LiteRT.

Models are written from scratch (:mod:`.tflite_models`): float input, ``QUANTIZE``,
convolutions (SAME/VALID, stride 1/2, per-channel and per-tensor weights, fused NONE/RELU/
RELU6), ``MAX_POOL_2D``, a flatten ``RESHAPE``, ``FULLY_CONNECTED``, ``DEQUANTIZE``. The
seed is pytest's ``--seed``.
"""

import dataclasses
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

from .tflite_models import Graph, fc_model, run, tfl  # noqa: E402

# Odd lanes and a small array: convolutions run as bands, channels split across words.
NPU = NpuParams(lanes=3, act_words=2048, wgt_words=8192, acc_words=32, tab_entries=64,
                imem_words=64, systolic=SystolicParams(rows=3, cols=3))
ACTS = [tfl.ActivationFunctionType.NONE, tfl.ActivationFunctionType.RELU,
        tfl.ActivationFunctionType.RELU6, tfl.ActivationFunctionType.RELU_N1_TO_1]


def _quant(rng):
    return np.float32(rng.uniform(0.01, 0.08)), int(rng.integers(-128, 128))


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


def _window(k, dilation, shape, stride, same):
    """``((kh, kw), output (oh, ow))`` of window ``k`` at ``stride`` (ints or pairs)."""
    (kh, kw), (sh, sw) = _pair(k), _pair(stride)
    h, w = shape[:2]
    if same:
        return (kh, kw), (-(-h // sh), -(-w // sw))
    reach_h, reach_w = (kh - 1) * dilation + 1, (kw - 1) * dilation + 1
    return (kh, kw), ((h - reach_h) // sh + 1, (w - reach_w) // sw + 1)


def _conv(g, rng, x, shape, cout, k, stride, same, per_channel, act, dilation=1):
    """Add a CONV_2D with window ``k`` and ``stride`` (ints or pairs); return it and its shape."""
    cin = shape[2]
    (kh, kw), (oh, ow) = _window(k, dilation, shape, stride, same)
    s_in = g.tensors[x].quantization.scale[0]
    s_w = rng.uniform(0.002, 0.02, cout if per_channel else 1).astype(np.float32)
    weights = rng.integers(-127, 128, (cout, kh, kw, cin))
    bias = rng.integers(-3000, 3000, cout)
    wt = g.tensor([cout, kh, kw, cin], np.int8, s_w, 0, data=weights)
    bt = g.tensor([cout], np.int32, np.float32(s_in) * s_w, 0,
                  data=bias)
    s_out, zp = _quant(rng)
    y = g.tensor([1, oh, ow, cout], np.int8, s_out * 4, zp)
    o = tfl.Conv2DOptionsT()
    o.padding = tfl.Padding.SAME if same else tfl.Padding.VALID
    o.strideH, o.strideW = _pair(stride)
    o.dilationHFactor = o.dilationWFactor = dilation
    o.fusedActivationFunction = act
    g.op("CONV_2D", [x, wt, bt], [y], o)
    return y, (oh, ow, cout)


def _quantized_input(g, rng, shape, int8=False):
    """Add the float input ``(1, *shape)`` and its QUANTIZE; return both tensors.

    ``int8``: the graph input is the int8 tensor itself (returned twice).
    """
    s, zp = _quant(rng)
    if int8:
        x = g.tensor([1, *shape], np.int8, s, zp, name="image")
        return x, x
    xf = g.tensor([1, *shape], np.float32, name="image")
    x = g.tensor([1, *shape], np.int8, s, zp)
    g.op("QUANTIZE", [xf], [x])
    return xf, x


def _flatten(g, x, shape):
    q = g.tensors[x].quantization
    features = int(np.prod(shape))
    flat = g.tensor([1, features], np.int8, q.scale[0], q.zeroPoint[0])
    new = g.tensor([2], np.int32, data=[1, features])
    o = tfl.ReshapeOptionsT()
    o.newShape = [1, features]
    g.op("RESHAPE", [x, new], [flat], o)
    return flat, features


def _fc(g, rng, x, features, n, per_channel, act, out_scale=None, out_zp=None):
    s_in = g.tensors[x].quantization.scale[0]
    s_w = rng.uniform(0.002, 0.02, n if per_channel else 1).astype(np.float32)
    wt = g.tensor([n, features], np.int8, s_w, 0, data=rng.integers(-127, 128, (n, features)))
    bt = g.tensor([n], np.int32, np.float32(s_in) * s_w, 0,
                  data=rng.integers(-3000, 3000, n))
    s_out, zp = _quant(rng)
    y = g.tensor([1, n], np.int8, out_scale or s_out * 8, zp if out_zp is None else out_zp)
    o = tfl.FullyConnectedOptionsT()
    o.fusedActivationFunction = act
    g.op("FULLY_CONNECTED", [x, wt, bt], [y], o)
    return y


def _softmax(g, x, shape, beta=1.0, quant=(1 / 256, -128)):
    """Add ``SOFTMAX`` on ``x`` (int8 output at LiteRT's required 1/256, -128)."""
    y = g.tensor([1, *shape], np.int8, *quant)
    o = tfl.SoftmaxOptionsT()
    o.beta = beta
    g.op("SOFTMAX", [x], [y], o)
    return y


def _network(rng, per_channel, tail, int8_in=False, int8_out=False, softmax=False):
    """Return ``(model, input shape)``: a random chain.

    conv -> (conv stride 2 | max-pool) -> tail; ``tail``: ``fc`` (flatten, then a fully
    connected layer; the map may be rectangular), ``fc4d`` (fully connected straight on
    the map), ``map`` (the map is the output, NHWC) or ``flat`` (the flattened map is the
    output). ``int8_in``/``int8_out``: the graph's input/output is the int8 tensor (no
    QUANTIZE/DEQUANTIZE), as the converter writes with ``inference_input_type=tf.int8``;
    ``softmax``: a SOFTMAX (random beta) ends the network.
    """
    g = Graph()
    h, w = (int(v) for v in rng.integers(5, 10, 2))
    c = int(rng.integers(1, 6))
    xf, x = _quantized_input(g, rng, (h, w, c), int8=int8_in)
    x, shape = _conv(g, rng, x, (h, w, c), int(rng.integers(1, 9)), 3, 1,
                     bool(rng.integers(2)), per_channel, ACTS[rng.integers(len(ACTS))])
    if rng.integers(2):
        x, shape = _conv(g, rng, x, shape, int(rng.integers(1, 9)), int(rng.integers(1, 4)),
                         2, True, per_channel, ACTS[rng.integers(len(ACTS))])
    else:
        o = tfl.Pool2DOptionsT()
        o.padding, o.strideH, o.strideW = tfl.Padding.SAME, 2, 2
        o.filterHeight = o.filterWidth = 2
        q = g.tensors[x].quantization
        y = g.tensor([1, -(-shape[0] // 2), -(-shape[1] // 2), shape[2]], np.int8,
                     q.scale[0], q.zeroPoint[0])
        g.op("MAX_POOL_2D", [x], [y], o)
        x, shape = y, (-(-shape[0] // 2), -(-shape[1] // 2), shape[2])
    out_shape = [1, *shape]
    if tail in ("fc", "flat"):
        x, features = _flatten(g, x, shape)
        out_shape = [1, features]
    if tail in ("fc", "fc4d"):
        n = int(rng.integers(2, 12))
        x = _fc(g, rng, x, int(np.prod(shape)), n, per_channel,
                ACTS[rng.integers(len(ACTS))])
        out_shape = [1, n]
    if softmax:
        x = _softmax(g, x, out_shape[1:], float(rng.choice([1.0, rng.uniform(0.2, 2.0)])))
    if int8_out:
        return g.model([xf], [x]), (h, w, c)
    out = g.tensor(out_shape, np.float32, name="out")
    g.op("DEQUANTIZE", [x], [out])
    return g.model([xf], [out]), (h, w, c)


def _residual(rng, per_channel, op="ADD"):
    """Return ``(model, input shape)``: two residual blocks, the first adding the input.

    ``op``: ``ADD`` or ``SUB`` (the block's input minus its convolution, then two
    convolutions' difference).
    """
    g = Graph()
    h, w = (int(v) for v in rng.integers(3, 8, 2))
    c = int(rng.integers(1, 7))
    xf, x = _quantized_input(g, rng, (h, w, c))
    shape = (h, w, c)
    for block in range(2):
        y, _ = _conv(g, rng, x, shape, c, 3, 1, True, per_channel,
                     ACTS[rng.integers(len(ACTS))])
        if block:  # the second block adds two convolutions of one input
            y2, _ = _conv(g, rng, x, shape, c, 1, 1, True, per_channel,
                          ACTS[rng.integers(len(ACTS))])
            x = y2
        s_out, zp = _quant(rng)
        out = g.tensor([1, h, w, c], np.int8, s_out * 2, zp)
        o = tfl.AddOptionsT() if op == "ADD" else tfl.SubOptionsT()
        o.fusedActivationFunction = ACTS[rng.integers(len(ACTS))]
        g.op(op, [x, y], [out], o)
        x = out
    flat, features = _flatten(g, x, shape)
    y = _fc(g, rng, flat, features, int(rng.integers(2, 9)), per_channel,
            ACTS[rng.integers(len(ACTS))])
    out = g.tensor(g.tensors[y].shape, np.float32)
    g.op("DEQUANTIZE", [y], [out])
    return g.model([xf], [out]), shape


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
def test_residual_networks_match_litert(tmp_path, seed, per_channel):
    """ADD (XNNPACK's integer add, the NPU's ADD mode 1) in residual graphs.

    Each ADD has a random fused activation (the clamp every ADD mode applies last).
    """
    rng = np.random.default_rng([seed, per_channel, 7])
    for n in range(3):
        model, shape = _residual(rng, per_channel)
        x = rng.uniform(-2.5, 2.5, (8, *shape)).astype(np.float32)
        _, plan = _compare(tmp_path, f"r{n}", model, x)
        adds = [layer for layer in plan["layers"] if layer["op"] == "Add"]
        assert len(adds) == 2 and all(a["rounding"].startswith("xnnpack") for a in adds)
        assert adds[0]["reads"][0] == -1  # the first block adds the network input


def test_add_refusals(tmp_path):
    g = Graph()
    xf = g.tensor([1, 2, 2, 3], np.float32)
    x = g.tensor([1, 2, 2, 3], np.int8, 0.05, 0)
    g.op("QUANTIZE", [xf], [x])
    y = g.tensor([1, 2, 2, 3], np.int8, 0.1, 0)
    o = tfl.AddOptionsT()
    o.fusedActivationFunction = tfl.ActivationFunctionType.TANH
    g.op("ADD", [x, x], [y], o)
    out = g.tensor([1, 2, 2, 3], np.float32)
    g.op("DEQUANTIZE", [y], [out])
    path = tmp_path / "m.tflite"
    path.write_bytes(g.model([xf], [out]))
    with pytest.raises(ModelError, match="fused activation .* is not supported"):
        compile_model(path, tmp_path / "out", NPU)


def _compare(tmp_path, name, model, x, p=NPU):
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(model)
    plan = compile_model(path, tmp_path / name, p)
    # XNNPACK's arithmetic (test_litert_rounding.py and test_quantize_follows_xnnpack
    # measure it; random layers rarely tell the roundings apart)
    assert plan["mode"] == "ort" and plan["input"]["quantize"] == "mul_inverse"
    r = infer(tmp_path / name, x, check=True)
    assert r.checked and r.runtime == "LiteRT"
    assert not r.mismatches, (f"{name}: {len(r.mismatches)} of {r.outputs.size} differ "
                              f"from LiteRT, first {r.mismatches[:3]}")
    return r, plan


@pytest.mark.parametrize("tail", ["fc", "fc4d", "map", "flat"])
@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
def test_random_chains_match_litert(tmp_path, seed, per_channel, tail):
    rng = np.random.default_rng([seed, per_channel, len(tail)])
    for n in range(2):
        model, shape = _network(rng, per_channel, tail)
        x = rng.uniform(-2.5, 2.5, (6, *shape)).astype(np.float32)
        r, plan = _compare(tmp_path, f"m{n}", model, x)
        layout = {"fc": "flat_hwc", "fc4d": "flat_hwc", "map": "hwc", "flat": "flat_hwc"}
        assert plan["output"]["layout"] == layout[tail]
        assert r.outputs.shape[0] == 6 and r.outputs.ndim == (4 if tail == "map" else 2)


def _depthwise(g, rng, x, shape, multiplier, k, stride, dilation, same, per_channel, act):
    cin = shape[2]
    cout = cin * multiplier
    s_in = g.tensors[x].quantization.scale[0]
    s_w = rng.uniform(0.002, 0.02, cout if per_channel else 1).astype(np.float32)
    (kh, kw), (oh, ow) = _window(k, dilation, shape, stride, same)
    wt = g.tensor([1, kh, kw, cout], np.int8, s_w, 0,
                  data=rng.integers(-127, 128, (1, kh, kw, cout)), axis=3)
    bt = g.tensor([cout], np.int32, np.float32(s_in) * s_w, 0,
                  data=rng.integers(-3000, 3000, cout))
    s_out, zp = _quant(rng)
    y = g.tensor([1, oh, ow, cout], np.int8, s_out * 2, zp)
    o = tfl.DepthwiseConv2DOptionsT()
    o.padding = tfl.Padding.SAME if same else tfl.Padding.VALID
    o.strideH, o.strideW = _pair(stride)
    o.depthMultiplier = multiplier
    o.dilationHFactor = o.dilationWFactor = dilation
    o.fusedActivationFunction = act
    g.op("DEPTHWISE_CONV_2D", [x, wt, bt], [y], o)
    return y, (oh, ow, cout)


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
def test_depthwise_and_dilated_match_litert(tmp_path, seed, per_channel):
    """DEPTHWISE_CONV_2D and a dilated CONV_2D, every output exact.

    Depthwise: multiplier 1 or 2, dilation 1..3, SAME/VALID, stride 1/2. The NPU runs both
    as dense convolutions with zero weights.
    """
    rng = np.random.default_rng([seed, per_channel, 11])
    for n in range(3):
        g = Graph()
        h, w = (int(v) for v in rng.integers(7, 11, 2))
        c = int(rng.integers(1, 5))
        xf, x = _quantized_input(g, rng, (h, w, c))
        dilation = int(rng.integers(1, 4))
        same = bool(rng.integers(2))
        x, shape = _depthwise(g, rng, x, (h, w, c), int(rng.integers(1, 3)), 3,
                              int(rng.integers(1, 3)), dilation, same, per_channel,
                              ACTS[rng.integers(len(ACTS))])
        print(f"model {n}: input {(h, w, c)}, depthwise dilation {dilation}, same {same} "
              f"-> {shape}")
        # a 3x3 CONV_2D, dilation 2, SAME padding
        x, shape = _conv(g, rng, x, shape, int(rng.integers(1, 5)), 3, 1, True, per_channel,
                         ACTS[rng.integers(len(ACTS))], dilation=2)
        out = g.tensor([1, *shape], np.float32)
        g.op("DEQUANTIZE", [x], [out])
        _compare(tmp_path, f"dw{n}", g.model([xf], [out]),
                 rng.uniform(-2.5, 2.5, (6, h, w, c)).astype(np.float32))


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
def test_rectangular_kernels_match_litert(tmp_path, seed, per_channel):
    """CONV_2D and DEPTHWISE_CONV_2D with kh != kw: square windows with zero weights.

    Windows 1..5 x 1..5 (never square), SAME/VALID, stride 1/2, dilation 1/2; the plan
    counts the source layer's MACs, not the square window's.
    """
    rng = np.random.default_rng([seed, per_channel, 53])
    for n in range(3):
        g = Graph()
        h, w = (int(v) for v in rng.integers(9, 13, 2))  # a VALID 5 x 5 at dilation 2 fits
        c = int(rng.integers(1, 5))
        xf, x = _quantized_input(g, rng, (h, w, c))
        kh, kw = (int(v) for v in rng.choice(np.arange(1, 6), 2, replace=False))
        dilation, same, stride = int(rng.integers(1, 3)), bool(rng.integers(2)), int(
            rng.integers(1, 3))
        cout = int(rng.integers(1, 7))
        x, shape = _conv(g, rng, x, (h, w, c), cout, (kh, kw), stride, same, per_channel,
                         ACTS[rng.integers(len(ACTS))], dilation=dilation)
        dk = (kw, kh)  # the depthwise window the other way round
        x, shape2 = _depthwise(g, rng, x, shape, int(rng.integers(1, 3)), dk, 1, 1, True,
                               per_channel, ACTS[rng.integers(len(ACTS))])
        print(f"model {n}: input {(h, w, c)}, conv {kh}x{kw} stride {stride} dilation "
              f"{dilation} same {same} -> {shape}, depthwise {dk} -> {shape2}")
        out = g.tensor([1, *shape2], np.float32)
        g.op("DEQUANTIZE", [x], [out])
        _, plan = _compare(tmp_path, f"rect{n}", g.model([xf], [out]),
                           rng.uniform(-2.5, 2.5, (6, h, w, c)).astype(np.float32))
        conv, dw = plan["layers"]
        assert conv["kernel"] == (max(kh, kw) - 1) * dilation + 1  # dilated, then square
        assert dw["kernel"] == max(kh, kw)
        assert conv["macs"] == shape[0] * shape[1] * cout * c * kh * kw
        assert dw["macs"] == shape2[0] * shape2[1] * shape2[2] * kh * kw


def _max_pool(g, x, shape, k, stride, same):
    """Add ``MAX_POOL_2D`` (window ``k`` x ``k``, ``stride`` an int or a pair) on ``x``."""
    q = g.tensors[x].quantization
    _, (oh, ow) = _window(k, 1, shape, stride, same)
    y = g.tensor([1, oh, ow, shape[2]], np.int8, q.scale[0], q.zeroPoint[0])
    o = tfl.Pool2DOptionsT()
    o.padding = tfl.Padding.SAME if same else tfl.Padding.VALID
    o.strideH, o.strideW = _pair(stride)
    o.filterHeight = o.filterWidth = k
    g.op("MAX_POOL_2D", [x], [y], o)
    return y, (oh, ow, shape[2])


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
def test_unequal_strides_match_litert(tmp_path, seed, per_channel):
    """Strides (rows, columns) that differ: CONV_2D, then DEPTHWISE, MAX_POOL or AVERAGE_POOL.

    Every layer's strides are two different values of 1..3 (SAME or VALID, windows 1..5 x
    1..5 for the CONV_2D); the NPU runs each such layer as one instruction per output row.
    """
    rng = np.random.default_rng([seed, per_channel, 61])
    for n, kind in enumerate(("depthwise", "maxpool", "avgpool")):
        g = Graph()
        # (11: a VALID 5-wide window at stride 3 leaves 3, room for a VALID 3x3 pool)
        h, w = (int(v) for v in rng.integers(11, 18, 2))
        c = int(rng.integers(1, 5))
        xf, x = _quantized_input(g, rng, (h, w, c))

        def strides():
            return tuple(int(v) for v in rng.choice(np.arange(1, 4), 2, replace=False))

        k, s1, same = tuple(int(v) for v in rng.integers(1, 6, 2)), strides(), bool(
            rng.integers(2))
        x, shape = _conv(g, rng, x, (h, w, c), int(rng.integers(1, 7)), k, s1, same,
                         per_channel, ACTS[rng.integers(len(ACTS))])
        s2, k2 = strides(), int(rng.integers(2, 4))
        if kind == "depthwise":
            x, shape2 = _depthwise(g, rng, x, shape, int(rng.integers(1, 3)), 3, s2, 1,
                                   True, per_channel, ACTS[rng.integers(len(ACTS))])
        elif kind == "maxpool":
            x, shape2 = _max_pool(g, x, shape, k2, s2, bool(rng.integers(2)))
        else:  # VALID: no window overhangs the map
            x, shape2 = _avg_pool(g, x, shape, k2, s2, False, ACTS[rng.integers(len(ACTS))])
        print(f"model {n}: input {(h, w, c)}, conv {k} strides {s1} same {same} -> {shape}, "
              f"{kind} strides {s2} -> {shape2}")
        out = g.tensor([1, *shape2], np.float32)
        g.op("DEQUANTIZE", [x], [out])
        _, plan = _compare(tmp_path, f"strides{n}", g.model([xf], [out]),
                           rng.uniform(-2.5, 2.5, (6, h, w, c)).astype(np.float32))
        conv, second = plan["layers"]
        assert conv["stride"] == list(s1) and conv["tiles"] == shape[0], conv
        assert second["stride"] == list(s2) and second["tiles"] == shape2[0], second


def test_keyword_spotting_network_matches_litert(tmp_path, seed):
    """A DS-CNN keyword spotter's shape (MLPerf Tiny's KWS, narrowed): 49 x 10 MFCCs.

    CONV_2D 10x4 stride 2 SAME -> DEPTHWISE 3x3 -> CONV 1x1 -> AVERAGE_POOL_2D over the
    whole 25 x 5 map (a rectangular window) -> RESHAPE -> FULLY_CONNECTED 12 -> SOFTMAX
    (on the host).
    """
    rng = np.random.default_rng([seed, 59])
    g = Graph()
    xf, x = _quantized_input(g, rng, (49, 10, 1))
    relu = tfl.ActivationFunctionType.RELU
    x, shape = _conv(g, rng, x, (49, 10, 1), 8, (10, 4), 2, True, True, relu)
    x, shape = _depthwise(g, rng, x, shape, 1, 3, 1, 1, True, True, relu)
    x, shape = _conv(g, rng, x, shape, 8, 1, 1, True, True, relu)
    assert shape == (25, 5, 8)
    x, shape = _avg_pool(g, x, shape, (25, 5), 1, False, tfl.ActivationFunctionType.NONE)
    x, features = _flatten(g, x, shape)
    x = _fc(g, rng, x, features, 12, True, tfl.ActivationFunctionType.NONE)
    x = _softmax(g, x, (12,))
    out = g.tensor([1, 12], np.float32)
    g.op("DEQUANTIZE", [x], [out])
    _, plan = _compare(tmp_path, "kws", g.model([xf], [out]),
                       rng.uniform(-2.5, 2.5, (6, 49, 10, 1)).astype(np.float32))
    assert [layer["op"] for layer in plan["layers"]] == ["Conv", "Conv", "Conv",
                                                         "AveragePool", "Conv"]
    assert plan["layers"][0]["kernel"] == 10 and plan["layers"][3]["engine"] == "pool"


def _pad(g, x, shape, pads, value=None):
    """Add ``PAD`` (or ``PADV2`` with int8 ``value``) of ``(top, left, bottom, right)``."""
    q = g.tensors[x].quantization
    t, left, b, r = pads
    h, w, c = shape
    y = g.tensor([1, h + t + b, w + left + r, c], np.int8, q.scale[0], q.zeroPoint[0])
    paddings = g.tensor([4, 2], np.int32, data=[[0, 0], [t, b], [left, r], [0, 0]])
    if value is None:
        g.op("PAD", [x, paddings], [y], tfl.PadOptionsT())
    else:
        v = g.tensor([1], np.int8, q.scale[0], q.zeroPoint[0], data=[value])
        g.op("PADV2", [x, paddings, v], [y], tfl.PadV2OptionsT())
    return y, (h + t + b, w + left + r, c)


def test_pad_folds_into_convolutions(tmp_path, seed):
    """PAD/PADV2 (zero point) before CONV_2D and DEPTHWISE_CONV_2D: one padding, exact.

    Keras's ZeroPadding2D before a VALID stride-2 depthwise convolution (MobileNet's
    pattern: pads (0, 0, 1, 1)), random pads before SAME or VALID convolutions, PADV2 with
    the zero point as its value. Compared with LiteRT on uniform int8 inputs.
    """
    rng = np.random.default_rng([seed, 67])
    for n in range(4):
        g = Graph()
        # At least 6: the stride-2 depthwise convolution leaves at least 3 rows and columns,
        # so a VALID 3x3 convolution without padding still has an output (5 left 2).
        h, w = (int(v) for v in rng.integers(6, 10, 2))
        c = int(rng.integers(1, 5))
        xf, x = _quantized_input(g, rng, (h, w, c))
        x0, zp = x, int(g.tensors[x].quantization.zeroPoint[0])
        x, shape = _pad(g, x, (h, w, c), (0, 0, 1, 1), value=zp if n % 2 else None)
        x, shape = _depthwise(g, rng, x, shape, 1, 3, 2, 1, False, True, ACTS[1])
        same = bool(rng.integers(2))  # SAME pads 0..1 per side: with PAD's, below 3
        pads = tuple(int(v) for v in rng.integers(0, 2 if same else 3, 4))
        x, shape = _pad(g, x, shape, pads)
        x, shape = _conv(g, rng, x, shape, int(rng.integers(1, 6)), 3, int(rng.integers(1, 3)),
                         same, True, ACTS[0])
        out = g.tensor([1, *shape], np.float32)
        g.op("DEQUANTIZE", [x], [out])
        _, plan = _compare(tmp_path, f"pad{n}", g.model([xf], [out]),
                           _int8_inputs(g, x0, rng, (8, h, w, c)))
        assert [layer["op"] for layer in plan["layers"]] == ["Conv", "Conv"]
        assert plan["layers"][0]["pads"] == [0, 0, 1, 1]


def test_pad_beyond_the_window_is_refused(tmp_path):
    """A PAD that, with the convolution's own padding, reaches the window's size: refused.

    The last windows would start in the padding (the NPU checks every window starts inside
    the input), so the compiler names the layer instead of writing a failing program.
    """
    rng = np.random.default_rng(5)
    g = Graph()
    xf, x = _quantized_input(g, rng, (5, 5, 2))
    x, shape = _pad(g, x, (5, 5, 2), (0, 0, 3, 0))
    x, shape = _conv(g, rng, x, shape, 2, 3, 1, False, False, ACTS[0])
    out = g.tensor([1, *shape], np.float32)
    g.op("DEQUANTIZE", [x], [out])
    path = tmp_path / "m.tflite"
    path.write_bytes(g.model([xf], [out]))
    with pytest.raises(ValueError, match=r"padding \(0, 0, 3, 0\) \(top, left, bottom, "
                                         r"right; .*\) must be smaller than the kernel 3 on "
                                         "every side"):
        compile_model(path, tmp_path / "out", NPU)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case, match", [
    ("pool", "reads the output of PAD"),
    ("pad_pad", "reads the output of PAD"),
    ("unread", "the output of PAD 't2' is never used"),
    ("channels", "only non-negative padding of height and width"),
    ("value", "is not the zero point"),
])
def test_pad_refusals(tmp_path, capsys, case, match):
    g = Graph()
    xf = g.tensor([1, 4, 4, 2], np.float32)
    x = g.tensor([1, 4, 4, 2], np.int8, 0.05, 3)
    g.op("QUANTIZE", [xf], [x])
    y, shape = _pad(g, x, (4, 4, 2), (1, 1, 1, 1), value=4 if case == "value" else None)
    if case == "pad_pad":
        y, shape = _pad(g, y, shape, (1, 0, 0, 0))
    if case == "unread":  # the pool reads the input; nothing reads the PAD
        y, shape = x, (4, 4, 2)
    if case == "channels":
        buf = g.buffers[g.tensors[g.ops[-1].inputs[1]].buffer]
        buf.data = list(np.array([[0, 0], [1, 1], [1, 1], [0, 1]], np.int32).tobytes())
    o = tfl.Pool2DOptionsT()
    o.padding, o.strideH, o.strideW, o.filterHeight, o.filterWidth = (
        tfl.Padding.VALID, 1, 1, 2, 2)
    z = g.tensor([1, shape[0] - 1, shape[1] - 1, 2], np.int8, 0.05, 3)
    g.op("MAX_POOL_2D", [y], [z], o)
    out = g.tensor([1, shape[0] - 1, shape[1] - 1, 2], np.float32)
    g.op("DEQUANTIZE", [z], [out])
    _assert_refused(tmp_path, capsys, g.model([xf], [out]), match)


def test_mlp_on_a_flat_input(tmp_path, seed):
    """A 2-D ``(N, F)`` input through two fully connected layers."""
    rng = np.random.default_rng(seed)
    g = Graph()
    f = int(rng.integers(3, 40))
    xf, x = _quantized_input(g, rng, (f,))
    h = _fc(g, rng, x, f, 16, True, tfl.ActivationFunctionType.RELU)
    y = _fc(g, rng, h, 16, 5, False, tfl.ActivationFunctionType.RELU_N1_TO_1)
    out = g.tensor([1, 5], np.float32)
    g.op("DEQUANTIZE", [y], [out])
    _compare(tmp_path, "mlp", g.model([xf], [out]), rng.uniform(-3, 3, (8, f)))


@pytest.mark.parametrize("act", [tfl.ActivationFunctionType.RELU6,
                                 tfl.ActivationFunctionType.RELU_N1_TO_1])
def test_activation_bound_on_a_rounding_tie(tmp_path, seed, act):
    """6 / 0.8 = 7.5 and 1 / 0.4 = 2.5: XNNPACK rounds bound / scale + zero point."""
    rng = np.random.default_rng(seed)
    scale = np.float32(0.8 if act == tfl.ActivationFunctionType.RELU6 else 0.4)
    g = Graph()
    xf = g.tensor([1, 16], np.float32)
    x = g.tensor([1, 16], np.int8, 0.05, 0)
    g.op("QUANTIZE", [xf], [x])
    y = g.tensor([1, 24], np.int8, scale, 1)
    s_w = np.float32(0.05)
    wt = g.tensor([24, 16], np.int8, s_w, 0, data=rng.integers(-127, 128, (24, 16)))
    bt = g.tensor([24], np.int32, np.float32(0.05) * s_w, 0, data=np.zeros(24))
    o = tfl.FullyConnectedOptionsT()
    o.fusedActivationFunction = act
    g.op("FULLY_CONNECTED", [x, wt, bt], [y], o)
    out = g.tensor([1, 24], np.float32)
    g.op("DEQUANTIZE", [y], [out])
    r, _ = _compare(tmp_path, "tie", g.model([xf], [out]), rng.uniform(-6, 6, (16, 16)))
    q = np.rint(r.outputs / scale).astype(int) + 1
    assert q.max() == (8 if act == tfl.ActivationFunctionType.RELU6 else 4)  # bound reached


def test_quantize_follows_xnnpack(seed):
    """QUANTIZE multiplies by the float32 reciprocal; inputs next to rounding ties."""
    rng = np.random.default_rng(seed)
    # Draw until the onnxruntime rule (divide) and XNNPACK's (multiply by the reciprocal)
    # differ on some input, so the test tells the two apart (for about 3% of scales they
    # agree on all 4096 ties; the ties sit inside the int8 range, not in the clamp).
    for _ in range(100):
        s, zp = np.float32(rng.uniform(0.003, 0.2)), int(rng.integers(-128, 128))
        k = rng.integers(-128 - zp, 127 - zp, 4096)
        x = (np.float32(k + 0.5) * s).astype(np.float32)
        x = np.nextafter(x, np.where(rng.random(4096) < 0.5, np.inf, -np.inf).astype(np.float32))
        want = quantize(x, TensorQuant(float(s), zp), "mul_inverse")
        if (quantize(x, TensorQuant(float(s), zp), "div") != want).any():
            break
    else:
        raise AssertionError("no scale separates the two rounding rules")
    g = Graph()
    a = g.tensor([1, 4096], np.float32)
    b = g.tensor([1, 4096], np.int8, s, zp)
    g.op("QUANTIZE", [a], [b])
    got = run(g.model([a], [b]), x[None])[0]
    assert np.array_equal(got, want)


def test_unsupported_operator_is_named(tmp_path):
    g = Graph()
    a = g.tensor([1, 4], np.float32)
    b = g.tensor([1, 4], np.int8, 0.1, 0)
    c = g.tensor([1, 4], np.int8, 0.1, 0)
    g.op("QUANTIZE", [a], [b])
    g.op("TANH", [b], [c])
    path = tmp_path / "m.tflite"
    path.write_bytes(g.model([a], [c]))
    with pytest.raises(ModelError, match="operator TANH is not supported"):
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
    model, shape = _network(rng, True, "fc")
    path = tmp_path / "net.tflite"
    path.write_bytes(model)
    folder = tmp_path / "net"
    assert main(["compile", str(path), "-o", str(folder), "--lanes", "4", "--systolic-rows", "4",
                 "--systolic-cols", "4"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["model.tflite", "plan.json",
                                                       "program.npup"]
    plan = json.loads((folder / "plan.json").read_text())
    assert plan["output"]["layout"] == "flat_hwc" and plan["input"]["layout"] == "hwc"
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


@pytest.mark.parametrize("int8_in, int8_out", [(True, False), (False, True), (True, True)],
                         ids=["int8_in", "int8_out", "int8_both"])
def test_int8_graph_edges_match_litert(tmp_path, seed, int8_in, int8_out):
    """A model whose input or output is the int8 tensor: taken and returned as int8."""
    rng = np.random.default_rng([seed, int8_in, int8_out])
    for n, tail in enumerate(["fc", "map"]):
        model, shape = _network(rng, True, tail, int8_in=int8_in, int8_out=int8_out)
        x = (rng.integers(-128, 128, (5, *shape)).astype(np.int8) if int8_in
             else rng.uniform(-2.5, 2.5, (5, *shape)).astype(np.float32))
        r, plan = _compare(tmp_path, f"m{n}", model, x)
        assert plan["input"]["dtype"] == ("int8" if int8_in else "float32")
        assert plan["output"]["dtype"] == ("int8" if int8_out else "float32")
        ref = run(model, x)  # the test's own LiteRT run: int64 for an int8 output
        assert r.outputs.dtype == (np.int8 if int8_out else np.float32)
        assert r.outputs.shape == ref.shape
        if int8_out:
            np.testing.assert_array_equal(r.outputs.astype(np.int64), ref)
        else:
            assert (r.outputs.view(np.uint32) == ref.view(np.uint32)).all()
        raw = infer(tmp_path / f"m{n}", x, raw=True).outputs
        assert raw.dtype == np.int8
        if int8_out:
            np.testing.assert_array_equal(raw, r.outputs)


@pytest.mark.parametrize("tail", ["fc", "fc4d", "map", "flat"])
@pytest.mark.parametrize("int8_out", [False, True], ids=["float_out", "int8_out"])
def test_softmax_output_matches_litert(tmp_path, seed, tail, int8_out):
    """A network ending in SOFTMAX: the NPU computes the logits, the host the softmax.

    Over the features of a flat output, or the channels of each pixel of a map (``map``);
    float (DEQUANTIZE) or int8 output. Every word equal to LiteRT's; ``--raw`` gives the
    softmax's int8 words.
    """
    rng = np.random.default_rng([seed, int8_out, len(tail), 73])
    model, shape = _network(rng, True, tail, int8_out=int8_out, softmax=True)
    x = rng.uniform(-2.5, 2.5, (8, *shape)).astype(np.float32)
    r, plan = _compare(tmp_path, "sm", model, x)
    assert plan["output"]["softmax"]["input_scale"] > 0
    assert plan["output"]["quant"] == {"scale": 1 / 256, "zero_point": -128}
    probs = r.outputs.astype(np.float64) if not int8_out else (
        (r.outputs.astype(np.float64) + 128) / 256)
    # each word rounds by at most half a step of 1/256 (a sanity check; LiteRT decides)
    assert np.all(np.abs(probs.sum(-1) - 1) <= probs.shape[-1] / 512 + 1 / 256)
    raw = infer(tmp_path / "sm", x, raw=True).outputs
    assert raw.dtype == np.int8
    if int8_out:
        np.testing.assert_array_equal(raw, r.outputs)
    else:  # the softmax's words, dequantized: the float output
        np.testing.assert_array_equal(
            (raw.astype(np.float32) + 128) * np.float32(1 / 256), r.outputs)


def test_softmax_then_flatten_matches_litert(tmp_path, seed):
    """Keras's softmax on a (1, 1, 1, C) map, then a flatten to (1, C): the host's too."""
    rng = np.random.default_rng([seed, 79])
    g = Graph()
    xf, x = _quantized_input(g, rng, (3, 3, 4))
    x, shape = _conv(g, rng, x, (3, 3, 4), 6, 3, 1, False, True, ACTS[0])
    assert shape == (1, 1, 6)
    y = _softmax(g, x, shape)
    flat, _ = _flatten(g, y, shape)
    out = g.tensor([1, 6], np.float32)
    g.op("DEQUANTIZE", [flat], [out])
    _, plan = _compare(tmp_path, "smflat", g.model([xf], [out]),
                       rng.uniform(-2, 2, (8, 3, 3, 4)).astype(np.float32))
    assert plan["output"]["layout"] == "flat_hwc" and plan["output"]["softmax"]
    # a plan whose softmax is malformed is refused before anything runs
    plan["output"]["softmax"]["beta"] = -1.0
    (tmp_path / "smflat" / "plan.json").write_text(json.dumps(plan))
    with pytest.raises(ValueError, match="output.softmax.beta must be a positive float"):
        infer(tmp_path / "smflat", rng.uniform(-2, 2, (1, 3, 3, 4)).astype(np.float32))


@pytest.mark.parametrize("case, match", [
    ("inner", "reads the output of SOFTMAX"),
    ("twice", "only one SOFTMAX, at the output"),
    ("dead", "is not the graph's output"),
    ("quant", "must be quantized with scale 1/256 and zero point -128"),
    ("beta", "beta must be a positive float32, not 0.0"),
])
def test_softmax_refusals(tmp_path, capsys, case, match):
    g = Graph()
    xf = g.tensor([1, 6], np.float32)
    x = g.tensor([1, 6], np.int8, 0.05, 3)
    g.op("QUANTIZE", [xf], [x])
    y = _softmax(g, x, (6,), beta=0.0 if case == "beta" else 1.0,
                 quant=(0.1, 0) if case == "quant" else (1 / 256, -128))
    if case == "inner":  # a layer after the softmax
        y = _fc(g, np.random.default_rng(1), y, 6, 4, False, ACTS[0])
    elif case == "twice":
        _softmax(g, x, (6,))
    elif case == "dead":  # the logits are the output; the softmax is left over
        y = _fc(g, np.random.default_rng(1), x, 6, 6, False, ACTS[0])
    out = g.tensor([1, 4 if case == "inner" else 6], np.float32)
    g.op("DEQUANTIZE", [y], [out])
    _assert_refused(tmp_path, capsys, g.model([xf], [out]), match)


def test_fc_model_of_the_rounding_tests_runs_as_int8(tmp_path, seed):
    """The rounding tests' one-layer model (int8 in, int8 out) compiles and runs exactly."""
    rng = np.random.default_rng(seed)
    weights = rng.integers(-127, 128, (5, 12))
    model = fc_model(weights, rng.integers(-5000, 5000, 5), 0.03, -7,
                     rng.uniform(0.002, 0.02, 5), 0.07, 11)
    x = rng.integers(-128, 128, (20, 12)).astype(np.int8)
    r, plan = _compare(tmp_path, "fc", model, x)
    assert plan["input"]["dtype"] == plan["output"]["dtype"] == "int8"
    np.testing.assert_array_equal(r.outputs.astype(np.int64), run(model, x))


def test_cli_int8_model_input_checks(tmp_path, capsys, seed):
    rng = np.random.default_rng(seed)
    model, shape = _network(rng, False, "fc", int8_in=True, int8_out=True)
    path = tmp_path / "net.tflite"
    path.write_bytes(model)
    folder = tmp_path / "net"
    assert main(["compile", str(path), "-o", str(folder), "--lanes", "4", "--systolic-rows", "4",
                 "--systolic-cols", "4"]) == 0
    cases = {"float.npy": (np.zeros((2, *shape), np.float32),
                           "input must be int8 (the model takes int8), not float32"),
             "bool.npy": (np.zeros((2, *shape), bool),
                          "input must be int8 (the model takes int8), not bool"),
             "wide.npy": (np.full((2, *shape), 200, np.int16),
                          "input values must be int8, in [-128, 127], not [200, 200]"),
             "uint8.npy": (np.full((2, *shape), 128, np.uint8),
                           "input values must be int8, in [-128, 127], not [128, 128]")}
    for name, (data, match) in cases.items():
        np.save(tmp_path / name, data)
        capsys.readouterr()
        code = main(["infer", str(folder), "--input", str(tmp_path / name), "-o",
                     str(tmp_path / "y.npy")])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and match in err, err
        assert not (tmp_path / "y.npy").exists()
    x = rng.integers(-128, 128, (3, *shape)).astype(np.int16)  # any integer type of int8 values
    np.save(tmp_path / "x.npy", x)
    code = main(["infer", str(folder), "--input", str(tmp_path / "x.npy"), "-o",
                 str(tmp_path / "y.npy"), "--check"])
    out = capsys.readouterr().out
    assert code == 0 and "(bit-exact)" in out, out
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.int8
    np.testing.assert_array_equal(y.astype(np.int64), run(model, x.astype(np.int8)))
    # the check must see a difference: the folder's model replaced by another one (an FC
    # on the same input, as many outputs)
    g = Graph()
    _, x_in = _quantized_input(g, rng, shape, int8=True)
    flat, features = _flatten(g, x_in, shape)
    y_other = _fc(g, rng, flat, features, y.shape[1], False, ACTS[0])
    (folder / "model.tflite").write_bytes(g.model([x_in], [y_other]))
    r = infer(folder, x, check=True)
    assert r.checked and r.mismatches, "another model gave the same words"
    index, ours, ref = r.mismatches[0]
    assert isinstance(ours, int) and isinstance(ref, int) and ours == r.outputs[index] != ref
    # a plan naming another edge type is refused before anything runs
    plan = json.loads((folder / "plan.json").read_text())
    plan["input"]["dtype"] = "int16"
    (folder / "plan.json").write_text(json.dumps(plan))
    with pytest.raises(ValueError, match="input.dtype must be one of float32, int8, not "
                                         "'int16'"):
        infer(folder, x)


def _fc_graph(**change):
    """Return a QUANTIZE -> FULLY_CONNECTED -> DEQUANTIZE model with one thing broken."""
    g = Graph()
    batch = change.get("batch", 1)
    xf = g.tensor([batch, 8], np.float32)
    x = g.tensor([batch, 8], np.int8, 0.05, 0)
    g.op("QUANTIZE", [xf], [x])
    if change.get("uint8_input"):
        g.tensors[xf].type = tfl.TensorType.UINT8
    s_w = np.float32(change.get("w_scale", 0.01))
    wt = g.tensor([4, 8], np.int8, s_w, 0, data=np.ones((4, 8)))
    bt = g.tensor([4], np.int32, np.float32(0.05) * s_w, 0, data=np.zeros(4))
    y = g.tensor([batch, 4], np.int8, 0.1, 0)
    g.op("FULLY_CONNECTED", [x, wt, bt][:change.get("inputs", 3)], [y],
         tfl.FullyConnectedOptionsT())
    if change.get("bad_reshape"):
        r = g.tensor([2, 2], np.int8, 0.1, 0)
        o = tfl.ReshapeOptionsT()
        o.newShape = [2, 2]
        g.op("RESHAPE", [y, g.tensor([2], np.int32, data=[2, 2])], [r], o)
        y = r
    if change.get("no_zero_point"):
        g.tensors[y].quantization.zeroPoint = []
    shape = g.tensors[y].shape
    out = g.tensor(shape, np.float32)
    if change.get("int32_output"):  # the graph returns the int32 bias
        return g.model([xf], [bt])
    if not change.get("no_dequantize"):
        g.op("DEQUANTIZE", [y], [out])
    return g.model([xf], [out])


@pytest.mark.parametrize("change, match", [
    ({"inputs": 1}, "operator FULLY_CONNECTED: needs 2 or more inputs"),
    ({"uint8_input": True}, "input must be float32 (quantized by QUANTIZE) or int8, not uint8"),
    ({"no_dequantize": True}, "written by DEQUANTIZE, not float32 (no DEQUANTIZE writes it)"),
    ({"int32_output": True}, "must be int8 or float32 written by DEQUANTIZE, not int32"),
    ({"batch": 4}, "batch axis must be 1"),
    ({"bad_reshape": True}, "only a flatten to (1, features)"),
    ({"no_zero_point": True}, "1 scales but 0 zero points"),
    ({"w_scale": 1e-38}, "scales must be in [2**-32, 2**32]"),
], ids=["one_input", "uint8_input", "no_dequantize", "int32_output", "batch4", "reshape",
        "zero_points", "tiny_scale"])
def test_malformed_models_get_one_line(tmp_path, capsys, change, match):
    path = tmp_path / "m.tflite"
    path.write_bytes(_fc_graph(**change))
    code = main(["compile", str(path), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("npugen: error: ") and err.count("\n") == 1, err
    assert match in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_missing_options_are_named(tmp_path):
    g = Graph()
    xf = g.tensor([1, 4, 4, 1], np.float32)
    x = g.tensor([1, 4, 4, 1], np.int8, 0.05, 0)
    g.op("QUANTIZE", [xf], [x])
    y = g.tensor([1, 2, 2, 1], np.int8, 0.05, 0)
    g.op("MAX_POOL_2D", [x], [y])  # no Pool2DOptions
    out = g.tensor([1, 2, 2, 1], np.float32)
    g.op("DEQUANTIZE", [y], [out])
    path = tmp_path / "m.tflite"
    path.write_bytes(g.model([xf], [out]))
    with pytest.raises(ModelError, match="MAX_POOL_2D .*options are missing"):
        compile_model(path, tmp_path / "out", NPU)


def _add_graph(kind):
    """Return a model around one ADD; ``kind`` picks what is special about it."""
    g = Graph()
    xf = g.tensor([1, 12], np.float32)
    x = g.tensor([1, 12], np.int8, 0.05, 3)
    g.op("QUANTIZE", [xf], [x])
    rng = np.random.default_rng(5)
    h1 = _fc(g, rng, x, 12, 6, True, tfl.ActivationFunctionType.NONE, 0.2, -4)
    h2 = h1 if kind == "same" else _fc(g, rng, x, 12, 6 if kind != "broadcast" else 3, False,
                                       tfl.ActivationFunctionType.RELU, 0.1, 7)
    sc = {"ratio": 1e-4}.get(kind, 0.15)  # 0.2 / 1e-4 is beyond XNNPACK's 2**8
    inputs = {"same": [h1, h1], "three": [h1, h2, h2]}.get(kind, [h1, h2])
    y = g.tensor([1, 6], np.int8, sc, 2)
    g.op("ADD", inputs, [y], tfl.AddOptionsT())
    last = y
    if kind == "dead":  # an extra layer whose output nothing reads
        _fc(g, rng, y, 6, 4, False, tfl.ActivationFunctionType.NONE)
    out = g.tensor([1, 6], np.float32)
    g.op("DEQUANTIZE", [last], [out])
    return g.model([xf], [out])


@pytest.mark.parametrize("kind", ["flat", "same"])
def test_add_of_flat_tensors_matches_litert(tmp_path, seed, kind):
    """ADD of two fully connected outputs, and of one tensor with itself."""
    x = np.random.default_rng(seed).uniform(-3, 3, (16, 12)).astype(np.float32)
    _compare(tmp_path, kind, _add_graph(kind), x)


@pytest.mark.parametrize("kind, match", [
    ("broadcast", "broadcasting is not supported"),
    ("three", "needs two inputs"),
    ("ratio", "outside XNNPACK's range"),
    ("dead", "never used"),
])
def test_add_graph_refusals(tmp_path, capsys, kind, match):
    path = tmp_path / "m.tflite"
    path.write_bytes(_add_graph(kind))
    code = main(["compile", str(path), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and match in err, err
    assert not (tmp_path / "out").exists()



def _assert_refused(tmp_path, capsys, model, match):
    """``npugen compile`` refuses ``model``: exit 2, one line naming ``match``, no output."""
    path = tmp_path / "m.tflite"
    path.write_bytes(model)
    code = main(["compile", str(path), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and match in err, err
    assert not (tmp_path / "out").exists()


def _avg_pool(g, x, shape, k, stride, same, act, out_quant=None):
    """Add ``AVERAGE_POOL_2D`` on ``x`` (output quantized as the input unless told).

    ``k``: the window, an int or ``(kh, kw)``; ``stride`` an int or ``(rows, columns)``.
    """
    q = g.tensors[x].quantization
    c = shape[2]
    (kh, kw), (oh, ow) = _window(k, 1, shape, stride, same)
    scale, zp = out_quant or (q.scale[0], q.zeroPoint[0])
    y = g.tensor([1, oh, ow, c], np.int8, scale, zp)
    o = tfl.Pool2DOptionsT()
    o.padding = tfl.Padding.SAME if same else tfl.Padding.VALID
    o.strideH, o.strideW = _pair(stride)
    o.filterHeight, o.filterWidth = kh, kw
    o.fusedActivationFunction = act
    g.op("AVERAGE_POOL_2D", [x], [y], o)
    return y, (oh, ow, c)


def _int8_inputs(g, x, rng, shape):
    """Float inputs that quantize to uniform int8 values of the quantized input ``x``."""
    q = g.tensors[x].quantization
    ints = rng.integers(-128, 128, shape)
    return ((ints - q.zeroPoint[0]) * np.float32(q.scale[0])).astype(np.float32)


def _pool_case(rng):
    """Return ``(model, input shape, ops, x)``: QUANTIZE -> AVERAGE_POOL_2D [-> pool] -> out.

    The pool reads the quantized input straight away, so its sums are uniform int8 sums:
    a quarter of the 2 x 2 windows' means are ties, and as many of them negative.
    """
    k, stride = int(rng.integers(1, 5)), int(rng.integers(1, 4))
    same = bool(rng.integers(2)) and k <= stride  # SAME without overhang: k | size below
    size = stride * int(rng.integers(2, 4)) if same else k + stride * int(rng.integers(0, 4))
    c = int(rng.integers(1, 6))
    g = Graph()
    xf, x = _quantized_input(g, rng, (size, size, c))
    y, shape = _avg_pool(g, x, (size, size, c), k, stride, same, ACTS[rng.integers(len(ACTS))])
    ops = ["AveragePool"]
    if shape[0] > 1 and rng.integers(2):  # then a global one over the whole map
        y, shape = _avg_pool(g, y, shape, shape[0], 1, False, ACTS[rng.integers(len(ACTS))])
        ops.append("AveragePool")
    out = g.tensor([1, *shape], np.float32)
    g.op("DEQUANTIZE", [y], [out])
    return g.model([xf], [out]), (size, size, c), ops, _int8_inputs(
        g, x, rng, (8, size, size, c))


def test_average_pool_matches_litert(tmp_path, seed):
    """AVERAGE_POOL_2D: LiteRT's built-in int8 kernel, rounded mean, every window size.

    The inputs span the whole int8 range (zero points at random), so ties of both signs
    occur in every even-count window; fused activations use the built-in clamp rule.
    """
    rng = np.random.default_rng([seed, 21])
    for n in range(6):
        model, _, ops, x = _pool_case(rng)
        _, plan = _compare(tmp_path, f"p{n}", model, x)
        assert [layer["op"] for layer in plan["layers"]] == ops
        assert plan["macs"] == 0  # pooling multiplies nothing (the CONV's ones are ours)


@pytest.mark.parametrize("zp", [3, 4])
def test_average_pool_clamp_on_a_rounding_tie(tmp_path, zp):
    """RELU6 with scale 4: 6 / 4 = 1.5 is a tie; LiteRT's built-in kernel clamps at zp + 2.

    XNNPACK's rule (zero point added before rounding half to even) gives zp + 1 for an odd
    zero point: the two rules differ there (zp 3), and the pool follows the built-in one;
    zp 4 is the control, where both rules give zp + 2.
    """
    g = Graph()
    xf = g.tensor([1, 4, 4, 2], np.float32)
    x = g.tensor([1, 4, 4, 2], np.int8, 4.0, zp)
    g.op("QUANTIZE", [xf], [x])
    y, shape = _avg_pool(g, x, (4, 4, 2), 2, 2, False, tfl.ActivationFunctionType.RELU6)
    out = g.tensor([1, *shape], np.float32)
    g.op("DEQUANTIZE", [y], [out])
    x = np.random.default_rng(zp).integers(-40, 40, (16, 4, 4, 2)).astype(np.float32)
    r, plan = _compare(tmp_path, "tie", g.model([xf], [out]), x)
    table = json.loads((tmp_path / "tie" / "plan.json").read_text())["layers"][0]
    assert table["op"] == "AveragePool"
    q = np.rint(r.outputs / 4.0 + zp).astype(int)
    assert q.max() == zp + 2 and q.min() == zp  # the clamp is reached at both ends


@pytest.mark.parametrize("count", [1, 2, 3, 4, 9, 16, 25, 49, 100, 225])
def test_mean_scale_gives_the_rounded_mean(count):
    """Every sum of ``count`` int8 values: numpy float32, not the model's requantizer."""
    from npugen.sim.compiler.tflite_import import mean_scale

    s = mean_scale(count)
    t = np.arange(-128 * count, 127 * count + 1)
    got = np.rint(t.astype(np.float32) * np.float32(s)).astype(np.int64)
    # half away from zero in exact integers: floor((2|t| + count) / (2 count)) with t's sign
    want = np.sign(t) * ((2 * np.abs(t) + count) // (2 * count))
    assert np.array_equal(got, want)
    assert 1 / count <= float(s) < 1 / count * (1 + 2.0 ** -20)


@pytest.mark.parametrize("case, match", [
    ("overhang", "SAME padding here lets windows overhang"),
    ("quant", "input and output quantization must be equal"),
    ("rect", "must be square"),
])
def test_average_pool_refusals(tmp_path, capsys, case, match):
    g = Graph()
    xf = g.tensor([1, 5, 5, 2], np.float32)
    x = g.tensor([1, 5, 5, 2], np.int8, 0.05, 1)
    g.op("QUANTIZE", [xf], [x])
    y, shape = _avg_pool(g, x, (5, 5, 2), 2, 2, case == "overhang", 0,
                         out_quant=(0.1, 1) if case == "quant" else None)
    if case == "rect":
        g.ops[-1].builtinOptions.filterWidth = 3
    out = g.tensor([1, *shape], np.float32)
    g.op("DEQUANTIZE", [y], [out])
    _assert_refused(tmp_path, capsys, g.model([xf], [out]), match)


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
def test_sub_networks_match_litert(tmp_path, seed, per_channel):
    """SUB (XNNPACK's add with b's multiplier negated: ADD mode 1) in residual graphs."""
    rng = np.random.default_rng([seed, per_channel, 11])
    for n in range(3):
        model, shape = _residual(rng, per_channel, op="SUB")
        x = rng.uniform(-2.5, 2.5, (8, *shape)).astype(np.float32)
        _, plan = _compare(tmp_path, f"s{n}", model, x)
        subs = [layer for layer in plan["layers"] if layer["op"] == "Sub"]
        assert len(subs) == 2 and all("negated" in s["rounding"] for s in subs)


def test_sub_needs_xnnpack_kernel():
    from npugen.sim.compiler.lower import add_constants

    q = TensorQuant(0.05, 1)
    assert add_constants("xnnpack", q, q, q, subtract=True)["mode"] == 1
    for kernel in ("avx2", "gemmlowp", "tflite"):
        with pytest.raises(ValueError, match="subtraction runs only with XNNPACK"):
            add_constants(kernel, q, q, q, subtract=True)


def _mean(g, x, shape, keep, out_quant, axes=(1, 2)):
    """Add ``MEAN`` over ``axes`` (height and width) of the map ``x``."""
    c = shape[2]
    axes = g.tensor([len(axes)], np.int32, data=list(axes))
    y = g.tensor([1, 1, 1, c] if keep else [1, c], np.int8, *out_quant)
    o = tfl.ReducerOptionsT()
    o.keepDims = keep
    g.op("MEAN", [x, axes], [y], o)
    return y, ((1, 1, c) if keep else (c,))


@pytest.mark.parametrize("same_scale", [False, True], ids=["scales", "same_scale"])
def test_mean_matches_litert(tmp_path, seed, same_scale):
    """MEAN over H and W (Keras's global average pool) straight on the quantized input.

    Uniform int8 sums make ties and near-ties common; ``same_scale`` (output quantized with
    the input's scale) puts sums on ties, where XNNPACK's zero points before rounding differ
    from the requantizer's, so the compiler's constants often move. Axes are given as
    ``[1, 2]``, ``[-3, -2]`` or ``[2, 1]`` (LiteRT treats them alike).
    """
    rng = np.random.default_rng([seed, same_scale, 41])
    done = refused = 0
    while done < 4:
        assert refused < 8, "too many layers refused"
        h, w, c = (int(v) for v in rng.integers(1, 7, 3))
        g = Graph()
        xf, x = _quantized_input(g, rng, (h, w, c))
        q = g.tensors[x].quantization
        scale = q.scale[0] if same_scale else np.float32(rng.uniform(0.005, 0.05))
        keep = bool(rng.integers(2))
        axes = [[1, 2], [-3, -2], [2, 1]][int(rng.integers(3))]
        y, shape = _mean(g, x, (h, w, c), keep, (scale, int(rng.integers(-128, 128))), axes)
        out = g.tensor([1, *shape], np.float32)
        g.op("DEQUANTIZE", [y], [out])
        x = _int8_inputs(g, x, rng, (16, h, w, c))
        try:
            _, plan = _compare(tmp_path, f"mean{done}", g.model([xf], [out]), x)
        except ModelError as exc:  # no exact constants for this layer: refused, not wrong
            assert "no AVGPOOL constants reproduce XNNPACK's rounding" in str(exc)
            refused += 1
            continue
        assert [layer["op"] for layer in plan["layers"]] == ["Mean"]
        done += 1


def test_global_pools_without_the_avgpool_unit(tmp_path, seed):
    """MEAN and a whole-map AVERAGE_POOL_2D on an NPU without AVGPOOL: CONVs of ones.

    int8 graph input and output, so the pool reads exactly the drawn words.
    """
    rng = np.random.default_rng([seed, 43])
    p = dataclasses.replace(NPU, avgpool=False)
    for kind in ("Mean", "AveragePool", "Mean", "AveragePool"):
        side, c = int(rng.integers(2, 6)), int(rng.integers(1, 6))
        g = Graph()
        _, x = _quantized_input(g, rng, (side, side, c), int8=True)
        if kind == "Mean":  # random scales: the constant search finds them (scan_mean.py)
            y, _ = _mean(g, x, (side, side, c), True,
                         (np.float32(rng.uniform(0.005, 0.05)), int(rng.integers(-128, 128))))
        else:
            y, _ = _avg_pool(g, x, (side, side, c), side, 1, False,
                             ACTS[int(rng.integers(len(ACTS)))])
        inputs = rng.integers(-128, 128, (16, side, side, c)).astype(np.int8)
        name = f"{kind}{side}x{c}"
        try:
            _, plan = _compare(tmp_path, name, g.model([x], [y]), inputs, p=p)
        except ModelError as exc:  # (as test_mean_matches_litert: refused, not wrong)
            assert "no AVGPOOL constants reproduce XNNPACK's rounding" in str(exc)
            continue
        (layer,) = plan["layers"]
        assert (layer["op"], layer["engine"], layer["macs"]) == (kind, "systolic", 0), layer
        assert layer["kernel"] is None and layer["output"] == [1, 1, c]


def test_mean_constants_move_where_the_zero_points_would_round_apart():
    """Same scales, 4 elements, odd output zero point: the constants move.

    Ties everywhere: XNNPACK rounds ``t / 4 - zp_in + zp_out`` half to even, which the
    requantizer with ``zp_out`` as its zero point cannot (it adds it after rounding), so
    the constants take a neighbouring zero point and a bias 4 apart.
    """
    from npugen.sim.compiler.tflite_import import mean_constants
    from npugen.sim.models.requant import float32_scale, requantize_ort
    from npugen.sim.models.xnn_mean import xnnpack_mean

    bias, scale, zp = mean_constants(0.05, 3, 0.05, 7, 4)
    assert (bias, zp) in ((-3 * 4 - 4, 8), (-3 * 4 + 4, 6))
    t = np.arange(-512, 509)
    want = xnnpack_mean(t, 0.05, 3, 0.05, 7, 4)
    naive = requantize_ort(t - 12, *float32_scale(scale), 7, -128, 127)
    assert np.array_equal(requantize_ort(t + bias, *float32_scale(scale), zp, -128, 127), want)
    assert not np.array_equal(naive, want)


@pytest.mark.parametrize("case, match", [
    ("axes", "only a mean over height and width"),
    ("axes_out_of_range", "only a mean over height and width"),
    ("ties", "no AVGPOOL constants reproduce XNNPACK's rounding"),
])
def test_mean_refusals(tmp_path, capsys, case, match):
    g = Graph()
    h, w, s, zi, zo = (7, 8, 0.03199911117553711, -47, 38) if case == "ties" else \
        (2, 2, 0.05, 0, 0)
    xf = g.tensor([1, h, w, 3], np.float32)
    x = g.tensor([1, h, w, 3], np.int8, s, zi)
    g.op("QUANTIZE", [xf], [x])
    axes = {"axes": [3], "axes_out_of_range": [5, 6]}.get(case, [1, 2])
    axes = g.tensor([len(axes)], np.int32, data=axes)
    y = g.tensor([1, h, w, 1] if case == "axes" else [1, 1, 1, 3], np.int8, s, zo)
    g.op("MEAN", [x, axes], [y], tfl.ReducerOptionsT(keepDims=True))
    out = g.tensor(g.tensors[y].shape, np.float32)
    g.op("DEQUANTIZE", [y], [out])
    _assert_refused(tmp_path, capsys, g.model([xf], [out]), match)


def test_mean_scan_counts_every_layer(capsys):
    """``scripts/scan_mean.py``'s counts: every layer once, random scales all compiling."""
    from npugen.sim.flow.mean_scan import KINDS, main, scan

    counts = scan(6, 1)
    assert set(counts) == set(KINDS) and all(sum(c.values()) == 6 for c in counts.values())
    assert counts["random scales"]["refused"] == 0
    assert main(["--layers", "2", "--seed", "1"]) == 0
    assert capsys.readouterr().out.count("\n") == 2 + len(KINDS)


def test_proven_pool_constants_refuse_another_mode(tmp_path):
    """AVERAGE_POOL_2D and MEAN constants hold for ``ort`` only; other modes are refused.

    Lowering the same network in another rounding mode must fail, not be silently wrong.
    """
    from npugen.sim.compiler.lower import LowerError, lower
    from npugen.sim.compiler.tflite_import import load_tflite, network_from_tflite

    for n, op in enumerate(("AveragePool", "Mean")):
        g = Graph()
        xf, x = _quantized_input(g, np.random.default_rng(n), (4, 4, 2))
        if op == "Mean":
            y, shape = _mean(g, x, (4, 4, 2), True, (0.03, 1))
        else:
            y, shape = _avg_pool(g, x, (4, 4, 2), 2, 2, False, 0)
        out = g.tensor([1, *shape], np.float32)
        g.op("DEQUANTIZE", [y], [out])
        path = tmp_path / f"{op}.tflite"
        path.write_bytes(g.model([xf], [out]))
        network = network_from_tflite(load_tflite(path))
        assert [layer.op for layer in network.layers] == [op]
        lower(network, NPU)  # ort: fine
        with pytest.raises(LowerError, match=f"{op} .* proven exact for the ort rounding"):
            lower(dataclasses.replace(network, mode="tflite"), NPU)
