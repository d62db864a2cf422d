"""The digits networks: numpy-trained on scikit-learn's 8x8 digits, int8 by onnxruntime.

Shipped as small ONNX files (``sim/flow/networks/``):

- ``digits_cnn``: conv 3x3 (1 -> 8, same) -> ReLU -> conv 3x3 (8 -> 16, same) -> ReLU ->
  max-pool 2x2 -> fully connected (256 -> 10). Per-channel int8 weights. Also in TFLite
  form (``digits_cnn_int8.tflite``, :mod:`.digits_tflite`).
- ``digits_mlp``: fully connected 64 -> 32 -> ReLU -> 10; the hidden layer pruned to 20 %
  density by magnitude, retrained under its mask, then weight-shared: its non-zero weights
  take at most 15 distinct values, each a multiple of the layer's int8 step, so the
  quantized model holds exactly the shared values (per-tensor int8 weights).

Input: the 8x8 image's pixels divided by 16 (float32, ``N x 1 x 8 x 8`` for the CNN, ``N x
64`` for the MLP). Deterministic for a seed: the split (75/25, stratified), the
initialisation, the minibatches and the calibration set (the first 256 training images).

Run: ``python scripts/train_digits.py [--out DIR]`` (about a minute on one core).
"""

import argparse
from pathlib import Path

import numpy as np

__all__ = ["NETWORKS", "dataset", "main", "network_path", "held_out_split"]

NETWORKS = ("digits_cnn", "digits_mlp")
HERE = Path(__file__).resolve().parent / "networks"
SEED = 2026


def network_path(name, int8=True):
    """Path of a shipped network (``int8``: the quantized QOperator model)."""
    if name not in NETWORKS:
        raise ValueError(f"network must be one of {', '.join(NETWORKS)}, not {name!r}")
    return HERE / f"{name}{'_int8' if int8 else ''}.onnx"


def dataset(seed=SEED):
    """``(x_train, y_train, x_test, y_test)``: images ``N x 1 x 8 x 8`` float32 in [0, 1]."""
    from sklearn.datasets import load_digits  # noqa: PLC0415 - only training needs it
    from sklearn.model_selection import train_test_split  # noqa: PLC0415

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    x_tr, x_te, y_tr, y_te = train_test_split(x, digits.target, test_size=0.25,
                                              random_state=seed, stratify=digits.target)
    return x_tr, y_tr, x_te, y_te


def held_out_split():
    """Return the held-out split, shipped with the networks (no scikit-learn): ``(x, y)``.

    ``x``: ``450 x 1 x 8 x 8`` float32 (pixels / 16), ``y``: labels; the same arrays as
    :func:`dataset`'s test half (a test checks).
    """
    with np.load(HERE / "digits_test.npz") as f:
        return (f["pixels"].astype(np.float32) / np.float32(16))[:, None], f["labels"]


# -- a small numpy autograd-free trainer ---------------------------------------------------

def _im2col(x, k=3, pad=1):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.empty((n, h, w, c, k, k), dtype=x.dtype)
    for ky in range(k):
        for kx in range(k):
            cols[..., ky, kx] = xp[:, :, ky:ky + h, kx:kx + w].transpose(0, 2, 3, 1)
    return cols.reshape(n, h, w, c * k * k)


def _col2im(dcols, shape, k=3, pad=1):
    n, c, h, w = shape
    d = dcols.reshape(n, h, w, c, k, k)
    dxp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=dcols.dtype)
    for ky in range(k):
        for kx in range(k):
            dxp[:, :, ky:ky + h, kx:kx + w] += d[..., ky, kx].transpose(0, 3, 1, 2)
    return dxp[:, :, pad:pad + h, pad:pad + w]


class _Adam:
    def __init__(self, params, lr):
        self.params, self.lr, self.t = params, lr, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, grads, masks=None):
        self.t += 1
        for k, g in grads.items():
            self.m[k] = 0.9 * self.m[k] + 0.1 * g
            self.v[k] = 0.999 * self.v[k] + 0.001 * g * g
            mh = self.m[k] / (1 - 0.9 ** self.t)
            vh = self.v[k] / (1 - 0.999 ** self.t)
            self.params[k] -= self.lr * mh / (np.sqrt(vh) + 1e-8)
            if masks and k in masks:
                self.params[k] *= masks[k]


def _softmax_grad(logits, y):
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    return p / len(y)


