"""The digits networks in TFLite form (``digits_cnn_int8.tflite``, ``digits_mlp_int8.tflite``).

No TensorFlow here, so no TFLite converter: this module quantizes the trained float
networks (``digits_cnn.onnx``'s and ``digits_mlp.onnx``'s weights) the way the converter's
int8 post-training quantization does and writes the flatbuffers with
:class:`~npugen.sim.compiler.tflite_write.Graph`:

- activations asymmetric int8 from the calibration set's float range, widened to hold 0:
  ``scale = (max - min) / 255``, ``zero_point = rint(-128 - min / scale)``; a ReLU's output
  starts at 0 (zero point -128); max-pool and reshape keep their input's quantization;
- convolution weights symmetric per output channel, fully connected weights symmetric per
  tensor: ``scale = max|w| / 127``, values ``rint(w / scale)`` in [-127, 127];
- biases int32 ``rint(b / (s_in * s_w))`` with scale ``s_in * s_w`` (float32);
- ReLU fused into the convolutions; NHWC tensors; the fully connected layer's weights
  permuted from ONNX's CHW flatten to TFLite's HWC flatten.

The graph: ``QUANTIZE`` (1x8x8x1 float) -> ``CONV_2D`` 3x3 SAME (8, ReLU) -> ``CONV_2D``
3x3 SAME (16, ReLU) -> ``MAX_POOL_2D`` 2x2/2 -> ``RESHAPE`` (1x256) ->
``FULLY_CONNECTED`` (10) -> ``DEQUANTIZE``. The MLP's: ``QUANTIZE`` (1x64 float) ->
``FULLY_CONNECTED`` (32, ReLU) -> ``FULLY_CONNECTED`` (10) -> ``DEQUANTIZE``; its hidden
layer's float weights are pruned and weight-shared on an int8 grid whose largest level is
127 steps, so the per-tensor quantization gives back those levels: at most 15 distinct
non-zero int8 values, and the compiler maps the layer onto the sparse engine as it does
the ONNX form's. The calibration set is the first 256 training images, as for the ONNX
networks. Bit-exactness is against LiteRT running these files; accuracy against the float
networks.
"""

from pathlib import Path

import numpy as np

from ..compiler.tflite_write import Graph
from .digits import HERE, SEED, _cnn_forward, _mlp_forward, dataset

__all__ = ["MLP_TFLITE_PATH", "TFLITE_PATH", "cnn_tflite", "float_weights", "mlp_tflite",
           "write_cnn_tflite", "write_mlp_tflite"]

#: The shipped TFLite form of the digits CNN.
TFLITE_PATH = HERE / "digits_cnn_int8.tflite"
#: The shipped TFLite form of the digits MLP (pruned, weight-shared hidden layer).
MLP_TFLITE_PATH = HERE / "digits_mlp_int8.tflite"

_F32 = np.float32


