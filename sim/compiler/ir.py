"""The compiler's network form: integer layers in a graph, free of any model format.

A :class:`Network` is what a frontend (ONNX today; TFLite later) produces and what
:mod:`.lower` turns into NPU instructions. Its layers are in execution order; each reads
one or two earlier values (value 0 is the network input, value ``n + 1`` layer ``n``'s
output), so residual connections are expressed as an :class:`Add` of two values. Tensors
are int8 ``H x W x C`` with one float32 scale and one zero point (per tensor); layers hold
their integer weights, int32 biases and per-output-channel float32 requantization scales
exactly as the source model defines them, so the lowering does not round anything the
model did not round.

Rounding modes (:data:`MODES`) name the runtime whose requantization the network follows:
``ort`` (onnxruntime's float32 multiply), ``tflite`` (single rounding), ``gemmlowp``
(double rounding); see :mod:`npugen.sim.models.requant`.
"""

from dataclasses import dataclass, field

import numpy as np

__all__ = ["MODES", "Add", "Conv", "GlobalAvgPool", "MaxPool", "Network", "TensorQuant",
           "dense_weights", "ones_kernel", "out_size", "square_kernel", "stride_fields"]

MODES = ("ort", "tflite", "gemmlowp")


def out_size(size, kernel, stride, pad_begin, pad_end):
    """Output length of a window of ``kernel`` at ``stride`` over a padded axis (floor)."""
    return (size + pad_begin + pad_end - kernel) // stride + 1


def stride_fields(strides):
    """``stride`` and ``stride_h`` of a :class:`Conv` or :class:`MaxPool` at ``(rows, cols)``."""
    rows, cols = strides
    return {"stride": cols, "stride_h": None if rows == cols else rows}


def dense_weights(weights, groups=1, dilation=1):
    """Return a grouped and dilated convolution's weights as a dense, undilated one's.

    ``weights`` ``(cout, cin / groups, kh, kw)``: output channel ``o`` reads the input
    channels of its group ``o // (cout / groups)``. Returns ``(cout, cin, KH, KW)`` with
    ``KH = (kh - 1) * dilation + 1`` (``KW`` alike): each group's block on the diagonal, the
    taps ``dilation`` apart, zeros elsewhere. The sums are the same integers (a zero weight
    adds nothing, and positions in the padding hold the input zero point, which adds nothing
    either), so the result is exact; the cost is the dense layer's: ``groups`` times the
    MACs of each output channel, and ``KH * KW / (kh * kw)`` times the window.
    """
    weights = np.asarray(weights)
    cout, per_group, kh, kw = weights.shape
    if groups < 1 or cout % groups:
        raise ValueError(f"groups must divide the output channels ({cout}), not {groups}")
    if dilation < 1:
        raise ValueError(f"dilation must be 1 or more, not {dilation}")
    size_h, size_w = (kh - 1) * dilation + 1, (kw - 1) * dilation + 1
    out = np.zeros((cout, per_group * groups, size_h, size_w), dtype=np.int64)
    per_out = cout // groups
    for o in range(cout):
        g = o // per_out
        out[o, g * per_group:(g + 1) * per_group, ::dilation, ::dilation] = weights[o]
    return out


def ones_kernel(channels, h, w):
    """Weights ``(C, C, h, w)``: 1 from each channel to itself, 0 elsewhere (a window sum)."""
    ones = np.zeros((channels, channels, h, w), dtype=np.int64)
    ones[np.arange(channels), np.arange(channels)] = 1
    return ones


def square_kernel(weights, pads):
    """Return ``(weights, pads)`` of a ``KH x KW`` window as a ``K x K`` one, ``K = max``.

    ``weights`` ``(cout, cin, KH, KW)``, ``pads`` ``(top, left, bottom, right)``. The window
    keeps its rows at the top and its columns at the left; the rows (columns) it gains hold
    zero weights and read as many more rows (columns) of bottom (right) padding, which holds
    the input zero point. Every output position sums the same products (exact), the output
    size is unchanged (``K - KH`` more rows of window, ``K - KH`` more of padding), and the
    new bottom/right pads stay below ``K`` when the old ones were below ``KH``/``KW``. The
    cost: ``K * K / (KH * KW)`` times the window's MACs.
    """
    weights = np.asarray(weights)
    cout, cin, kh, kw = weights.shape
    k = max(kh, kw)
    if kh == kw:
        return weights, tuple(pads)
    out = np.zeros((cout, cin, k, k), dtype=weights.dtype)
    out[:, :, :kh, :kw] = weights
    t, left, b, r = pads
    return out, (t, left, b + k - kh, r + k - kw)