def _cnn_forward(w, x):
    n = len(x)
    c1 = _im2col(x)
    a1 = c1 @ w["W1"].reshape(8, -1).T + w["B1"]          # n 8 8 8 (NHWC)
    r1 = np.maximum(a1, 0).transpose(0, 3, 1, 2)          # NCHW
    c2 = _im2col(r1)
    a2 = c2 @ w["W2"].reshape(16, -1).T + w["B2"]
    r2 = np.maximum(a2, 0)                                # n 8 8 16
    blocks = r2.reshape(n, 4, 2, 4, 2, 16)
    p = blocks.max(axis=(2, 4))                           # n 4 4 16
    f = p.transpose(0, 3, 1, 2).reshape(n, -1)            # CHW flatten, as ONNX
    logits = f @ w["W3"].T + w["B3"]
    return logits, (c1, a1, r1, c2, a2, r2, blocks, p, f)


def _cnn_backward(w, x, cache, dlogits):
    c1, a1, r1, c2, a2, r2, blocks, p, f = cache
    n = len(x)
    g = {"W3": dlogits.T @ f, "B3": dlogits.sum(0)}
    dp = (dlogits @ w["W3"]).reshape(n, 16, 4, 4).transpose(0, 2, 3, 1)
    mask = blocks == p[:, :, None, :, None, :]
    mask = mask / mask.sum(axis=(2, 4), keepdims=True)
    dr2 = (mask * dp[:, :, None, :, None, :]).reshape(n, 8, 8, 16)
    da2 = dr2 * (a2 > 0)
    g["W2"] = (da2.reshape(-1, 16).T @ c2.reshape(-1, 72)).reshape(16, 8, 3, 3)
    g["B2"] = da2.sum(axis=(0, 1, 2))
    dc2 = da2 @ w["W2"].reshape(16, -1)
    dr1 = _col2im(dc2, r1.shape)                          # NCHW
    da1 = dr1.transpose(0, 2, 3, 1) * (a1 > 0)
    g["W1"] = (da1.reshape(-1, 8).T @ c1.reshape(-1, 9)).reshape(8, 1, 3, 3)
    g["B1"] = da1.sum(axis=(0, 1, 2))
    return g


def _mlp_forward(w, x):
    f = x.reshape(len(x), -1)
    a = f @ w["W1"].T + w["B1"]
    h = np.maximum(a, 0)
    return h @ w["W2"].T + w["B2"], (f, a, h)


def _mlp_backward(w, x, cache, dlogits):
    f, a, h = cache
    g = {"W2": dlogits.T @ h, "B2": dlogits.sum(0)}
    da = (dlogits @ w["W2"]) * (a > 0)
    g["W1"], g["B1"] = da.T @ f, da.sum(0)
    return g


def _train(w, forward, backward, data, rng, epochs, lr, frozen=(), masks=None):
    x_tr, y_tr = data
    opt = _Adam(w, lr)
    for _ in range(epochs):
        order = rng.permutation(len(x_tr))
        for i in range(0, len(order), 32):
            batch = order[i:i + 32]
            logits, cache = forward(w, x_tr[batch])
            g = backward(w, x_tr[batch], cache, _softmax_grad(logits, y_tr[batch]))
            opt.step({k: v for k, v in g.items() if k not in frozen}, masks)
    return w


def _accuracy(forward, w, x, y):
    return float((forward(w, x)[0].argmax(1) == y).mean())


def train_cnn(rng, data):
    """Float weights of the CNN (He initialisation, Adam, 40 epochs)."""
    w = {"W1": rng.normal(0, np.sqrt(2 / 9), (8, 1, 3, 3)), "B1": np.zeros(8),
         "W2": rng.normal(0, np.sqrt(2 / 72), (16, 8, 3, 3)), "B2": np.zeros(16),
         "W3": rng.normal(0, np.sqrt(1 / 256), (10, 256)), "B3": np.zeros(10)}
    return _train(w, _cnn_forward, _cnn_backward, data, rng, epochs=40, lr=3e-3)


def train_mlp(rng, data, density=0.2, values=15):
    """Float weights of the MLP: dense, pruned and retrained, then weight-shared."""
    x_tr, y_tr = data
    flat = (x_tr.reshape(len(x_tr), -1), y_tr)
    w = {"W1": rng.normal(0, np.sqrt(2 / 64), (32, 64)), "B1": np.zeros(32),
         "W2": rng.normal(0, np.sqrt(1 / 32), (10, 32)), "B2": np.zeros(10)}
    _train(w, _mlp_forward, _mlp_backward, flat, rng, epochs=40, lr=3e-3)
    keep = int(density * w["W1"].size)
    threshold = np.sort(np.abs(w["W1"]).ravel())[-keep]
    mask = {"W1": (np.abs(w["W1"]) >= threshold).astype(w["W1"].dtype)}
    w["W1"] *= mask["W1"]
    _train(w, _mlp_forward, _mlp_backward, flat, rng, epochs=30, lr=1e-3, masks=mask)
    # share: 1-D k-means over the surviving weights, centres snapped to the int8 grid
    nz = w["W1"][mask["W1"] > 0]
    centres = np.quantile(nz, np.linspace(0, 1, values))
    for _ in range(50):
        idx = np.abs(nz[:, None] - centres[None]).argmin(1)
        centres = np.array([nz[idx == k].mean() if (idx == k).any() else centres[k]
                            for k in range(values)])
    step = np.float32(np.abs(centres).max() / 127)
    grid = np.unique(np.clip(np.rint(centres / step), -127, 127))
    grid = grid[grid != 0]
    shared = np.zeros_like(w["W1"])
    on = mask["W1"] > 0
    levels = (grid * step).astype(np.float32)
    shared[on] = levels[np.abs(w["W1"][on][:, None] - levels[None]).argmin(1)]
    w["W1"] = shared
    _train(w, _mlp_forward, _mlp_backward, flat, rng, epochs=20, lr=1e-3,
           frozen=("W1",))
    return w


