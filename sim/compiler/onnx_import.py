"""Read an int8 ONNX model (onnxruntime's ``quantize_static`` output) into a :class:`Network`.

Both of the quantizer's formats are read:

- **QOperator**: ``QuantizeLinear`` on the float input, ``QLinearConv``, ``MaxPool`` on
  int8, ``Flatten``/``Reshape``, ``QGemm`` (com.microsoft), ``QLinearMatMul``,
  ``QLinearGlobalAveragePool``, ``QLinearAveragePool`` over the whole input (com.microsoft)
  and ``QLinearAdd`` (com.microsoft), and ``DequantizeLinear``
  on the output. An activation may feed several nodes (residual connections). A grouped
  (depthwise) or dilated ``QLinearConv`` runs as a dense convolution whose other weights are
  zero: exact, at the dense layer's cost.
- **QDQ**: float ``Conv``/``Gemm``/``MatMul``/``MaxPool``/``GlobalAveragePool``/``AveragePool``/
  ``Flatten``/``Reshape`` between ``DequantizeLinear`` and ``QuantizeLinear`` nodes; an
  ``Add`` is refused (onnxruntime runs it unfused, in float32). Each
  such group is rewritten to the QOperator node onnxruntime fuses it into at load time
  (its QDQ transformers), so both forms of one model compile to the same program.

Arithmetic follows onnxruntime's CPU kernels: the requantization scale of a convolution or
matrix product is the float32 expression ``x_scale * w_scale / y_scale`` evaluated left to
right in float32, the bias is the model's int32 bias, and the input zero point enters
exactly (the lowering folds it into the bias). Whatever the NPU cannot compute exactly is
refused with :class:`ImportError_` naming the node, never approximated.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .ir import (
    Add,
    Conv,
    GlobalAvgPool,
    MaxPool,
    Network,
    TensorQuant,
    dense_weights,
    square_kernel,
    stride_fields,
)

__all__ = ["ModelError", "check_graph", "load_onnx", "network_from_onnx"]

#: Refuse model files bigger than this before parsing them (bounded memory).
MAX_MODEL_BYTES = 256 << 20

_F32 = np.float32


class ModelError(ValueError):
    """The model cannot be compiled (malformed, or an operator the NPU cannot run exactly)."""


@dataclass
class _Node:
    """A node in QOperator form (the importer's only input)."""

    op: str
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)
    name: str = ""

    def where(self):
        return f"node {self.name or self.outputs[0]!r} ({self.op})"


@dataclass
class _Value:
    """An int8 activation: NPU shape (H, W, C), quantization, flattened or not, value id."""

    shape: tuple
    quant: TensorQuant
    flat: bool = False
    vid: int = 0  # the Network's value: 0 the input, n + 1 layer n's output


def load_onnx(path):
    """Load and check an ONNX file; :class:`ModelError` if it is missing, too big or bad."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ModelError(f"cannot read model {str(path)!r}: {exc.strerror}") from None
    if size > MAX_MODEL_BYTES:
        raise ModelError(f"model {str(path)!r} is {size} bytes; at most {MAX_MODEL_BYTES}")
    try:
        model = onnx.load_model_from_string(path.read_bytes())
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf's and the checker's errors have no common base
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{str(path)!r} is not a valid ONNX model: {first}") from None
    return model


def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _scalar(consts, name):
    """Return a constant scalar's value (None if absent or not a one-element constant)."""
    value = consts.get(name) if name else None
    return value.reshape(-1)[0].item() if value is not None and value.size == 1 else None