@dataclass(frozen=True)
class TensorQuant:
    """An int8 tensor's quantization: ``real = scale * (q - zero_point)``."""

    scale: float  # a float32 value
    zero_point: int


#: Conv ``op`` values of pools run as a convolution of ones (they count no MACs).
POOL_OPS = ("AveragePool", "GlobalAveragePool", "Mean")


@dataclass
class Conv:
    """``y = clamp(zp_out + requant(bias + sum((x - zp_in) * w)))`` over K x K windows.

    ``weights`` int ``(cout, cin, K, K)`` (weight zero point 0), ``bias`` int32 ``(cout,)``,
    ``scales`` float32 ``(cout,)``: the requantization scale per output channel as the
    runtime computes it (``ort``: ``float32(float32(s_in * s_w) / s_out)``). ``lo``/``hi``
    clamp the int8 output (a fused ReLU shows as ``lo = zp_out``). A fully connected layer is
    a Conv whose kernel covers its whole input. ``op``: the source model's operator when it
    is not a convolution (``"AveragePool"``: a window mean as a Conv of ones, with ``ort``
    scales the frontend proved exact: other modes are refused; :data:`POOL_OPS`: pools as
    Convs of ones, 0 MACs), shown in the plan. ``taps``: the source layer's multiplies per
    output value when the dense square window holds zeros it does not have (grouped,
    dilated or rectangular windows); 0: every weight of the window counts. ``stride_h``:
    the rows' stride where it is not ``stride`` (the columns').
    """

    weights: np.ndarray
    bias: np.ndarray
    scales: np.ndarray
    zp_in: int
    zp_out: int
    stride: int = 1
    pads: tuple = (0, 0, 0, 0)  # top, left, bottom, right
    lo: int = -128
    hi: int = 127
    name: str = ""
    op: str = ""
    taps: int = 0
    stride_h: int | None = None

    @property
    def kernel(self):
        """Window size K (K x K)."""
        return self.weights.shape[2]

    @property
    def strides(self):
        """``(rows, columns)`` stride."""
        return (self.stride if self.stride_h is None else self.stride_h, self.stride)

    def out_shape(self, in_shape):
        """Output ``(H, W, C)`` for input ``in_shape``."""
        h, w, _ = in_shape
        t, left, b, r = self.pads
        return (out_size(h, self.kernel, self.strides[0], t, b),
                out_size(w, self.kernel, self.stride, left, r), self.weights.shape[0])

    def macs(self, in_shape):
        """Return the useful multiply-accumulates for input ``in_shape`` (0 for a pool)."""
        if self.op in POOL_OPS:  # sums only; the ones and zeros are the lowering's
            return 0
        oh, ow, cout = self.out_shape(in_shape)
        return oh * ow * cout * (self.taps or self.weights.shape[1] * self.kernel ** 2)


@dataclass
class MaxPool:
    """Max over K x K windows at ``stride``; padding never wins (as ONNX's -inf).

    ``stride_h``: the rows' stride where it is not ``stride`` (the columns').
    """

    kernel: int
    stride: int
    pads: tuple = (0, 0, 0, 0)
    name: str = ""
    stride_h: int | None = None

    @property
    def strides(self):
        """``(rows, columns)`` stride."""
        return (self.stride if self.stride_h is None else self.stride_h, self.stride)

    def out_shape(self, in_shape):
        """Output ``(H, W, C)`` for input ``in_shape``."""
        h, w, c = in_shape
        t, left, b, r = self.pads
        return (out_size(h, self.kernel, self.strides[0], t, b),
                out_size(w, self.kernel, self.stride, left, r), c)

    def macs(self, in_shape):
        """Return 0: pooling multiplies nothing."""
        return 0


@dataclass
class GlobalAvgPool:
    """Mean over H x W per channel, requantized.

    ``bias`` int32 and ``scales`` float32 per channel as the runtime computes them (the
    lowering adds nothing of its own). ``op``: the source model's operator, shown in the
    plan; ``"AveragePool"`` and ``"Mean"`` (TFLite) hold ``ort``-mode constants the
    frontend proved exact, so :func:`~.lower.lower` refuses them in any other mode.
    """

    bias: np.ndarray
    scales: np.ndarray
    zp_out: int
    lo: int = -128
    hi: int = 127
    name: str = ""
    op: str = ""  # the source operator when it is not a global average pool ("Mean")

    def out_shape(self, in_shape):
        """Output ``(1, 1, C)``."""
        return (1, 1, in_shape[2])

    def macs(self, in_shape):
        """Return 0: pooling multiplies nothing."""
        return 0