def _act_quant(lo, hi):
    """``(scale, zero_point)`` of an activation whose float range is ``[lo, hi]``."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = _F32((hi - lo) / 255)
    zp = int(np.clip(np.rint(-128 - lo / float(scale)), -128, 127))
    return scale, zp


def _weights(w, per_channel):
    """Symmetric int8 weights: ``(q, scales)``, scales float32 per output channel or one."""
    w = np.asarray(w, dtype=np.float64)
    peak = np.abs(w).reshape(len(w), -1).max(axis=1) if per_channel else np.abs(w).max()
    scale = np.maximum(peak / 127, 1e-12).astype(_F32)
    shaped = scale.reshape(-1, *([1] * (w.ndim - 1))) if per_channel else scale
    return np.clip(np.rint(w / shaped.astype(np.float64)), -127, 127).astype(np.int8), scale


def _bias(b, s_in, s_w):
    s = (_F32(s_in) * np.asarray(s_w, dtype=_F32)).astype(_F32)
    return np.rint(np.asarray(b, dtype=np.float64) / s.astype(np.float64)).astype(np.int32), s


def cnn_tflite(weights, calibration):
    """Return the ``.tflite`` bytes of the CNN with float ``weights`` (W1, B1, ..., B3).

    ``weights`` as :func:`~.digits.train_cnn` returns them (ONNX layouts); ``calibration``
    float images ``N x 1 x 8 x 8``.
    """
    from ..compiler.tflite_write import schema  # noqa: PLC0415

    tfl = schema()
    # The calibration ranges in float64: a float32 forward pass differs in the last bits
    # between BLAS kernels (AVX2 vs AVX-512), which moved a scale and a byte of the file.
    w64 = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    logits, cache = _cnn_forward(w64, np.asarray(calibration, dtype=np.float64))
    r1, r2 = cache[2], cache[5]
    g = Graph()
    x_f = g.tensor([1, 8, 8, 1], np.float32, name="image")
    xq = _act_quant(calibration.min(), calibration.max())
    x = g.tensor([1, 8, 8, 1], np.int8, *xq, name="image_int8")
    g.op("QUANTIZE", [x_f], [x])

    def conv(x, s_in, w, b, cout, out_range, name):
        q, s_w = _weights(w, per_channel=True)
        wt = g.tensor([cout, 3, 3, q.shape[1]], np.int8, s_w, 0,
                      data=q.transpose(0, 2, 3, 1), name=f"{name}_weights")
        bq, bs = _bias(b, s_in, s_w)
        bt = g.tensor([cout], np.int32, bs, 0, data=bq, name=f"{name}_bias")
        yq = _act_quant(0.0, out_range)
        y = g.tensor([1, 8, 8, cout], np.int8, *yq, name=name)
        o = tfl.Conv2DOptionsT()
        o.padding, o.strideH, o.strideW = tfl.Padding.SAME, 1, 1
        o.dilationHFactor = o.dilationWFactor = 1
        o.fusedActivationFunction = tfl.ActivationFunctionType.RELU
        g.op("CONV_2D", [x, wt, bt], [y], o)
        return y, yq

    c1, q1 = conv(x, xq[0], weights["W1"], weights["B1"], 8, r1.max(), "conv1")
    c2, q2 = conv(c1, q1[0], weights["W2"], weights["B2"], 16, r2.max(), "conv2")
    pool = g.tensor([1, 4, 4, 16], np.int8, *q2, name="pool")
    o = tfl.Pool2DOptionsT()
    o.padding, o.strideH, o.strideW = tfl.Padding.VALID, 2, 2
    o.filterHeight = o.filterWidth = 2
    g.op("MAX_POOL_2D", [c2], [pool], o)
    flat = g.tensor([1, 256], np.int8, *q2, name="flat")
    shape = g.tensor([2], np.int32, data=[1, 256], name="flat_shape")
    o = tfl.ReshapeOptionsT()
    o.newShape = [1, 256]
    g.op("RESHAPE", [pool, shape], [flat], o)
    # ONNX flattens C, H, W; TFLite flattens H, W, C.
    w3 = np.asarray(weights["W3"]).reshape(10, 16, 4, 4).transpose(0, 2, 3, 1).reshape(10, 256)
    q3, s3 = _weights(w3, per_channel=False)
    wt = g.tensor([10, 256], np.int8, s3, 0, data=q3, name="fc_weights")
    bq, bs = _bias(weights["B3"], q2[0], s3)
    bt = g.tensor([10], np.int32, bs, 0, data=bq, name="fc_bias")
    yq = _act_quant(logits.min(), logits.max())
    y = g.tensor([1, 10], np.int8, *yq, name="logits_int8")
    g.op("FULLY_CONNECTED", [flat, wt, bt], [y], tfl.FullyConnectedOptionsT())
    out = g.tensor([1, 10], np.float32, name="logits")
    g.op("DEQUANTIZE", [y], [out])
    return g.model([x_f], [out], description="npugen digits_cnn (int8, TFLite form)")


def mlp_tflite(weights, calibration):
    """Return the ``.tflite`` bytes of the MLP with float ``weights`` (W1, B1, W2, B2).

    ``weights`` as :func:`~.digits.train_mlp` returns them; ``calibration`` float images
    (any shape with 64 values each).
    """
    from ..compiler.tflite_write import schema  # noqa: PLC0415

    tfl = schema()
    w64 = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    calibration = np.asarray(calibration, dtype=np.float64).reshape(len(calibration), 64)
    logits, (_, _, hidden) = _mlp_forward(w64, calibration)
    g = Graph()
    x_f = g.tensor([1, 64], np.float32, name="pixels")
    xq = _act_quant(calibration.min(), calibration.max())
    x = g.tensor([1, 64], np.int8, *xq, name="pixels_int8")
    g.op("QUANTIZE", [x_f], [x])

    def fc(x, s_in, w, b, out_range, relu, name):
        q, s_w = _weights(w, per_channel=False)
        wt = g.tensor(list(q.shape), np.int8, s_w, 0, data=q, name=f"{name}_weights")
        bq, bs = _bias(b, s_in, s_w)
        bt = g.tensor([len(q)], np.int32, bs, 0, data=bq, name=f"{name}_bias")
        yq = _act_quant(*out_range)
        y = g.tensor([1, len(q)], np.int8, *yq, name=name)
        o = tfl.FullyConnectedOptionsT()
        if relu:
            o.fusedActivationFunction = tfl.ActivationFunctionType.RELU
        g.op("FULLY_CONNECTED", [x, wt, bt], [y], o)
        return y, yq

    h, hq = fc(x, xq[0], weights["W1"], weights["B1"], (0.0, hidden.max()), True, "hidden")
    y, _ = fc(h, hq[0], weights["W2"], weights["B2"], (logits.min(), logits.max()), False,
              "logits_int8")
    out = g.tensor([1, 10], np.float32, name="logits")
    g.op("DEQUANTIZE", [y], [out])
    return g.model([x_f], [out], description="npugen digits_mlp (int8, TFLite form)")


def float_weights(float_path=HERE / "digits_cnn.onnx"):
    """Return a float network's weights from its ONNX file (W1, B1, ...)."""
    import onnx  # noqa: PLC0415
    from onnx import numpy_helper  # noqa: PLC0415

    model = onnx.load(str(float_path))
    return {t.name: numpy_helper.to_array(t).astype(np.float32)
            for t in model.graph.initializer}


def write_cnn_tflite(out_path=TFLITE_PATH, float_path=HERE / "digits_cnn.onnx", seed=SEED):
    """Write the TFLite form of the float CNN at ``float_path``; return ``out_path``."""
    x_tr = dataset(seed)[0]
    data = cnn_tflite(float_weights(float_path), x_tr[:256])
    Path(out_path).write_bytes(data)
    return Path(out_path)


def write_mlp_tflite(out_path=MLP_TFLITE_PATH, float_path=HERE / "digits_mlp.onnx", seed=SEED):
    """Write the TFLite form of the float MLP at ``float_path``; return ``out_path``."""
    x_tr = dataset(seed)[0]
    data = mlp_tflite(float_weights(float_path), x_tr[:256])
    Path(out_path).write_bytes(data)
    return Path(out_path)
