"""Run a compiled network on the instruction-level simulator: float (or int8) in and out.

:func:`input_words` quantizes a batch exactly as the model's first ``QuantizeLinear``
(or TFLite ``QUANTIZE``; a TFLite model whose graph input is int8 takes int8 as is)
and lays each input out as activation words; :func:`outputs_of` turns output words back
into the model's output tensor (int8, or dequantized as its last ``DequantizeLinear``),
after the int8 softmax the host computes when the model ends in one (TFLite ``SOFTMAX``).
The same functions serve the Verilator and board engines (they only move words).
"""

import numpy as np

from ..formats.program import tensor_of, tensor_words
from ..models.npu import NpuModel, NpuState
from ..models.tfl_softmax import softmax_int8
from .quant import dequantize, quantize

__all__ = ["check_batch", "input_words", "output_words_count", "outputs_of", "run_isa"]


def check_batch(compiled, x):
    """Return ``x`` after checking it is ``(N, *model_input_shape)`` of the model's type.

    float32 for a model that quantizes its input; int64 for an int8 model input (any
    integer array whose values are int8).
    """
    x = np.asarray(x)
    want = tuple(compiled.plan["input"]["model_shape"])
    if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
        raise ValueError(f"input must have shape (N, {', '.join(map(str, want))}), "
                         f"not {x.shape}")
    if len(x) == 0:
        raise ValueError("input holds no images (N = 0)")
    if compiled.input_dtype == "int8":
        if x.dtype.kind not in "iu":
            raise ValueError(f"input must be int8 (the model takes int8), not {x.dtype}")
        if x.min() < -128 or x.max() > 127:
            raise ValueError(f"input values must be int8, in [-128, 127], not "
                             f"[{x.min()}, {x.max()}]")
        return x.astype(np.int64)
    if x.dtype.kind != "f":
        raise ValueError(f"input must be float (the model takes float32), not {x.dtype}")
    return x.astype(np.float32)


def input_words(compiled, x):
    """Activation words of each input of a batch ``x``: a list of word lists."""
    x = check_batch(compiled, x)
    q = (x if compiled.input_dtype == "int8"
         else quantize(x, compiled.input_quant, compiled.quantize_rule))
    h, w, c = compiled.plan["input"]["shape_hwc"]
    if compiled.input_layout == "hwc":
        q = q.reshape(len(q), h, w, c)
    else:
        q = q.reshape(len(q), c, h, w).transpose(0, 2, 3, 1)  # N C H W (or N F) -> N H W C
    return [tensor_words(image, compiled.params.lanes) for image in q]


def output_words_count(compiled):
    """Activation words the output tensor occupies."""
    h, w, c = compiled.plan["output"]["shape_hwc"]
    return h * w * -(-c // compiled.params.lanes)


def outputs_of(compiled, words_per_image, raw=False):
    """Return the model's output batch from each image's output words.

    int8 if ``raw`` or if the model's output is int8; else dequantized to float32.
    """
    shape, lanes = compiled.plan["output"]["shape_hwc"], compiled.params.lanes
    layout = compiled.plan["output"]["layout"]  # chw, flat (ONNX); hwc, flat_hwc (TFLite)
    q = np.stack([tensor_of(words, shape, lanes) if layout in ("hwc", "flat_hwc")
                  else tensor_of(words, shape, lanes).transpose(2, 0, 1)  # H W C -> C H W
                  for words in words_per_image])
    if layout.startswith("flat"):
        q = q.reshape(len(q), -1)
    softmax = compiled.output_softmax
    if softmax is not None:  # the host's part of the model: its last operator
        out = compiled.output_quant
        q = softmax_int8(q, softmax["input_scale"], softmax["beta"], out.scale, out.zero_point)
    if raw or compiled.output_dtype == "int8":
        return q.astype(np.int8)
    return dequantize(q, compiled.output_quant)


def run_isa(compiled, x, raw=False, progress=None):
    """Run a batch on the instruction-level simulator; return ``(y, cycles)``.

    ``cycles`` lists the simulator's cycle count per image. Raises RuntimeError if the
    program stops with an error.
    """
    model = NpuModel(compiled.params)
    compiled.program.load_into(model)
    address = compiled.plan["input"]["address"]
    out, count = compiled.plan["output"]["address"], output_words_count(compiled)
    words, cycles = [], []
    batch = input_words(compiled, x)
    for n, image in enumerate(batch):
        model.write("act", address, image)
        status = model.run(0)
        if status.state is not NpuState.DONE:
            raise RuntimeError(f"image {n}: the NPU stopped with error {status.error.name} at "
                               f"instruction {status.pc}")
        words.append(model.read("act", out, count))
        cycles.append(status.cycles)
        if progress is not None:
            progress(n + 1, len(batch))
    return outputs_of(compiled, words, raw), cycles