@dataclass
class Add:
    """Element-wise ``c = a + b`` of two int8 tensors of one shape, each with its quantization.

    The real-valued sum ``a_quant.scale * (a - a_zp) + b_quant.scale * (b - b_zp)`` is
    quantized to ``out_quant``; how it is rounded is the runtime's (``network.mode``), so
    the layer keeps the three quantizations and the lowering derives the runtime's
    constants (``ort``: onnxruntime's AVX2 ``QLinearAdd`` kernel,
    :mod:`npugen.sim.models.qladd`; ``gemmlowp``/``tflite``: TFLite's reference add,
    :mod:`npugen.sim.models.tfl_add`; or XNNPACK's, by ``Network.add_kernel``). The result
    is clamped to ``[lo, hi]`` (a fused activation). ``subtract``: ``c = a - b`` instead
    (TFLite's ``SUB``; only XNNPACK's kernel, which subtracts by negating b's multiplier).
    """

    a_quant: TensorQuant
    b_quant: TensorQuant
    out_quant: TensorQuant
    name: str = ""
    lo: int = -128  # the output clamp (a fused activation)
    hi: int = 127
    subtract: bool = False

    def out_shape(self, in_shape):
        """Output ``(H, W, C)``: the inputs' shape."""
        return tuple(in_shape)

    def macs(self, in_shape):
        """Return 0: the add multiplies by scales, not weights."""
        return 0


@dataclass
class Network:
    """Layers from one int8 input to one int8 output.

    ``input_shape``: ``(H, W, C)`` of the quantized input; ``input_quant`` how the float
    input becomes int8 (the model's first quantization). ``output_quant`` how the int8
    output becomes float; ``output_layout``: ``"chw"`` (a 4-D ``N x C x H x W`` output) or
    ``"flat"`` (``N x F`` flattened in C, H, W order, ONNX's), ``"hwc"`` (``N x H x W x C``,
    TFLite's order) or ``"flat_hwc"`` (``N x F`` flattened in H, W, C order, TFLite's);
    ``input_layout`` the same for the input (``"chw"``, ``"hwc"``; a flat
    input is either). ``quantize_rule``: how the float input is quantized, ``"div"``
    (``x / scale``, onnxruntime) or ``"mul_inverse"`` (``x * float32(1 / scale)``, LiteRT's
    XNNPACK); see :mod:`.quant`. ``add_kernel``: whose int8 add an :class:`Add` follows,
    ``"onnxruntime"`` (``QLinearAdd``, AVX2) or ``"xnnpack"`` (LiteRT's default).
    ``input_name``/``output_name`` and
    ``model_input_shape`` keep the source model's names and shape (without the batch axis).
    ``input_dtype``/``output_dtype``: ``"float32"`` (the model quantizes its input and
    dequantizes its output) or ``"int8"`` (a TFLite model whose graph input or output is
    the int8 tensor itself: it is passed as is, ``input_quant``/``output_quant`` only
    describe it). ``output_softmax``: ``{"beta", "input_scale"}`` when the model ends in an
    int8 softmax that the host computes on the NPU's output (its last axis,
    :func:`~npugen.sim.models.tfl_softmax.softmax_int8`); ``output_quant`` is then the
    softmax's output quantization.
    ``inputs[n]``: the values layer ``n`` reads (empty list: a chain, layer ``n`` reads value
    ``n``); ``output_value``: the value the network returns (None: the last layer's).
    """

    input_shape: tuple
    input_quant: TensorQuant
    layers: list
    output_quant: TensorQuant
    output_layout: str = "chw"
    mode: str = "ort"
    input_name: str = "input"
    output_name: str = "output"
    model_input_shape: tuple = ()
    notes: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    output_value: int | None = None
    input_layout: str = "chw"
    quantize_rule: str = "div"
    add_kernel: str = "onnxruntime"
    input_dtype: str = "float32"
    output_dtype: str = "float32"
    output_softmax: dict | None = None

    def sources(self, n):
        """Return the values layer ``n`` reads, as a tuple (value 0: the network input)."""
        return tuple(self.inputs[n]) if self.inputs else (n,)

    @property
    def output(self):
        """The value the network returns."""
        return len(self.layers) if self.output_value is None else self.output_value

    def shapes(self):
        """``[input shape, layer 0's output shape, ...]``: each value's ``(H, W, C)``."""
        out = [tuple(self.input_shape)]
        for n, layer in enumerate(self.layers):
            out.append(layer.out_shape(out[self.sources(n)[0]]))
        return out

    @property
    def output_shape(self):
        """The output's ``(H, W, C)``."""
        return self.shapes()[self.output]

    def macs(self):
        """Return the useful multiply-accumulates of one inference."""
        shapes = self.shapes()
        return sum(layer.macs(shapes[self.sources(n)[0]])
                   for n, layer in enumerate(self.layers))