def _qdq_to_qoperator(graph, consts):
    """Rewrite QDQ groups into the QOperator nodes onnxruntime fuses them into."""
    nodes = list(graph.node)
    producer = {o: n for n in nodes for o in n.output}
    consumers = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}
    if not any(n.op_type == "DequantizeLinear" and n.output[0] not in outputs for n in nodes):
        return [_Node(n.op_type, list(n.input), list(n.output), _attrs(n), n.name)
                for n in nodes]

    def dq(name):
        """``(q, scale, zp)`` when ``name`` is a DequantizeLinear's output, else None."""
        n = producer.get(name)
        if n is None or n.op_type != "DequantizeLinear":
            return None
        zp = n.input[2] if len(n.input) > 2 else ""
        return n.input[0], n.input[1], zp

    def q_after(name):
        """Return the single QuantizeLinear that consumes ``name`` (its node), or None."""
        users = consumers.get(name, [])
        if len(users) == 1 and users[0].op_type == "QuantizeLinear":
            return users[0]
        return None

    out, done = [], set()
    for n in nodes:
        if id(n) in done:
            continue
        if n.op_type == "DequantizeLinear":
            if n.output[0] in outputs:
                out.append(_Node(n.op_type, list(n.input), list(n.output), _attrs(n), n.name))
            continue  # folded into its consumer
        if n.op_type == "QuantizeLinear":
            if producer.get(n.input[0]) is None:  # on the graph input
                out.append(_Node(n.op_type, list(n.input), list(n.output), _attrs(n), n.name))
            continue  # otherwise folded into its producer
        ins = [dq(i) if i else None for i in n.input]
        q = q_after(n.output[0])
        where = f"node {n.name or n.output[0]!r} ({n.op_type})"
        if ins[0] is None or q is None:
            raise ModelError(f"{where}: in a QDQ model every operator must read a "
                             "DequantizeLinear and feed one QuantizeLinear")
        done.add(id(q))
        y = [q.input[1], q.input[2] if len(q.input) > 2 else ""]
        x = list(ins[0])
        if n.op_type in ("Conv", "Gemm", "MatMul"):
            if len(ins) < 2 or ins[1] is None:
                raise ModelError(f"{where}: weights must come through a DequantizeLinear")
            w = list(ins[1])
            bias = []
            if len(ins) > 2 and n.input[2]:
                if ins[2] is None:
                    raise ModelError(f"{where}: the bias must be an int32 DequantizeLinear")
                bias = [ins[2][0]]
            if n.op_type == "Conv":
                out.append(_Node("QLinearConv", x + w + y + bias, list(q.output), _attrs(n),
                                 n.name))
            elif n.op_type == "Gemm":
                out.append(_Node("QGemm", x + w + (bias or [""]) + y, list(q.output),
                                 _attrs(n), n.name))
            elif bias:
                raise ModelError(f"{where}: MatMul has no bias")
            else:
                out.append(_Node("QLinearMatMul", x + w + y, list(q.output), _attrs(n),
                                 n.name))
        elif n.op_type == "Add":
            # Measured (onnxruntime 1.32, CPU): DequantizeLinear -> Add -> QuantizeLinear
            # stays unfused in residual graphs and runs in float32 (docs/compiler.md).
            raise ModelError(f"{where}: in QDQ form onnxruntime computes Add in float32 "
                             "(DequantizeLinear, Add, QuantizeLinear; not fused into "
                             "QLinearAdd), which the NPU does not reproduce bit for bit; "
                             "quantize with QuantFormat.QOperator (QLinearAdd)")
        elif n.op_type == "GlobalAveragePool":
            out.append(_Node("QLinearGlobalAveragePool", x + y, list(q.output),
                             {"channels_last": 0}, n.name))
        elif n.op_type == "AveragePool":  # onnxruntime's QDQ rules fuse it likewise
            out.append(_Node("QLinearAveragePool", x + y, list(q.output),
                             {**_attrs(n), "channels_last": 0}, n.name))
        elif n.op_type in ("MaxPool", "Flatten", "Reshape"):
            # onnxruntime drops the DQ/Q pair around these when the two agree
            if _scalar(consts, x[1]) != _scalar(consts, y[0]) or \
                    _scalar(consts, x[2]) != _scalar(consts, y[1]):
                raise ModelError(f"{where}: input and output quantization differ")
            out.append(_Node(n.op_type, [x[0], *n.input[1:]], list(q.output), _attrs(n),
                             n.name))
        else:
            raise ModelError(f"{where}: operator {n.op_type} is not supported "
                             "(see docs/compiler.md for the list)")
    return out


def _consts(graph):
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant":
            a = _attrs(n)
            if "value" not in a:
                raise ModelError(f"Constant {n.output[0]!r}: only tensor values are supported")
            values[n.output[0]] = numpy_helper.to_array(a["value"])
    return values


