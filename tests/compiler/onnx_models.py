"""Small float ONNX models for the compiler tests, quantized with onnxruntime.

``build(spec, ...)`` makes a float model from a list of layer specs and quantizes it with
``quantize_static`` (QOperator or QDQ, per-tensor or per-channel weights) on calibration
data drawn from ``input_range`` (an all-positive range puts the input zero point at -128,
an all-negative one at +127).
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from npugen.sim.flow.digits import quantize


def float_model(rng, input_shape, spec):
    """Return ``(model, output_rank)``; ``spec``: list of ``(op, kwargs)``.

    ops: ``conv`` (cout, k: an int or ``(kh, kw)``, stride: an int or ``(rows, columns)``,
    pads, group, dilation, act: none|relu|relu6),
    ``maxpool`` (k, stride: as conv's, pads), ``avgpool`` (k, stride, pads), ``gap``, ``flatten``,
    ``gemm`` (cout, bias), ``matmul`` (cout), ``mark`` (as: remember the current tensor under
    a name), ``add`` (with: add the tensor remembered under that name, a residual
    connection; act as for conv).
    """
    nodes, inits = [], []
    marked = {}
    name, shape = "x", list(input_shape)  # C H W or F

    def new(prefix):
        return f"{prefix}{len(nodes)}"

    def init(key, value):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), key))
        return key

    for op, kw in spec:
        out = new(op)
        if op == "conv":
            c, h, w = shape
            k, s, pads = kw["k"], kw.get("stride", 1), list(kw.get("pads", [0] * 4))
            kh, kwd = k if isinstance(k, tuple) else (k, k)  # (kh, kw) or one int
            sh, sw = s if isinstance(s, tuple) else (s, s)
            g, d = kw.get("group", 1), kw.get("dilation", 1)
            wgt = init(new("W"), rng.normal(0, 1 / np.sqrt(c // g * kh * kwd),
                                            (kw["cout"], c // g, kh, kwd)))
            b = init(new("B"), rng.normal(0, 0.2, kw["cout"]))
            nodes.append(helper.make_node("Conv", [name, wgt, b], [out], pads=pads,
                                          strides=[sh, sw], kernel_shape=[kh, kwd], group=g,
                                          dilations=[d, d]))
            span_h, span_w = (kh - 1) * d + 1, (kwd - 1) * d + 1
            shape = [kw["cout"], (h + pads[0] + pads[2] - span_h) // sh + 1,
                     (w + pads[1] + pads[3] - span_w) // sw + 1]
            act = kw.get("act", "none")
            if act != "none":
                after = new("act")
                if act == "relu":
                    nodes.append(helper.make_node("Relu", [out], [after]))
                else:
                    lo = init(new("lo"), np.float32(0))
                    hi = init(new("hi"), np.float32(6))
                    nodes.append(helper.make_node("Clip", [out, lo, hi], [after]))
                out = after
        elif op == "maxpool":
            c, h, w = shape
            k, s, pads = kw["k"], kw.get("stride", 1), list(kw.get("pads", [0] * 4))
            sh, sw = s if isinstance(s, tuple) else (s, s)
            nodes.append(helper.make_node("MaxPool", [name], [out], kernel_shape=[k, k],
                                          strides=[sh, sw], pads=pads))
            shape = [c, (h + pads[0] + pads[2] - k) // sh + 1,
                     (w + pads[1] + pads[3] - k) // sw + 1]
        elif op == "avgpool":
            c, h, w = shape
            k, s, pads = kw["k"], kw.get("stride", kw["k"]), list(kw.get("pads", [0] * 4))
            nodes.append(helper.make_node("AveragePool", [name], [out], kernel_shape=[k, k],
                                          strides=[s, s], pads=pads))
            shape = [c, (h + pads[0] + pads[2] - k) // s + 1, (w + pads[1] + pads[3] - k) // s + 1]
        elif op == "gap":
            nodes.append(helper.make_node("GlobalAveragePool", [name], [out]))
            shape = [shape[0], 1, 1]
        elif op == "flatten":
            nodes.append(helper.make_node("Flatten", [name], [out]))
            shape = [int(np.prod(shape))]
        elif op == "gemm":
            wgt = init(new("W"), rng.normal(0, 1 / np.sqrt(shape[0]), (kw["cout"], shape[0])))
            ins = [name, wgt]
            if kw.get("bias", True):
                ins.append(init(new("B"), rng.normal(0, 0.2, kw["cout"])))
            nodes.append(helper.make_node("Gemm", ins, [out], transB=1))
            shape = [kw["cout"]]
        elif op == "mark":
            marked[kw["as"]] = (name, list(shape))
            continue
        elif op == "add":
            other, other_shape = marked[kw["with"]]
            assert other_shape == shape, (other_shape, shape)
            nodes.append(helper.make_node("Add", [name, other], [out]))
            if kw.get("act", "none") == "relu":
                after = new("act")
                nodes.append(helper.make_node("Relu", [out], [after]))
                out = after
        elif op == "matmul":
            wgt = init(new("W"), rng.normal(0, 1 / np.sqrt(shape[0]), (shape[0], kw["cout"])))
            nodes.append(helper.make_node("MatMul", [name, wgt], [out]))
            shape = [kw["cout"]]
        else:
            raise ValueError(op)
        name = out
    graph = helper.make_graph(
        nodes, "test", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                      [None, *input_shape])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, *shape])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build(tmp_path, rng, input_shape, spec, *, fmt="QOperator", per_channel=True,
          input_range=(-1.0, 1.0), calibration=16, tag="m"):
    """Write the float model and its int8 form; return ``(int8 path, float path)``."""
    model = float_model(rng, input_shape, spec)
    float_path = tmp_path / f"{tag}.onnx"
    onnx.save(model, float_path)
    cal = rng.uniform(*input_range, size=(calibration, *input_shape)).astype(np.float32)
    q_path = tmp_path / f"{tag}_{fmt}_{'pc' if per_channel else 'pt'}.onnx"
    quantize(float_path, q_path, cal, fmt=fmt, per_channel=per_channel)
    return q_path, float_path


def ops_of(path):
    """Operator types of a model, in order."""
    return [n.op_type for n in onnx.load(path).graph.node]