# -- ONNX export and quantization ------------------------------------------------------------

def _float_model(name, w):
    import onnx  # noqa: PLC0415
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    def init(key):
        return numpy_helper.from_array(np.asarray(w[key], dtype=np.float32), key)

    if name == "digits_cnn":
        nodes = [helper.make_node("Conv", ["x", "W1", "B1"], ["c1"], pads=[1, 1, 1, 1]),
                 helper.make_node("Relu", ["c1"], ["r1"]),
                 helper.make_node("Conv", ["r1", "W2", "B2"], ["c2"], pads=[1, 1, 1, 1]),
                 helper.make_node("Relu", ["c2"], ["r2"]),
                 helper.make_node("MaxPool", ["r2"], ["p"], kernel_shape=[2, 2],
                                  strides=[2, 2]),
                 helper.make_node("Flatten", ["p"], ["f"]),
                 helper.make_node("Gemm", ["f", "W3", "B3"], ["logits"], transB=1)]
        shape, keys = [None, 1, 8, 8], ("W1", "B1", "W2", "B2", "W3", "B3")
    else:
        nodes = [helper.make_node("Gemm", ["x", "W1", "B1"], ["h"], transB=1),
                 helper.make_node("Relu", ["h"], ["r"]),
                 helper.make_node("Gemm", ["r", "W2", "B2"], ["logits"], transB=1)]
        shape, keys = [None, 64], ("W1", "B1", "W2", "B2")
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 10])],
        [init(k) for k in keys])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="npugen digits")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def quantize(float_path, out_path, calibration, fmt="QOperator", per_channel=True):
    """Onnxruntime ``quantize_static`` (int8 activations and weights, MinMax calibration)."""
    from onnxruntime.quantization import (  # noqa: PLC0415
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"x": calibration[i:i + 1]} for i in range(len(calibration))])

        def get_next(self):
            return next(self.items, None)

    quantize_static(str(float_path), str(out_path), Reader(),
                    quant_format=getattr(QuantFormat, fmt), activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=per_channel)


def build(out_dir=HERE, seed=SEED, log=print):
    """Train both networks, write float and int8 ONNX files to ``out_dir``; return stats.

    Also writes the held-out split (``digits_test.npz``, see :func:`held_out_split`).
    """
    import onnx  # noqa: PLC0415

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr, x_te, y_te = dataset(seed)
    np.savez_compressed(out_dir / "digits_test.npz",
                        pixels=np.rint(x_te[:, 0] * 16).astype(np.uint8),
                        labels=y_te.astype(np.uint8))
    stats = {}
    for name in NETWORKS:
        rng = np.random.default_rng(seed)
        cnn = name == "digits_cnn"
        w = train_cnn(rng, (x_tr, y_tr)) if cnn else train_mlp(rng, (x_tr, y_tr))
        forward = _cnn_forward if cnn else _mlp_forward
        shape = (lambda a: a) if cnn else (lambda a: a.reshape(len(a), -1))
        acc = _accuracy(forward, w, shape(x_te), y_te)
        float_path = out_dir / f"{name}.onnx"
        onnx.save(_float_model(name, w), float_path)
        quantize(float_path, out_dir / f"{name}_int8.onnx", shape(x_tr[:256]),
                 per_channel=cnn)
        # the same weights in TFLite form (TFLite's converter's quantization)
        from .digits_tflite import write_cnn_tflite, write_mlp_tflite  # noqa: PLC0415

        (write_cnn_tflite if cnn else write_mlp_tflite)(out_dir / f"{name}_int8.tflite",
                                                        float_path, seed)
        stats[name] = {"float_accuracy": acc}
        if not cnn:
            nz = w["W1"][w["W1"] != 0]
            stats[name].update(density=float(nz.size / w["W1"].size),
                               distinct=int(np.unique(nz).size))
        log(f"{name}: float test accuracy {acc:.4f} {stats[name]}")
    return stats


def main(argv=None):
    """Train and write the networks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE), help="output folder")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    build(args.out, args.seed)
    return 0