class _Importer:
    def __init__(self, graph):
        self.graph = graph
        self.consts = _consts(graph)
        self.values = {}
        self.layers = []
        self.inputs = []  # per layer, the value ids it reads
        self.wheres = []  # per layer, its node for messages
        self.output_vid = None
        self.input_quant = None
        self.output_quant = None

    # -- helpers ---------------------------------------------------------------------
    def const(self, node, name, what, dtype=None):
        if not name:
            return None
        if name not in self.consts:
            raise ModelError(f"{node.where()}: {what} must be a constant (initializer)")
        value = self.consts[name]
        if dtype is not None and value.dtype != dtype:
            raise ModelError(f"{node.where()}: {what} must be {np.dtype(dtype).name}, not "
                             f"{value.dtype.name}")
        return value

    def scale(self, node, name, what):
        s = self.const(node, name, what, np.float32)
        if s.size != 1 or not np.isfinite(s).all() or float(s.reshape(-1)[0]) <= 0:
            raise ModelError(f"{node.where()}: {what} must be one positive finite float32")
        return _F32(s.reshape(-1)[0])

    def zero_point(self, node, name, what):
        if not name:
            return 0
        zp = self.const(node, name, what)
        if zp.dtype == np.uint8:
            raise ModelError(f"{node.where()}: {what} is uint8; the NPU runs int8 activations "
                             "(quantize with activation_type=QuantType.QInt8)")
        if zp.dtype != np.int8 or zp.size != 1:
            raise ModelError(f"{node.where()}: {what} must be one int8 value")
        return int(zp.reshape(-1)[0])

    def quant(self, node, scale, zp, what):
        if not zp:  # ONNX's default zero point is uint8 (before opset 21's output_dtype)
            raise ModelError(f"{node.where()}: the {what} zero point is missing, which makes "
                             "the tensor uint8; the NPU runs int8 activations")
        return TensorQuant(float(self.scale(node, scale, f"{what} scale")),
                           self.zero_point(node, zp, f"{what} zero point"))

    def value(self, node, name):
        if name not in self.values:
            raise ModelError(f"{node.where()}: input {name!r} is not an int8 activation this "
                             "compiler produced")
        return self.values[name]

    def weights(self, node, w_name, ws_name, wzp_name, cout_axis):
        w = self.const(node, w_name, "weight", None)
        if w.ndim <= cout_axis:
            raise ModelError(f"{node.where()}: weights of shape {w.shape} are not supported")
        if w.dtype != np.int8:
            raise ModelError(f"{node.where()}: weights must be int8 (weight_type=QInt8), "
                             f"not {w.dtype.name}")
        ws = self.const(node, ws_name, "weight scale", np.float32).reshape(-1)
        cout = w.shape[cout_axis]
        if ws.size not in (1, cout) or not (np.isfinite(ws) & (ws > 0)).all():
            raise ModelError(f"{node.where()}: weight scale must be 1 or {cout} positive "
                             "float32 values")
        if wzp_name:
            wzp = self.const(node, wzp_name, "weight zero point")
            if wzp.size not in (1, cout) or np.any(wzp != 0):
                raise ModelError(f"{node.where()}: weight zero points must be 0 (symmetric "
                                 "weights; quantize with WeightSymmetric=True, the default "
                                 "for int8)")
        return w.astype(np.int64), np.broadcast_to(ws, (cout,)).astype(np.float32)

    @staticmethod
    def requant_scales(x_scale, w_scales, y_scale):
        """Onnxruntime's per-channel output scale, ``x_scale * w_scale / y_scale`` in float32."""
        return (_F32(x_scale) * w_scales.astype(np.float32)) / _F32(y_scale)

    def bias(self, node, name, cout):
        if not name:
            return np.zeros(cout, dtype=np.int64)
        b = self.const(node, name, "bias", np.int32).reshape(-1)
        if b.size != cout:
            raise ModelError(f"{node.where()}: bias has {b.size} values, not {cout}")
        return b.astype(np.int64)

    @staticmethod
    def window(node, kernel_shape, where_shape, dilated=False, rectangular=False):
        """Return ``(k, strides, pads, dilation)``; ``dilated``: the operator may dilate.

        ``rectangular``: the window may be ``kh x kw`` (a convolution's); ``k`` is then the
        pair ``(kh, kw)``, else one int. ``strides``: ``(rows, columns)``, equal or not.
        """
        a = node.attrs
        ks = list(a.get("kernel_shape", kernel_shape))
        strides = list(a.get("strides", [1, 1]))
        pads = list(a.get("pads", [0, 0, 0, 0]))
        dil = list(a.get("dilations", [1, 1]))
        auto_pad = a.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if len(ks) != 2 or min(ks) < 1 or (ks[0] != ks[1] and not rectangular):
            what = "2-D with sizes of 1 or more" if rectangular else "square 2-D"
            raise ModelError(f"{node.where()}: kernel must be {what}, not {ks}")
        if len(strides) != 2 or min(strides) < 1:
            raise ModelError(f"{node.where()}: strides must be two values of 1 or more, not "
                             f"{strides}")
        if dilated:
            if len(dil) != 2 or dil[0] != dil[1] or dil[0] < 1:
                raise ModelError(f"{node.where()}: dilations must be two equal values of 1 or "
                                 f"more, not {dil}")
        elif dil != [1, 1]:
            raise ModelError(f"{node.where()}: dilations must be 1, not {dil}")
        if auto_pad not in ("NOTSET", "VALID"):
            raise ModelError(f"{node.where()}: auto_pad {auto_pad} is not supported "
                             "(NOTSET or VALID)")
        if auto_pad == "VALID":
            pads = [0, 0, 0, 0]
        span = [(k - 1) * dil[0] + 1 for k in ks]  # the dilated window, rows and columns
        if len(pads) != 4 or min(pads) < 0 or max(pads[0], pads[2]) >= span[0] \
                or max(pads[1], pads[3]) >= span[1]:
            limits = (f"0..{span[0] - 1}" if span[0] == span[1] else
                      f"0..{span[0] - 1} (top, bottom) and 0..{span[1] - 1} (left, right)")
            raise ModelError(f"{node.where()}: pads must be 4 values in {limits} (the "
                             f"window's size less 1), not {pads}")
        t, left, b, r = pads[0], pads[1], pads[2], pads[3]
        k = (ks[0], ks[1]) if rectangular else ks[0]
        return k, (strides[0], strides[1]), (t, left, b, r), dil[0]

    # -- operators -------------------------------------------------------------------
    def quantize_input(self, node):
        x = node.inputs[0]
        inputs = {i.name: i for i in self.graph.input if i.name not in self.consts}
        if self.input_quant is not None or x not in inputs:
            raise ModelError(f"{node.where()}: only the graph input may be quantized")
        dims = [d.dim_value if d.HasField("dim_value") else None
                for d in inputs[x].type.tensor_type.shape.dim]
        if len(dims) == 4 and None not in dims[1:]:
            c, h, w = dims[1:]
            shape, flat = (h, w, c), False
        elif len(dims) == 2 and dims[1] is not None:
            shape, flat = (1, 1, dims[1]), True
        else:
            raise ModelError(f"input {x!r} must be N x C x H x W or N x F with fixed sizes, "
                             f"not {dims}")
        if inputs[x].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise ModelError(f"input {x!r} must be float32")
        self.input_quant = self.quant(node, node.inputs[1], node.inputs[2]
                                      if len(node.inputs) > 2 else "", "input")
        self.input_name, self.model_input_shape = x, tuple(dims[1:])
        self.input_shape = shape
        self.values[node.outputs[0]] = _Value(shape, self.input_quant, flat)

    def qlinearconv(self, node):
        i = node.inputs + [""] * (9 - len(node.inputs))
        x = self.value(node, i[0])
        xq = self.quant(node, i[1], i[2], "x")
        if xq != x.quant:
            raise ModelError(f"{node.where()}: x scale/zero point differ from the producer's")
        if x.flat:
            raise ModelError(f"{node.where()}: convolution of a flattened tensor")
        groups = node.attrs.get("group", 1)
        w, ws = self.weights(node, i[3], i[4], i[5], 0)
        cin = x.shape[2]
        if not isinstance(groups, int) or groups < 1 or cin % groups or \
                w.shape[0] % groups:
            raise ModelError(f"{node.where()}: group must divide the input channels ({cin}) "
                             f"and the output channels ({w.shape[0]}), not {groups}")
        if w.ndim != 4 or w.shape[1] != cin // groups:
            raise ModelError(f"{node.where()}: weights {w.shape} do not fit input channels "
                             f"{cin} in {groups} group(s)")
        ks, strides, pads, dilation = self.window(node, w.shape[2:], x.shape, dilated=True,
                                                  rectangular=True)
        if ks != tuple(w.shape[2:]):
            raise ModelError(f"{node.where()}: kernel_shape {list(ks)} does not match the "
                             f"weights {list(w.shape[2:])}")
        yq = self.quant(node, i[6], i[7], "y")
        # grouped (depthwise), dilated, rectangular: one dense square convolution with zero
        # weights, exact
        w, pads = square_kernel(dense_weights(w, groups, dilation), pads)
        layer = Conv(weights=w, bias=self.bias(node, i[8], w.shape[0]),
                     scales=self.requant_scales(xq.scale, ws, yq.scale), zp_in=xq.zero_point,
                     zp_out=yq.zero_point, pads=pads, name=node.name,
                     taps=cin // groups * ks[0] * ks[1], **stride_fields(strides))
        self.add(node, layer, x, yq)

    def dense(self, node, x, w, ws, bias, yq):
        """Map a fully connected layer to a Conv whose kernel covers the unflattened input."""
        h, wd, c = x.shape
        if not x.flat:
            raise ModelError(f"{node.where()}: input must be flattened (Flatten/Reshape)")
        if w.shape[1] != h * wd * c:
            raise ModelError(f"{node.where()}: weights take {w.shape[1]} inputs, the input "
                             f"has {h * wd * c}")
        # ONNX flattens N x C x H x W in C, H, W order. A rectangular input runs as one
        # max(H, W) square window (square_kernel).
        weights, pads = square_kernel(w.reshape(w.shape[0], c, h, wd), (0, 0, 0, 0))
        layer = Conv(weights=weights, bias=bias, scales=self.requant_scales(
            x.quant.scale, ws, yq.scale), zp_in=x.quant.zero_point, zp_out=yq.zero_point,
            pads=pads, name=node.name, taps=h * wd * c)
        self.add(node, layer, _Value(x.shape, x.quant, vid=x.vid), yq, flat=True)

    def qgemm(self, node):
        i = node.inputs + [""] * (9 - len(node.inputs))
        a = node.attrs
        if a.get("transA", 0) != 0 or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            raise ModelError(f"{node.where()}: transA must be 0, alpha and beta 1 (onnxruntime "
                             "fuses no other Gemm into QGemm)")
        x = self.value(node, i[0])
        if self.quant(node, i[1], i[2], "a") != x.quant:
            raise ModelError(f"{node.where()}: A's scale/zero point differ from the producer's")
        trans_b = a.get("transB", 0)
        w, ws = self.weights(node, i[3], i[4], i[5], 0 if trans_b else 1)
        if w.ndim != 2:
            raise ModelError(f"{node.where()}: B must be 2-D")
        w = w if trans_b else w.T
        if not i[7]:
            raise ModelError(f"{node.where()}: a QGemm with float output (no y_scale) is not "
                             "supported")
        yq = self.quant(node, i[7], i[8], "y")
        self.dense(node, x, w, ws, self.bias(node, i[6], w.shape[0]), yq)

    def qlinearmatmul(self, node):
        i = node.inputs
        x = self.value(node, i[0])
        if self.quant(node, i[1], i[2], "a") != x.quant:
            raise ModelError(f"{node.where()}: A's scale/zero point differ from the producer's")
        w, ws = self.weights(node, i[3], i[4], i[5], 1)
        if w.ndim != 2:
            raise ModelError(f"{node.where()}: B must be 2-D")
        yq = self.quant(node, i[6], i[7], "y")
        self.dense(node, x, w.T, ws, np.zeros(w.shape[1], dtype=np.int64), yq)

    def maxpool(self, node):
        if len(node.outputs) > 1 and node.outputs[1]:
            raise ModelError(f"{node.where()}: the Indices output is not supported")
        a = node.attrs
        if a.get("ceil_mode", 0) or a.get("storage_order", 0):
            raise ModelError(f"{node.where()}: ceil_mode and storage_order must be 0")
        x = self.value(node, node.inputs[0])
        if x.flat:
            raise ModelError(f"{node.where()}: pooling of a flattened tensor")
        k, strides, pads, _ = self.window(node, a.get("kernel_shape", []), x.shape)
        self.add(node, MaxPool(kernel=k, pads=pads, name=node.name, **stride_fields(strides)),
                 x, x.quant)

    def global_avgpool(self, node):
        i = node.inputs + [""] * (5 - len(node.inputs))
        if node.attrs.get("channels_last", 0):
            raise ModelError(f"{node.where()}: channels_last must be 0")
        x = self.value(node, i[0])
        xq = self.quant(node, i[1], i[2], "x")
        if xq != x.quant or x.flat:
            raise ModelError(f"{node.where()}: input must be the producer's 4-D int8 tensor")
        yq = self.quant(node, i[3], i[4], "y")
        h, w, c = x.shape
        n = h * w
        # onnxruntime (MlasQLinearGlobalAveragePool): scale = x_scale / y_scale / (H * W)
        # in float32, bias = -x_zero_point * H * W, then MlasRequantizeOutput.
        scale = _F32(_F32(xq.scale) / _F32(yq.scale)) / _F32(n)
        layer = GlobalAvgPool(bias=np.full(c, -xq.zero_point * n, dtype=np.int64),
                              scales=np.full(c, scale, dtype=np.float32),
                              zp_out=yq.zero_point, name=node.name)
        self.add(node, layer, x, yq)

    def avgpool(self, node):
        """``QLinearAveragePool``: only a window over the whole input, without padding.

        onnxruntime runs that one on its global average pool (``fallback_to_global`` in
        ``qlinear_pool.cc``: integer sum, one float32 scale), exactly as
        ``QLinearGlobalAveragePool``; any other window it computes in float32 (each input
        dequantized, the window summed in order, divided by its count, quantized), which the
        NPU does not reproduce bit for bit (docs/compiler.md, "Average pools").
        """
        a = node.attrs
        x = self.value(node, node.inputs[0])
        if x.flat:
            raise ModelError(f"{node.where()}: input must be the producer's 4-D int8 tensor")
        h, w, _ = x.shape
        kernel = list(a.get("kernel_shape", []))
        pads = list(a.get("pads", [0] * 2 * len(kernel)))
        auto_pad = a.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if kernel == [h, w] and not any(pads) and auto_pad in ("NOTSET", "VALID"):
            self.global_avgpool(node)
            return
        raise ModelError(f"{node.where()}: an average pool over {kernel} windows of a "
                         f"{h}x{w} input (pads {pads}, auto_pad {auto_pad}) is computed by "
                         "onnxruntime in float32 (inputs dequantized, summed in window order, "
                         "divided by the count), which the NPU does not reproduce bit for "
                         "bit; only a window over the whole input without padding compiles "
                         "(onnxruntime's global path)")

    def flatten(self, node):
        x = self.value(node, node.inputs[0])
        if node.op == "Flatten":
            if node.attrs.get("axis", 1) != 1:
                raise ModelError(f"{node.where()}: axis must be 1")
        else:
            shape = self.const(node, node.inputs[1], "shape").reshape(-1).tolist()
            total = int(np.prod(x.shape))
            ok = len(shape) == 2 and (shape[1] in (-1, total)) and shape[0] in (-1, 0, 1)
            if not ok:
                raise ModelError(f"{node.where()}: only a reshape to N x {total} is supported, "
                                 f"not {shape}")
        self.values[node.outputs[0]] = _Value(x.shape, x.quant, flat=True, vid=x.vid)

    def dequantize_output(self, node):
        x = self.value(node, node.inputs[0])
        q = self.quant(node, node.inputs[1], node.inputs[2] if len(node.inputs) > 2 else "",
                       "output")
        if q != x.quant:
            raise ModelError(f"{node.where()}: scale/zero point differ from the producer's")
        outputs = [o.name for o in self.graph.output]
        if outputs != [node.outputs[0]]:
            raise ModelError(f"{node.where()}: the dequantized tensor must be the graph's only "
                             "output")
        self.output_quant = q
        self.output_vid = x.vid
        self.output_layout = "flat" if x.flat else "chw"
        self.output_name = node.outputs[0]
        self.output_shape = x.shape

    def qlinearadd(self, node):
        i = node.inputs + [""] * (8 - len(node.inputs))
        a, b = self.value(node, i[0]), self.value(node, i[3])
        aq, bq = self.quant(node, i[1], i[2], "A"), self.quant(node, i[4], i[5], "B")
        if aq != a.quant or bq != b.quant:
            raise ModelError(f"{node.where()}: A's or B's scale/zero point differ from their "
                             "producers'")
        if a.shape != b.shape or a.flat != b.flat:
            raise ModelError(f"{node.where()}: A {a.shape} and B {b.shape} must have one shape "
                             "(broadcasting is not supported)")
        cq = self.quant(node, i[6], i[7], "C")
        self.add(node, Add(a_quant=aq, b_quant=bq, out_quant=cq, name=node.name), a, cq,
                 flat=a.flat, sources=(a.vid, b.vid))

    def add(self, node, layer, x, yq, flat=False, sources=None):
        self.layers.append(layer)
        self.inputs.append(sources or (x.vid,))
        self.wheres.append(node.where())
        shape = layer.out_shape(x.shape)
        if min(shape) < 1:
            raise ModelError(f"{node.where()}: the output is empty for input {x.shape}")
        self.values[node.outputs[0]] = _Value(shape, yq, flat, vid=len(self.layers))

    HANDLERS = {"QuantizeLinear": "quantize_input", "QLinearConv": "qlinearconv",
                "QGemm": "qgemm", "QLinearMatMul": "qlinearmatmul", "MaxPool": "maxpool",
                "QLinearGlobalAveragePool": "global_avgpool", "QLinearAveragePool": "avgpool",
                "Flatten": "flatten",
                "Reshape": "flatten", "DequantizeLinear": "dequantize_output",
                "QLinearAdd": "qlinearadd"}

    def run(self, nodes):
        for node in nodes:
            if node.op == "Constant":
                continue
            handler = self.HANDLERS.get(node.op)
            if handler is None:
                raise ModelError(f"{node.where()}: operator {node.op} is not supported; "
                                 "supported: " + ", ".join(sorted(self.HANDLERS)))
            getattr(self, handler)(node)
        check_graph(self, self.output_vid, "QuantizeLinear", "DequantizeLinear")


def check_graph(importer, output_value, quantize, dequantize):
    """Refuse a graph with no float edges, no layer, or a layer whose output nobody reads.

    ``importer``: a frontend's importer (``input_quant``, ``output_quant``, ``layers``,
    ``inputs``: the values each layer reads, ``wheres``: each layer's description);
    ``quantize``/``dequantize``: the format's names of its edge operators.
    """
    if importer.input_quant is None or importer.output_quant is None:
        raise ModelError(f"the model must quantize its float input ({quantize}) and "
                         f"dequantize its output ({dequantize})")
    if not importer.layers:
        raise ModelError("the model has no layer to run")
    read = {v for sources in importer.inputs for v in sources} | {output_value}
    for n, where in enumerate(importer.wheres):
        if n + 1 not in read:
            raise ModelError(f"{where}: its output is never used (the NPU computes the "
                             "one graph output; remove the dead branch)")


def network_from_onnx(model):
    """Return the :class:`~.ir.Network` of an int8 ONNX ``ModelProto`` (QOperator or QDQ)."""
    graph = model.graph
    if len([i for i in graph.input if i.name not in {t.name for t in graph.initializer}]) != 1:
        raise ModelError("the model must have exactly one input")
    importer = _Importer(graph)
    importer.run(_qdq_to_qoperator(graph, importer.consts))
    return Network(input_shape=importer.input_shape, input_quant=importer.input_quant,
                   layers=importer.layers, output_quant=importer.output_quant,
                   output_layout=importer.output_layout, mode="ort",
                   input_name=importer.input_name, output_name=importer.output_name,
                   model_input_shape=importer.model_input_shape, inputs=importer.inputs,
                   output_value=importer.output_vid)
