"""The lowering's memory plan on random graphs: residual adds, reuse of freed words, copies.

Random networks of ``Add`` and 3x3 ``MaxPool`` layers reading random earlier values (the
output sometimes in the middle of the graph), lowered for small NPUs and run on the
instruction-level simulator; the output is compared with a numpy evaluation of the graph
(``ort_add`` for the adds of an ``ort`` network, TFLite's C++ transcribed with Python ints
for ``gemmlowp`` and ``tflite`` ones; each add clamped to a random range, a fused
activation). A graph that does not fit must be refused with the flag to raise, never
computed wrong.
"""

import dataclasses

import numpy as np
import pytest

from npugen.rtl.npu.params import NpuParams
from npugen.rtl.systolic.params import SystolicParams
from npugen.sim.compiler.ir import Add, Conv, MaxPool, Network, TensorQuant
from npugen.sim.compiler.lower import LowerError, lower
from npugen.sim.formats.program import tensor_of, tensor_words
from npugen.sim.models.npu import NpuModel, NpuState
from npugen.sim.models.qladd import ort_add

from ..models.tflite_reference import tflite_add_reference


def _maxpool3(x):
    """3x3 window, stride 1, padding 1 (padding never wins)."""
    h, w, _ = x.shape
    frame = np.full((h + 2, w + 2, x.shape[2]), -(1 << 20), dtype=np.int64)
    frame[1:h + 1, 1:w + 1] = x
    return np.max([frame[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], axis=0)


def _random_graph(rng):
    quant = [TensorQuant(float(np.float32(2.0 ** rng.uniform(-6, -2))),
                         int(rng.integers(-20, 20)))]
    layers, inputs = [], []
    for n in range(int(rng.integers(2, 10))):
        if rng.random() < 0.4:
            v = int(rng.integers(0, n + 1))
            layers.append(MaxPool(kernel=3, stride=1, pads=(1, 1, 1, 1)))
            inputs.append((v,))
            quant.append(quant[v])
        else:
            a, b = (int(rng.integers(0, n + 1)) for _ in range(2))
            out = TensorQuant(float(np.float32(2.0 ** rng.uniform(-6, -2))),
                              int(rng.integers(-20, 20)))
            lo, hi = sorted(int(v) for v in rng.integers(-128, 128, 2)) \
                if rng.random() < 0.3 else (-128, 127)
            layers.append(Add(a_quant=quant[a], b_quant=quant[b], out_quant=out, lo=lo, hi=hi))
            inputs.append((a, b))
            quant.append(out)
    last = len(layers)
    output = int(rng.integers(1, last + 1)) if rng.random() < 0.3 else last
    return layers, inputs, quant, output


def _evaluate(x, layers, inputs, mode):
    values = [x]
    for layer, sources in zip(layers, inputs, strict=True):
        if isinstance(layer, MaxPool):
            values.append(_maxpool3(values[sources[0]]))
        else:
            a, b = (values[v] for v in sources)
            qa, qb, qc = layer.a_quant, layer.b_quant, layer.out_quant
            q = (qa.scale, qa.zero_point, qb.scale, qb.zero_point, qc.scale, qc.zero_point)
            if mode == "ort":
                c = ort_add("avx2", a, b, *q)
            else:  # TFLite's C++ transcribed with Python ints, element by element
                c = np.vectorize(lambda x, y, q=q: tflite_add_reference(
                    int(x), int(y), *q, single=mode == "tflite"))(a, b)
            values.append(np.clip(c.astype(np.int64), layer.lo, layer.hi))
    return values


@pytest.mark.parametrize("batch", range(4))
def test_random_graphs_run_exactly(seed, batch):
    rng = np.random.default_rng([seed, batch])
    ran = refused = 0
    for _ in range(60):
        lanes = int(rng.integers(1, 5))
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 7)))
        words = shape[0] * shape[1] * -(-shape[2] // lanes)
        p = NpuParams(lanes=lanes, act_words=max(16, words * int(rng.integers(2, 5))),
                      imem_words=64, systolic=None)
        layers, inputs, quant, output = _random_graph(rng)
        mode = ("ort", "gemmlowp", "tflite")[batch % 3]
        network = Network(input_shape=shape, input_quant=quant[0], layers=layers,
                          output_quant=quant[output], inputs=inputs, output_value=output,
                          mode=mode)
        try:
            lowered = lower(network, p)
        except LowerError as exc:
            assert "raise --act-words" in str(exc), exc
            refused += 1
            continue
        x = rng.integers(-128, 128, size=shape)
        model = NpuModel(p)
        lowered.program.load_into(model)
        model.write("act", lowered.input_address, tensor_words(x, lanes))
        status = model.run(0)
        assert status.state is NpuState.DONE, status
        got = tensor_of(model.read("act", lowered.output_address, words), shape, lanes)
        want = _evaluate(x, layers, inputs, mode)[output]
        assert np.array_equal(got, want), (inputs, output, p.act_words)
        ran += 1
    assert ran >= 30, (ran, refused)



@pytest.mark.parametrize("mode", ["gemmlowp", "tflite"])
def test_an_npu_that_rounds_only_as_onnxruntime_refuses_other_roundings(seed, mode):
    """``requant_ort_only``: a layer to requantize in another rounding gets one line.

    Pools and adds (no requantizer) still run. Both frontends' networks round as ``ort``
    (ONNX, and LiteRT's default path), so the UP5K build runs them all.
    """
    rng = np.random.default_rng(seed)
    quant = TensorQuant(0.05, 3)
    conv = Conv(weights=rng.integers(-128, 128, size=(4, 3, 1, 1)),
                bias=rng.integers(-999, 999, size=4), scales=np.full(4, 0.003, np.float32),
                zp_in=3, zp_out=-2)
    p = NpuParams(lanes=2, systolic=SystolicParams(rows=2, cols=2), requant_ort_only=True)
    network = Network(input_shape=(2, 2, 3), input_quant=quant, layers=[conv],
                      output_quant=quant, mode=mode)
    with pytest.raises(LowerError, match=f"rounds as {mode}; this NPU's requantizers round "
                                         "only as onnxruntime"):
        lower(network, p)
    lower(dataclasses.replace(network, mode="ort"), p)
    layers, inputs, quants, output = _random_graph(rng)  # (MAXPOOLs and ADDs only)
    lower(Network(input_shape=(2, 2, 3), input_quant=quants[0], layers=layers,
                  output_quant=quants[output], inputs=inputs, output_value=output, mode=mode),
          dataclasses.replace(p, systolic=None))
