"""Write int8 ``.tflite`` flatbuffers with LiteRT's schema classes (no TensorFlow).

:class:`Graph` appends tensors (constant when given data, quantized when given scales) and
builtin operators to one subgraph and packs the model with ``flatbuffers``. The digits
network's TFLite form (:mod:`npugen.sim.flow.digits_tflite`) and the tests' random models
are written with it. It writes only what it is told: quantizing a float network is the
caller's business, and LiteRT's interpreter, not this module, is the judge of the result.
"""

import numpy as np

__all__ = ["Graph", "schema"]

#: Operator versions that cover int8 tensors (the interpreter looks kernels up by version).
VERSIONS = {"CONV_2D": 3, "FULLY_CONNECTED": 4, "MAX_POOL_2D": 2, "AVERAGE_POOL_2D": 2,
            "RESHAPE": 1, "QUANTIZE": 2, "DEQUANTIZE": 2, "ADD": 2, "MEAN": 2,
            "DEPTHWISE_CONV_2D": 3, "SOFTMAX": 2, "SUB": 2}


def schema():
    """Return LiteRT's generated schema module (``ai_edge_litert.schema_py_generated``)."""
    from ai_edge_litert import schema_py_generated  # noqa: PLC0415 - an optional extra

    return schema_py_generated


class Graph:
    """One subgraph under construction; tensors and operators are appended in order."""

    def __init__(self):
        self.tfl = schema()
        self.tensors, self.buffers, self.ops, self.codes = [], [self.tfl.BufferT()], [], []

    def tensor(self, shape, dtype, scale=None, zero_point=0, data=None, axis=0, name=None):
        """Add a tensor (constant when ``data`` is given); return its index.

        ``scale``: one float32 scale or one per slice along ``axis`` (``zero_point`` is
        broadcast to as many).
        """
        tfl = self.tfl
        types = {np.dtype(np.int8): tfl.TensorType.INT8,
                 np.dtype(np.int32): tfl.TensorType.INT32,
                 np.dtype(np.float32): tfl.TensorType.FLOAT32}
        t = tfl.TensorT()
        t.shape, t.type = [int(v) for v in shape], types[np.dtype(dtype)]
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
        tfl = self.tfl
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

    def model(self, inputs, outputs, description="npugen"):
        """Return the model's bytes with graph inputs and outputs ``inputs``/``outputs``."""
        import flatbuffers  # noqa: PLC0415 - in the tflite extra, as LiteRT

        tfl = self.tfl
        graph = tfl.SubGraphT()
        graph.tensors, graph.operators = self.tensors, self.ops
        graph.inputs, graph.outputs = list(inputs), list(outputs)
        model = tfl.ModelT()
        model.version, model.subgraphs, model.buffers = 3, [graph], self.buffers
        model.description = description
        model.operatorCodes = []
        for code, version in self.codes:
            c = tfl.OperatorCodeT()
            c.builtinCode, c.version = code, version
            c.deprecatedBuiltinCode = min(code, 127)
            model.operatorCodes.append(c)
        builder = flatbuffers.Builder(0)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())
