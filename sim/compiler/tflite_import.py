"""Read an int8 ``.tflite`` model into a :class:`Network`, bit-exact with LiteRT's default path.

The model is one subgraph in execution order: ``QUANTIZE`` on the float input (or an int8
graph input, taken as is), then int8 ``CONV_2D`` and ``DEPTHWISE_CONV_2D`` (any dilation,
kh x kw windows; a depthwise, dilated or rectangular layer runs as a dense square
convolution with zero weights), ``PAD``/``PADV2`` before one (folded into its padding),
``FULLY_CONNECTED``, ``MAX_POOL_2D``, ``AVERAGE_POOL_2D``, ``MEAN`` over height and width,
``RESHAPE``, ``ADD`` and ``SUB`` (a tensor may feed several operators: residual
connections), then ``DEQUANTIZE`` on the output (or an int8 graph output, returned as is):
what TFLite's converter writes for a fully int8 model with float or int8 input and
output. Tensors are NHWC, so the network's input and output keep TFLite's axis order.

Arithmetic follows LiteRT 2.3 on x86-64 with its default XNNPACK delegate, measured (see
``docs/compiler.md`` and ``tests/compiler/test_litert_rounding.py``):

- ``QUANTIZE``: ``x * float32(1 / scale)`` in float32, rounded half to even, plus the zero
  point, saturated (a multiply by the reciprocal, where onnxruntime divides);
- convolutions and fully connected layers requantize in float32: ``float32(acc) *
  float32(float32(s_in * s_w) / s_out)``, rounded half to even - onnxruntime's arithmetic,
  so the network's rounding mode is ``ort`` (not TFLite's integer roundings, which its
  reference kernels use);
- a fused ReLU, ReLU6 or ReLU_N1_TO_1 clamps at ``rint(bound / s_out + zero_point)`` (in
  float32: the zero point is added before rounding);
- ``ADD``: XNNPACK's integer add (:mod:`npugen.sim.models.xnn_add`), the NPU's ``ADD``
  mode 1; a fused activation clamps its output as for the other operators; ``SUB``: the
  same kernel with b's multiplier negated (XNNPACK's own subtraction);
- ``AVERAGE_POOL_2D`` (LiteRT runs int8 pooling on its built-in kernel, not XNNPACK's):
  ``round(sum / count)`` half away from zero over each window's in-bounds inputs, the
  output quantized as the input, a fused activation clamped at ``zp + round(bound / s)``
  (half away from zero, the zero point added after rounding). Each window's sum runs as
  a convolution of ones (or ``AVGPOOL`` when the window is the whole input), requantized
  by a float32 scale chosen so that the ``ort`` requantization gives exactly that rounded
  mean for every sum the window can hold (:func:`mean_scale`); windows that overhang the
  input (SAME padding whose count differs by position) are refused;
- ``MEAN`` over height and width: XNNPACK's float32 formula with the zero points added
  before rounding (:mod:`npugen.sim.models.xnn_mean`), run as an ``AVGPOOL`` whose bias,
  scale and zero point :func:`mean_constants` finds equal on every possible sum (refused
  when none is);
- ``DEQUANTIZE``: ``float32(q - zero_point) * scale``.

Reading needs LiteRT's schema classes (``ai-edge-litert``, in the ``tflite`` extra). An
operator or attribute the NPU cannot run exactly is refused with :class:`ModelError`
naming the operator, never approximated.
"""

from pathlib import Path

import numpy as np

from ..models.requant import float32_scale, requantize_ort
from ..models.xnn_mean import xnnpack_mean, xnnpack_mean_params
from .ir import (
    Add,
    Conv,
    GlobalAvgPool,
    MaxPool,
    Network,
    TensorQuant,
    dense_weights,
    ones_kernel,
    square_kernel,
    stride_fields,
)
from .onnx_import import MAX_MODEL_BYTES, ModelError, check_graph

__all__ = ["load_tflite", "mean_constants", "mean_scale", "network_from_tflite"]

_F32 = np.float32

#: Scales accepted (LiteRT itself crashes on some beyond them, e.g. an input scale of 1e-38).
SCALE_RANGE = (2.0 ** -32, 2.0 ** 32)


