"""int8 ``.tflite`` models written from scratch, and LiteRT's interpreter to run them.

LiteRT (``ai-edge-litert``) ships the TFLite flatbuffer schema's Python classes; a model is
packed from them with ``flatbuffers`` (no TensorFlow, nothing downloaded). :class:`Graph`
adds tensors and operators; :func:`fc_model` is the one-layer model of the rounding tests;
:func:`run` runs a model in LiteRT with a chosen kernel path.
"""

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as tfl
from ai_edge_litert.interpreter import Interpreter, OpResolverType

__all__ = ["Graph", "OpResolverType", "fc_model", "run", "tfl"]

#: Operator versions that cover int8 tensors (the interpreter looks kernels up by version).
VERSIONS = {"CONV_2D": 3, "FULLY_CONNECTED": 4, "MAX_POOL_2D": 2, "AVERAGE_POOL_2D": 2,
            "RESHAPE": 1, "QUANTIZE": 2, "DEQUANTIZE": 2, "ADD": 2, "MEAN": 2,
            "DEPTHWISE_CONV_2D": 3, "SOFTMAX": 2}
TYPES = {np.dtype(np.int8): tfl.TensorType.INT8, np.dtype(np.int32): tfl.TensorType.INT32,
         np.dtype(np.float32): tfl.TensorType.FLOAT32}


class Graph:
    """One subgraph under construction; tensors and operators are appended in order."""

    def __init__(self):
        self.tensors, self.buffers, self.ops, self.codes = [], [tfl.BufferT()], [], []

    def tensor(self, shape, dtype, scale=None, zero_point=0, data=None, axis=0, name=None):
        """Add a tensor (constant when ``data`` is given); return its index."""
        t = tfl.TensorT()
        t.shape, t.type = [int(v) for v in shape], TYPES[np.dtype(dtype)]
        t.name = name or f"t{len(self.tensors)}"
        b = tfl.BufferT()
        if data is not None:
            data = np.ascontiguousarray(np.asarray(data).astype(dtype)).reshape(shape)
            b.data = list(data.tobytes())
        self.buffers.append(b)
        t.buffer = len(self.buffers) - 1
        if scale is not None:
            q = tfl.QuantizationParametersT()
            q.scale = [float(v) for v in np.atleast_1d(np.float32(scale))]
            q.zeroPoint = [int(v) for v in np.broadcast_to(zero_point, len(q.scale))]
            q.quantizedDimension = axis
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, name, inputs, outputs, options=None, version=None):
        """Add operator ``name`` (a ``BuiltinOperator`` name); ``options`` an ``...OptionsT``."""
        code = getattr(tfl.BuiltinOperator, name)
        key = (code, version or VERSIONS.get(name, 1))
        if key not in self.codes:
            self.codes.append(key)
        o = tfl.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.codes.index(key), list(inputs), list(outputs)
        if options is not None:
            o.builtinOptionsType = getattr(tfl.BuiltinOptions, type(options).__name__[:-1])
            o.builtinOptions = options
        self.ops.append(o)

    def model(self, inputs, outputs):
        """Return the model's bytes with graph inputs and outputs ``inputs``/``outputs``."""
        graph = tfl.SubGraphT()
        graph.tensors, graph.operators = self.tensors, self.ops
        graph.inputs, graph.outputs = list(inputs), list(outputs)
        model = tfl.ModelT()
        model.version, model.subgraphs, model.buffers = 3, [graph], self.buffers
        model.operatorCodes = []
        for code, version in self.codes:
            c = tfl.OperatorCodeT()
            c.builtinCode, c.version = code, version
            c.deprecatedBuiltinCode = min(code, 127)
            model.operatorCodes.append(c)
        builder = flatbuffers.Builder(0)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def fc_model(weights, bias, s_in, zp_in, s_w, s_out, zp_out):
    """Return the bytes of a model ``y = FULLY_CONNECTED(x, weights, bias)``, no activation.

    ``weights`` int8 ``(N, K)``, ``bias`` int32 ``(N,)``; ``s_w`` one float32 scale or ``N``
    of them (per output channel). Input ``(1, K)``, output ``(1, N)``, both int8. The bias
    scale is ``s_in * s_w`` in float32, as TFLite's converter writes it.
    """
    if np.any(np.abs(np.asarray(bias, dtype=np.int64)) >= 1 << 31):
        raise ValueError("bias must fit int32")
    n, k = np.shape(weights)
    s_w = np.asarray(s_w, dtype=np.float32)
    g = Graph()
    x = g.tensor([1, k], np.int8, s_in, zp_in)
    w = g.tensor([n, k], np.int8, s_w, 0, data=weights)
    b = g.tensor([n], np.int32, np.float32(s_in) * s_w, 0, data=bias)
    y = g.tensor([1, n], np.int8, s_out, zp_out)
    g.op("FULLY_CONNECTED", [x, w, b], [y], tfl.FullyConnectedOptionsT())
    return g.model([x], [y])


def run(model, x, resolver=OpResolverType.AUTO):
    """Run ``model`` on each item of ``x`` (axis 0, each fed with a batch axis of 1).

    ``resolver``: ``AUTO`` is LiteRT's default (XNNPACK on x86-64), ``BUILTIN_REF`` its
    reference kernels, ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` its optimized kernels.
    Returns the outputs stacked, as int64 for an integer output.
    """
    interp = Interpreter(model_content=model, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    (i,), (o,) = interp.get_input_details(), interp.get_output_details()
    out = []
    for item in np.asarray(x):
        interp.set_tensor(i["index"], item[None].astype(i["dtype"]))
        interp.invoke()
        y = interp.get_tensor(o["index"])[0]
        out.append(y.astype(np.int64) if np.issubdtype(y.dtype, np.integer) else y.copy())
    return np.array(out)