def mean_scale(count):
    """Return the float32 scale ``s`` that makes the ``ort`` requantization a rounded mean.

    For every sum ``t`` of ``count`` int8 values, ``requantize_ort(t, s)`` (float32 of
    ``t`` times ``s``, rounded half to even) equals ``t / count`` rounded half away from
    zero, TFLite's int8 average. ``s`` is the first float32 at or above ``1 / count`` for
    which that holds, checked on every such sum (at most a few ulps above: a tie
    ``x.5`` needs the product a little beyond it, and a non-tie is at least
    ``1 / (2 * count)`` from one). Raises ValueError if no scale within 4096 ulps does.
    """
    if not 1 <= count <= 1 << 16:
        raise ValueError(f"count must be in [1, 65536], not {count}")
    t = np.arange(-128 * count, 127 * count + 1, dtype=np.int64)
    half = count // 2
    want = np.where(t >= 0, (t + half) // count, -((half - t) // count))
    s = _F32(1.0 / count)
    if float(s) < 1.0 / count:
        s = np.nextafter(s, _F32(np.inf))
    for _ in range(4096):
        mantissa, exponent = float32_scale(s)
        if np.array_equal(requantize_ort(t, mantissa, exponent, 0, -128, 127), want):
            return s
        s = np.nextafter(s, _F32(np.inf))
    raise ValueError(f"no float32 scale gives the rounded mean of {count} values")


def mean_constants(s_in, zp_in, s_out, zp_out, n, ulps=16):
    """Return ``AVGPOOL`` constants ``(bias, scale, zero_point)`` equal to XNNPACK's ``MEAN``.

    XNNPACK adds the zero points in float32 before rounding
    (:mod:`npugen.sim.models.xnn_mean`); the NPU's ``ort`` requantization rounds
    ``float32(acc + bias) * scale`` and adds its zero point after. The two agree except near
    ties, so the constants are searched: the zero point ``zp_out`` with
    ``bias = -zp_in * n`` first, then ``zp_out +- 1``, ``+- 2`` and 0 with the bias that
    carries the difference (when ``(zp_out - zp) / scale`` is an integer: a tie then rounds
    the other way), each with the scales within ``ulps`` float32 steps of XNNPACK's; the
    first set equal to XNNPACK's result on every sum of ``n`` int8 values is returned.
    Raises ValueError if none is.
    """
    t = np.arange(-128 * n, 127 * n + 1, dtype=np.int64)
    want = xnnpack_mean(t, s_in, zp_in, s_out, zp_out, n)
    s0, _ = xnnpack_mean_params(s_in, zp_in, s_out, zp_out, n)
    candidates = [(-zp_in * n, zp_out)]
    for zp in (zp_out - 1, zp_out + 1, zp_out - 2, zp_out + 2, 0):
        d = (zp_out - zp) / float(s0)
        if -128 <= zp <= 127 and zp != zp_out and abs(d - round(d)) < 1e-3 \
                and abs(d) < 1 << 24:
            candidates.append((-zp_in * n + round(d), zp))
    for bias, zp in candidates:
        up = down = s0
        for k in range(ulps + 1):
            for scale in (up,) if k == 0 else (up, down):
                mantissa, exponent = float32_scale(scale)
                got = requantize_ort(t + bias, mantissa, exponent, zp, -128, 127)
                if np.array_equal(got, want):
                    return bias, scale, zp
            up, down = np.nextafter(up, _F32(np.inf)), np.nextafter(down, _F32(0))
    raise ValueError("no AVGPOOL constants reproduce XNNPACK's rounding of this mean on "
                     "every input (its zero points enter before rounding; ties near these "
                     "scales go both ways)")


def _schema():
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        raise ModelError("reading .tflite models needs ai-edge-litert: "
                         "pip install 'npugen[tflite]'") from None
    return schema_py_generated


def load_tflite(path):
    """Read a ``.tflite`` file into the schema's object form; :class:`ModelError` if bad."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ModelError(f"cannot read model {str(path)!r}: {exc.strerror}") from None
    if size > MAX_MODEL_BYTES:
        raise ModelError(f"model {str(path)!r} is {size} bytes; at most {MAX_MODEL_BYTES}")
    data = path.read_bytes()
    tfl = _schema()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{str(path)!r} is not a TFLite model (no TFL3 identifier)")
    try:
        model = tfl.ModelT.InitFromPackedBuf(data, 0)
    except Exception as exc:  # a malformed flatbuffer raises anything from struct to Index
        raise ModelError(f"{str(path)!r} is not a valid TFLite model: "
                         f"{type(exc).__name__}") from None
    return model


class _Importer:
    def __init__(self, model, tfl):
        self.tfl, self.model = tfl, model
        if not model.subgraphs or len(model.subgraphs) != 1:
            raise ModelError("the model must have exactly one subgraph")
        self.graph = model.subgraphs[0]
        self.names = {v: k for k, v in vars(tfl.BuiltinOperator).items()
                      if not k.startswith("_")}
        # values: tensor index -> (shape, quant, flat, the Network's value id)
        self.layers, self.values, self.inputs, self.wheres = [], {}, [], []
        self.input_quant = self.output_quant = self.output_value = None
        self.input_dtype = self.output_dtype = "float32"
        # PAD outputs: tensor -> (the padded tensor, (top, left, bottom, right)); only a
        # convolution reads one (the padding folds into its own)
        self.padded, self.pads_read = {}, set()
        # SOFTMAX: its beta and input scale, the tensor that holds its output (a flatten
        # after it moves it), whether the graph's output reads it; the host computes it after
        # the NPU, so only DEQUANTIZE or the graph output may read it
        self.softmax, self.softmax_tensor, self.softmax_read = None, None, False

    # -- tensors -------------------------------------------------------------------------
    def tensor(self, i):
        if i is None or not 0 <= i < len(self.graph.tensors or []):
            raise ModelError(f"tensor index {i} is out of range")
        return self.graph.tensors[i]

    def name(self, i):
        t = self.tensor(i)
        return t.name.decode() if isinstance(t.name, bytes) else str(t.name)

    def shape(self, i):
        return tuple(int(v) for v in (self.tensor(i).shape if self.tensor(i).shape is not None
                                      else ()))

    def data(self, i, dtype):
        """Return a constant tensor's values (``dtype``), shaped; ModelError if not constant."""
        t = self.tensor(i)
        buffers = self.model.buffers or []
        buf = buffers[t.buffer] if 0 <= t.buffer < len(buffers) else None
        if buf is None or buf.data is None or len(buf.data) == 0:
            raise ModelError(f"tensor {self.name(i)!r} must be a constant")
        raw = np.asarray(buf.data, dtype=np.uint8).tobytes()
        shape = self.shape(i)
        if len(raw) != np.dtype(dtype).itemsize * int(np.prod(shape)):
            raise ModelError(f"tensor {self.name(i)!r}: its buffer holds {len(raw)} bytes, "
                             f"not what shape {shape} needs")
        return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(np.int64)

    def quant(self, i, per_channel=False, axis=0):
        """Scales (float32 array) and zero points (int array) of tensor ``i``.

        ``axis``: the output-channel axis per-channel scales must run along.
        """
        q = self.tensor(i).quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            raise ModelError(f"tensor {self.name(i)!r} is not quantized")
        scale = np.asarray(q.scale, dtype=_F32)
        zp = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0] * len(scale),
                        dtype=np.int64)
        if not per_channel and len(scale) != 1:
            raise ModelError(f"tensor {self.name(i)!r} must be quantized per tensor")
        if len(zp) != len(scale):
            raise ModelError(f"tensor {self.name(i)!r}: {len(scale)} scales but {len(zp)} "
                             "zero points")
        if not (np.isfinite(scale).all() and (scale >= SCALE_RANGE[0]).all()
                and (scale <= SCALE_RANGE[1]).all()):
            raise ModelError(f"tensor {self.name(i)!r}: scales must be in [2**-32, 2**32]")
        if per_channel and len(scale) > 1 and q.quantizedDimension != axis:
            raise ModelError(f"tensor {self.name(i)!r}: per-channel scales must run along "
                             f"axis {axis} (output channels)")
        return scale, zp

    def act_quant(self, i):
        t = self.tensor(i)
        if t.type != self.tfl.TensorType.INT8:
            raise ModelError(f"tensor {self.name(i)!r} must be int8")
        scale, zp = self.quant(i)
        if not -128 <= int(zp[0]) <= 127:
            raise ModelError(f"tensor {self.name(i)!r}: zero point {int(zp[0])} is not int8")
        return TensorQuant(float(scale[0]), int(zp[0]))

    def value(self, i, where):
        if i == self.softmax_tensor:
            raise ModelError(f"{where}: reads the output of SOFTMAX {self.name(i)!r}, which "
                             "the host computes after the NPU: only DEQUANTIZE or the graph "
                             "output may follow it")
        if i in self.padded:
            raise ModelError(f"{where}: reads the output of PAD {self.name(i)!r}; only "
                             "CONV_2D and DEPTHWISE_CONV_2D take a padded tensor (the padding "
                             "folds into theirs)")
        if i not in self.values:
            raise ModelError(f"{where}: reads tensor {self.name(i)!r}, which no earlier "
                             "operator writes")
        return self.values[i]

    # -- operators -----------------------------------------------------------------------
    def range_of(self, act, yq, where, builtin=False):
        """Return the int8 clamp ``(lo, hi)`` of a fused activation on output ``yq``.

        XNNPACK (the default): ``rint(bound / s + zp)`` in float32, the zero point added
        before rounding half to even. ``builtin``: LiteRT's built-in kernels
        (``CalculateActivationRangeQuantized``), ``zp + round(bound / s)``, the float32
        quotient rounded half away from zero, then the zero point. The two differ on ties.
        """
        f = self.tfl.ActivationFunctionType
        bounds = {f.NONE: (None, None), f.RELU: (0.0, None), f.RELU6: (0.0, 6.0),
                  f.RELU_N1_TO_1: (-1.0, 1.0)}
        if act not in bounds:
            raise ModelError(f"{where}: fused activation {act} is not supported "
                             "(NONE, RELU, RELU6, RELU_N1_TO_1)")
        lo, hi = -128, 127
        for k, bound in enumerate(bounds[act]):
            if bound is None:
                continue
            if builtin:
                r = float(_F32(bound) / _F32(yq.scale))
                q = yq.zero_point + int(np.sign(r) * np.floor(abs(r) + 0.5))  # std::round
            else:
                q = int(np.rint(np.clip(_F32(bound) / _F32(yq.scale) + _F32(yq.zero_point),
                                        -128, 127)))
            lo, hi = (max(lo, min(q, 127)), hi) if k == 0 else (lo, min(hi, max(q, -128)))
        return lo, hi

    def conv_input(self, i, where):
        """Return ``(value, shape, pads)``: what a convolution reads at tensor ``i``.

        A PAD's output is its input with ``pads`` (top, left, bottom, right) rows and
        columns of the zero point around it, ``shape`` the padded map's.
        """
        source, pads = self.padded.get(i, (i, (0, 0, 0, 0)))
        if i in self.padded:
            self.pads_read.add(i)
        x = self.value(source, where)
        h, w, c = x[0]
        return x, (h + pads[0] + pads[2], w + pads[1] + pads[3], c), pads

    def conv_layer(self, op, where, weights, strides, pads, act, flat=False, w_axis=0,
                   taps=0):
        x, _, before = self.conv_input(op.inputs[0], where)
        pads = tuple(a + b for a, b in zip(pads, before, strict=True))
        yq = self.act_quant(op.outputs[0])
        xq = x[1]
        if self.tensor(op.inputs[1]).type != self.tfl.TensorType.INT8:
            raise ModelError(f"{where}: the weights must be int8")
        w_scale, w_zp = self.quant(op.inputs[1], per_channel=True, axis=w_axis)
        cout = weights.shape[0]
        if np.any(w_zp != 0):
            raise ModelError(f"{where}: weight zero points must be 0 (symmetric)")
        if len(w_scale) not in (1, cout):
            raise ModelError(f"{where}: {len(w_scale)} weight scales for {cout} channels")
        w_scale = np.broadcast_to(w_scale, cout)
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            if self.tensor(op.inputs[2]).type != self.tfl.TensorType.INT32:
                raise ModelError(f"{where}: the bias must be int32")
            bias = self.data(op.inputs[2], np.int32).reshape(-1)
            if bias.shape != (cout,):
                raise ModelError(f"{where}: the bias has {bias.size} values, not {cout}")
        else:
            bias = np.zeros(cout, dtype=np.int64)
        # XNNPACK: float32(float32(s_in * s_w) / s_out), left to right in float32.
        scales = (_F32(xq.scale) * w_scale.astype(_F32)) / _F32(yq.scale)
        if not (np.isfinite(scales).all() and (scales > 0).all()):
            raise ModelError(f"{where}: the requantization scale is not a positive float32")
        lo, hi = self.range_of(act, yq, where)
        layer = Conv(weights=weights, bias=bias, scales=scales.astype(_F32),
                     zp_in=xq.zero_point, zp_out=yq.zero_point, pads=pads, lo=lo, hi=hi,
                     name=self.name(op.outputs[0]), taps=taps, **stride_fields(strides))
        self.add(op, layer, x, yq, flat=flat)

    def options(self, op, where):
        if op.builtinOptions is None:
            raise ModelError(f"{where}: its options are missing")
        return op.builtinOptions

    def conv_2d(self, op, where):
        o = self.options(op, where)
        shape = self.conv_input(op.inputs[0], where)[1]
        w = self.data(op.inputs[1], np.int8)  # (cout, kh, kw, cin)
        if w.ndim != 4:
            raise ModelError(f"{where}: the filter must be 4-D (O, H, W, I)")
        cout, kh, kw, cin = w.shape
        if cin != shape[2]:
            raise ModelError(f"{where}: filter has {cin} input channels, input has {shape[2]}")
        strides = self.strides(o, where)
        dilation = self.dilation(o, where)
        reach = ((kh - 1) * dilation + 1, (kw - 1) * dilation + 1)
        pads = self.pads(shape, reach, strides, o.padding, where)
        weights, pads = square_kernel(dense_weights(w.transpose(0, 3, 1, 2), 1, dilation), pads)
        self.conv_layer(op, where, weights, strides, pads, o.fusedActivationFunction,
                        taps=cin * kh * kw)

    def depthwise_conv_2d(self, op, where):
        """Depthwise: output channel ``c * m + j`` filters input channel ``c`` alone.

        Runs as a dense convolution whose other weights are zero (exact; ``cin`` times the
        MACs of each output channel).
        """
        o = self.options(op, where)
        shape = self.conv_input(op.inputs[0], where)[1]
        w = self.data(op.inputs[1], np.int8)  # (1, kh, kw, cin * m)
        if w.ndim != 4 or w.shape[0] != 1:
            raise ModelError(f"{where}: the filter must be 4-D (1, H, W, C * multiplier)")
        _, kh, kw, cout = w.shape
        cin, m = shape[2], o.depthMultiplier
        if m < 1 or cout != cin * m:
            raise ModelError(f"{where}: the filter has {cout} channels, not the input's "
                             f"{cin} times the depth multiplier {m}")
        strides = self.strides(o, where)
        dilation = self.dilation(o, where)
        reach = ((kh - 1) * dilation + 1, (kw - 1) * dilation + 1)
        pads = self.pads(shape, reach, strides, o.padding, where)
        # (cout, 1, kh, kw): output channel c * m + j is group c's (one input channel each)
        grouped = w[0].transpose(2, 0, 1)[:, None]
        weights, pads = square_kernel(dense_weights(grouped, cin, dilation), pads)
        self.conv_layer(op, where, weights, strides, pads, o.fusedActivationFunction,
                        w_axis=3, taps=kh * kw)

    @staticmethod
    def strides(o, where):
        """``(rows, columns)`` stride of a window operator, equal or not."""
        if min(o.strideH, o.strideW) < 1:
            raise ModelError(f"{where}: strides {o.strideH}x{o.strideW} must be 1 or more")
        return (o.strideH, o.strideW)

    @staticmethod
    def dilation(o, where):
        d = (o.dilationHFactor, o.dilationWFactor)
        if d[0] != d[1] or d[0] < 1:
            raise ModelError(f"{where}: dilations {d[0]}x{d[1]} must be equal and 1 or more")
        return d[0]

    def pads(self, shape, k, strides, padding, where):
        """``(top, left, bottom, right)`` of a window ``k`` (or ``(kh, kw)``) at ``strides``.

        ``strides``: ``(rows, columns)``.
        """
        if padding == self.tfl.Padding.VALID:
            return (0, 0, 0, 0)
        if padding != self.tfl.Padding.SAME:
            raise ModelError(f"{where}: padding {padding} is not supported")
        out = []
        for size, reach, stride in zip(shape[:2], k if isinstance(k, tuple) else (k, k),
                                       strides, strict=True):
            total = max((-(-size // stride) - 1) * stride + reach - size, 0)
            out.append((total // 2, total - total // 2))
        (t, b), (left, r) = out
        return (t, left, b, r)

    def fully_connected(self, op, where):
        o = op.builtinOptions
        shape = self.value(op.inputs[0], where)[0]
        w = self.data(op.inputs[1], np.int8)
        h, wd, c = shape
        if w.ndim != 2 or w.shape[1] != h * wd * c:
            raise ModelError(f"{where}: weights {w.shape} do not match input {shape}")
        if o is not None and (o.keepNumDims or o.weightsFormat != 0):
            raise ModelError(f"{where}: keep_num_dims and shuffled weights are not supported")
        # TFLite flattens NHWC: column (y * W + x) * C + c. A rectangular map runs as one
        # max(H, W) square window (square_kernel).
        weights, pads = square_kernel(w.reshape(w.shape[0], h, wd, c).transpose(0, 3, 1, 2),
                                      (0, 0, 0, 0))
        act = o.fusedActivationFunction if o is not None else 0
        self.conv_layer(op, where, weights, (1, 1), pads, act, flat=True, taps=h * wd * c)

    def max_pool_2d(self, op, where):
        o = self.options(op, where)
        x = self.value(op.inputs[0], where)
        strides = self.strides(o, where)
        if o.filterHeight != o.filterWidth or o.filterHeight < 1:
            raise ModelError(f"{where}: window {o.filterHeight}x{o.filterWidth} must be "
                             "square")
        if o.fusedActivationFunction != self.tfl.ActivationFunctionType.NONE:
            raise ModelError(f"{where}: a fused activation on max-pool is not supported")
        yq = self.act_quant(op.outputs[0])
        if yq != x[1]:
            raise ModelError(f"{where}: input and output quantization must be equal")
        pads = self.pads(x[0], o.filterHeight, strides, o.padding, where)
        self.add(op, MaxPool(kernel=o.filterHeight, pads=pads, name=self.name(op.outputs[0]),
                             **stride_fields(strides)), x, yq, flat=x[2])

    def average_pool_2d(self, op, where):
        """``AVERAGE_POOL_2D``: the rounded mean of each window (module text).

        A window covering the whole input is an ``AVGPOOL`` (no multiplies); any other is
        a convolution whose weights are 1 from each channel to itself (exact: the sum of
        the window's int8 values; ``C`` times the adds of a depthwise pool on the array).
        """
        o = self.options(op, where)
        x = self.value(op.inputs[0], where)
        h, w, c = x[0]
        kh, kw = o.filterHeight, o.filterWidth
        # the whole map, rectangular or not: one window (any strides: one output)
        whole = (kh, kw) == (h, w) and min(o.strideH, o.strideW) >= 1 and (
            o.padding == self.tfl.Padding.VALID or (o.strideH >= h and o.strideW >= w))
        if not whole and (kh != kw or min(o.strideH, o.strideW) < 1 or kh < 1):
            raise ModelError(f"{where}: window {kh}x{kw} must be square with strides of 1 "
                             f"or more, not {o.strideH}x{o.strideW} (or the window the "
                             f"whole {h}x{w} map)")
        yq = self.act_quant(op.outputs[0])
        if yq != x[1]:
            raise ModelError(f"{where}: input and output quantization must be equal")
        strides = (o.strideH, o.strideW)
        pads = (0, 0, 0, 0) if whole else self.pads(x[0], kh, strides, o.padding, where)
        if any(pads):
            raise ModelError(f"{where}: SAME padding here lets windows overhang the input "
                             f"{x[0][0]}x{x[0][1]} (pads {pads}); TFLite then divides by a "
                             "count that differs per position, which one per-channel "
                             "requantization cannot do")
        lo, hi = self.range_of(o.fusedActivationFunction, yq, where, builtin=True)
        try:
            scale = mean_scale(kh * kw)
        except ValueError as exc:
            raise ModelError(f"{where}: {exc}") from None
        scales = np.full(c, scale, dtype=_F32)
        name = self.name(op.outputs[0])
        if whole:
            layer = GlobalAvgPool(bias=np.zeros(c, dtype=np.int64), scales=scales, zp_out=0,
                                  lo=lo, hi=hi, name=name, op="AveragePool")
        else:
            layer = Conv(weights=ones_kernel(c, kh, kh), bias=np.zeros(c, dtype=np.int64),
                         scales=scales, zp_in=0, zp_out=0, lo=lo, hi=hi, name=name,
                         op="AveragePool", **stride_fields(strides))
        self.add(op, layer, x, yq, flat=x[2])

    def mean(self, op, where):
        """``MEAN`` over height and width (a global average pool, Keras's form of it).

        XNNPACK's arithmetic (:mod:`npugen.sim.models.xnn_mean`) on an ``AVGPOOL`` whose
        constants :func:`mean_constants` finds; the output keeps or drops the 1 x 1 axes.
        """
        x = self.value(op.inputs[0], where)
        if len(op.inputs) != 2:
            raise ModelError(f"{where}: needs the input and its axes")
        if x[2]:
            raise ModelError(f"{where}: the input must be a map (N, H, W, C), not flattened")
        given = [int(a) for a in self.data(op.inputs[1], np.int32).reshape(-1)]
        # negative and reordered axes measured equal (LiteRT: the same XNNPACK formula)
        if sorted(a % 4 if -4 <= a <= 3 else a for a in given) != [1, 2]:
            raise ModelError(f"{where}: only a mean over height and width (axes 1, 2) is "
                             f"supported, not axes {given}")
        yq = self.act_quant(op.outputs[0])
        h, w, c = x[0]
        if max(h, w) > 255:  # AVGPOOL's in_h / in_w fields (checked before the search)
            raise ModelError(f"{where}: a {h}x{w} map is larger than AVGPOOL's 255 x 255")
        try:
            bias, scale, zp = mean_constants(x[1].scale, x[1].zero_point, yq.scale,
                                             yq.zero_point, h * w)
        except ValueError as exc:
            raise ModelError(f"{where}: {exc}") from None
        keep = op.builtinOptions is not None and op.builtinOptions.keepDims
        layer = GlobalAvgPool(bias=np.full(c, bias, dtype=np.int64),
                              scales=np.full(c, scale, dtype=_F32), zp_out=zp,
                              name=self.name(op.outputs[0]), op="Mean")
        self.add(op, layer, x, yq, flat=not keep)

    def pad(self, op, where):
        """``PAD``/``PADV2`` of a map's height and width with its zero point.

        Nothing runs: the padding joins the next convolution's (whose padding holds the
        input zero point too), so only a ``CONV_2D`` or ``DEPTHWISE_CONV_2D`` may read it.
        """
        if len(op.inputs) not in (2, 3):
            raise ModelError(f"{where}: needs the input, the paddings and at most a value")
        x = self.value(op.inputs[0], where)
        if x[2]:
            raise ModelError(f"{where}: the input must be a map (N, H, W, C), not flattened")
        if self.act_quant(op.outputs[0]) != x[1]:
            raise ModelError(f"{where}: input and output quantization must be equal")
        kind = self.tensor(op.inputs[1]).type
        dtype = {self.tfl.TensorType.INT32: np.int32, self.tfl.TensorType.INT64: np.int64}
        if kind not in dtype:
            raise ModelError(f"{where}: the paddings must be int32 or int64, not "
                             f"{self.type_name(kind)}")
        pads = self.data(op.inputs[1], dtype[kind])
        if pads.shape != (4, 2) or (pads < 0).any() or pads[0].any() or pads[3].any():
            raise ModelError(f"{where}: only non-negative padding of height and width is "
                             f"supported, not {pads.tolist()}")
        if len(op.inputs) == 3 and op.inputs[2] >= 0:
            if self.tensor(op.inputs[2]).type != self.tfl.TensorType.INT8:
                raise ModelError(f"{where}: the padding value must be int8")
            value = self.data(op.inputs[2], np.int8).reshape(-1)
            if value.size != 1 or int(value[0]) != x[1].zero_point:
                raise ModelError(f"{where}: padding value {value.tolist()} is not the zero "
                                 f"point {x[1].zero_point} (only zero padding folds into a "
                                 "convolution)")
        (t, b), (left, r) = (int(v) for v in pads[1]), (int(v) for v in pads[2])
        h, w, c = x[0]
        want = self.shape(op.outputs[0])
        if want and tuple(want) != (1, h + t + b, w + left + r, c):
            raise ModelError(f"{where}: output shape {want}, the padding gives "
                             f"{(1, h + t + b, w + left + r, c)}")
        self.padded[op.outputs[0]] = (op.inputs[0], (t, left, b, r))

    def softmax_op(self, op, where):
        """``SOFTMAX`` at the output: the NPU computes its input, the host the softmax.

        Over the last axis (the channels of a map, the features of a flat vector), LiteRT's
        int8 kernel (:mod:`npugen.sim.models.tfl_softmax`).
        """
        if self.softmax is not None:
            raise ModelError(f"{where}: only one SOFTMAX, at the output, is supported")
        o = self.options(op, where)
        x = self.value(op.inputs[0], where)
        beta = float(_F32(o.beta))
        if not (np.isfinite(beta) and beta > 0):
            raise ModelError(f"{where}: beta must be a positive float32, not {o.beta}")
        yq = self.act_quant(op.outputs[0])
        # LiteRT's own rule (it refuses to run any other): zero point -128, scale 1/256
        if yq.zero_point != -128 or abs(yq.scale - 1 / 256) > 0.001 / 256:
            raise ModelError(f"{where}: the output must be quantized with scale 1/256 and zero "
                             f"point -128 (LiteRT's rule), not {yq.scale} and {yq.zero_point}")
        self.softmax = {"beta": beta, "input_scale": float(x[1].scale)}
        self.softmax_tensor = op.outputs[0]
        self.values[op.outputs[0]] = (x[0], yq, x[2], x[3])

    def output_of(self, i, where):
        """Return the value at tensor ``i`` for the graph's output (a SOFTMAX's too)."""
        if i == self.softmax_tensor:
            self.softmax_read = True
            return self.values[i]
        return self.value(i, where)

    def reshape(self, op, where):
        softmax = op.inputs[0] == self.softmax_tensor  # (a flatten after it: it moves along)
        x = self.values[op.inputs[0]] if softmax else self.value(op.inputs[0], where)
        if self.act_quant(op.outputs[0]) != x[1]:
            raise ModelError(f"{where}: input and output quantization must be equal")
        out = self.shape(op.outputs[0])
        if int(np.prod(out)) != int(np.prod(x[0])):
            raise ModelError(f"{where}: cannot reshape {x[0]} to {out}")
        if len(out) == 2 and out[0] == 1:
            self.values[op.outputs[0]] = (x[0], x[1], True, x[3])
        elif len(out) == 4 and out[0] == 1 and tuple(out[1:]) == tuple(x[0]):
            self.values[op.outputs[0]] = x
        else:
            raise ModelError(f"{where}: only a flatten to (1, features) is supported, not "
                             f"{out}")
        if softmax:
            last = int(np.prod(x[0])) if x[2] else x[0][2]
            if int(out[-1]) != last:
                raise ModelError(f"{where}: a RESHAPE after SOFTMAX must keep its last axis "
                                 f"({last}), not make it {int(out[-1])}")
            self.softmax_tensor = op.outputs[0]

    def quantize(self, op, where):
        i = op.inputs[0]
        if self.input_quant is not None or list(self.graph.inputs) != [i]:
            raise ModelError(f"{where}: only the graph's float input may be quantized")
        if self.tensor(i).type != self.tfl.TensorType.FLOAT32:
            raise ModelError(f"{where}: the graph input must be float32")
        self.graph_input(i, op.outputs[0], where)

    def graph_input(self, i, q, where):
        """Register graph input ``i`` (float32 or int8) as value 0, quantized as ``q``."""
        shape = self.shape(i)
        if not shape or shape[0] != 1:
            raise ModelError(f"{where}: the input's batch axis must be 1, not {shape[:1]}")
        if len(shape) == 4:
            hwc = shape[1:]
        elif len(shape) == 2:
            hwc = (1, 1, shape[1])
        else:
            raise ModelError(f"{where}: input shape {shape} is not (N, H, W, C) or (N, F)")
        if min(hwc) < 1:
            raise ModelError(f"{where}: input shape {shape} has an empty or dynamic axis")
        self.input_quant = self.act_quant(q)
        self.input_shape, self.model_input_shape = tuple(hwc), tuple(shape[1:])
        self.input_name = self.name(i)
        self.values[q] = (tuple(hwc), self.input_quant, len(shape) == 2, 0)

    def dequantize(self, op, where):
        x = self.output_of(op.inputs[0], where)
        if list(self.graph.outputs) != [op.outputs[0]]:
            raise ModelError(f"{where}: only the graph's output may be dequantized")
        if self.tensor(op.outputs[0]).type != self.tfl.TensorType.FLOAT32:
            raise ModelError(f"{where}: the output must be float32")
        self.graph_output(x, op.outputs[0])

    def graph_output(self, x, i):
        """Make value ``x`` the network's output, named as tensor ``i``."""
        self.output_quant, self.output_value = x[1], x[3]
        self.output_flat, self.output_name = x[2], self.name(i)

    def sub_op(self, op, where):
        """``SUB``: ``a - b``, XNNPACK's add with b's multiplier negated."""
        self.add_op(op, where, subtract=True)

    def add_op(self, op, where, subtract=False):
        """``ADD``: two int8 tensors of one shape, XNNPACK's integer add, a fused activation."""
        if len(op.inputs) != 2:
            raise ModelError(f"{where}: needs two inputs")
        a, b = (self.value(i, where) for i in op.inputs)
        if a[0] != b[0]:
            raise ModelError(f"{where}: inputs of shapes {a[0]} and {b[0]} (broadcasting is "
                             "not supported)")
        if a[2] != b[2]:
            raise ModelError(f"{where}: one input is flattened and the other is not (their "
                             "element orders differ)")
        o = op.builtinOptions
        yq = self.act_quant(op.outputs[0])
        lo, hi = self.range_of(o.fusedActivationFunction if o is not None else 0, yq, where)
        layer = Add(a_quant=a[1], b_quant=b[1], out_quant=yq, name=self.name(op.outputs[0]),
                    lo=lo, hi=hi, subtract=subtract)
        self.add(op, layer, a, yq, flat=a[2], sources=(a[3], b[3]))

    def add(self, op, layer, x, yq, flat, sources=None):
        shape = layer.out_shape(x[0])
        if min(shape) < 1:
            raise ModelError(f"{self.where(op)}: the output is empty for input {x[0]}")
        want = self.shape(op.outputs[0])
        got = (1, *shape) if not flat else (1, int(np.prod(shape)))
        if want and tuple(want) != got and tuple(want) != (1, *shape):
            raise ModelError(f"{self.where(op)}: output shape {want}, the layer gives {got}")
        self.layers.append(layer)
        self.inputs.append(sources or (x[3],))
        self.wheres.append(self.where(op))
        self.values[op.outputs[0]] = (shape, yq, flat, len(self.layers))

    def where(self, op):
        code = self.model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        return (f"operator {self.names.get(builtin, builtin)} writing "
                f"{self.name(op.outputs[0])!r}")

    MIN_INPUTS = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2}
    HANDLERS = {"QUANTIZE": "quantize", "CONV_2D": "conv_2d",
                "DEPTHWISE_CONV_2D": "depthwise_conv_2d",
                "FULLY_CONNECTED": "fully_connected", "MAX_POOL_2D": "max_pool_2d",
                "AVERAGE_POOL_2D": "average_pool_2d", "MEAN": "mean", "RESHAPE": "reshape",
                "DEQUANTIZE": "dequantize", "ADD": "add_op", "SUB": "sub_op",
                "PAD": "pad", "PADV2": "pad", "SOFTMAX": "softmax_op"}

    def run(self):
        codes = self.model.operatorCodes or []
        graph = self.graph
        graph.inputs = [int(v) for v in (graph.inputs if graph.inputs is not None else [])]
        graph.outputs = [int(v) for v in (graph.outputs if graph.outputs is not None else [])]
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise ModelError("the model must have exactly one input and one output")
        kind = self.tensor(graph.inputs[0]).type
        if kind == self.tfl.TensorType.INT8:  # no QUANTIZE: the model takes int8
            self.input_dtype = "int8"
            self.graph_input(graph.inputs[0], graph.inputs[0],
                             f"the graph input {self.name(graph.inputs[0])!r}")
        elif kind != self.tfl.TensorType.FLOAT32:
            raise ModelError(f"the model's input must be float32 (quantized by QUANTIZE) or "
                             f"int8, not {self.type_name(kind)}")
        for op in graph.operators or []:
            if not 0 <= op.opcodeIndex < len(codes):
                raise ModelError(f"operator code index {op.opcodeIndex} is out of range")
            code = codes[op.opcodeIndex]
            name = self.names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
            if name not in self.HANDLERS:
                raise ModelError(f"operator {name} is not supported; supported: "
                                 + ", ".join(sorted(self.HANDLERS)))
            # the schema's object form holds index vectors as numpy arrays (or None)
            op.inputs = [int(v) for v in (op.inputs if op.inputs is not None else [])]
            op.outputs = [int(v) for v in (op.outputs if op.outputs is not None else [])]
            if len(op.inputs) < self.MIN_INPUTS.get(name, 1) or len(op.outputs) != 1:
                raise ModelError(f"operator {name}: needs {self.MIN_INPUTS.get(name, 1)} "
                                 "or more inputs and one output")
            getattr(self, self.HANDLERS[name])(op, self.where(op))
        out = graph.outputs[0]
        kind = self.tensor(out).type
        if self.output_quant is None and kind == self.tfl.TensorType.INT8:
            # no DEQUANTIZE: the model returns the int8 tensor itself
            self.output_dtype = "int8"
            self.graph_output(self.output_of(out, f"the graph output {self.name(out)!r}"), out)
        elif self.output_quant is None:
            raise ModelError(f"the graph output {self.name(out)!r} must be int8 or float32 "
                             f"written by DEQUANTIZE, not {self.type_name(kind)}"
                             + (" (no DEQUANTIZE writes it)"
                                if kind == self.tfl.TensorType.FLOAT32 else ""))
        if self.softmax is not None and not self.softmax_read:
            raise ModelError(f"the output of SOFTMAX {self.name(self.softmax_tensor)!r} is "
                             "not the graph's output (the host computes it after the NPU)")
        unread = [i for i in self.padded if i not in self.pads_read]
        if unread:
            raise ModelError(f"the output of PAD {self.name(unread[0])!r} is never used")
        check_graph(self, self.output_value, "QUANTIZE", "DEQUANTIZE")

    def type_name(self, kind):
        names = {v: k for k, v in vars(self.tfl.TensorType).items() if not k.startswith("_")}
        return names.get(kind, str(kind)).lower()


def network_from_tflite(model):
    """Return the :class:`~.ir.Network` of a model read by :func:`load_tflite`."""
    importer = _Importer(model, _schema())
    try:
        importer.run()
    except (AttributeError, IndexError, KeyError, TypeError) as exc:
        # a field of an unexpected type or length the checks above did not foresee
        raise ModelError(f"the model is malformed ({type(exc).__name__}: {exc})") from None
    return Network(input_shape=importer.input_shape, input_quant=importer.input_quant,
                   layers=importer.layers, output_quant=importer.output_quant,
                   output_layout="flat_hwc" if importer.output_flat else "hwc", mode="ort",
                   input_name=importer.input_name, output_name=importer.output_name,
                   model_input_shape=importer.model_input_shape, input_layout="hwc",
                   quantize_rule="mul_inverse", add_kernel="xnnpack", inputs=importer.inputs,
                   output_value=importer.output_value, input_dtype=importer.input_dtype,
                   output_dtype=importer.output_dtype, output_softmax=importer.softmax)
