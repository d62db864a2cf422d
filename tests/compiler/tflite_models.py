"""int8 ``.tflite`` models written from scratch, and LiteRT's interpreter to run them.

Models are packed with :class:`npugen.sim.compiler.tflite_write.Graph` (LiteRT's schema
classes and ``flatbuffers``; no TensorFlow, nothing downloaded); LiteRT's interpreter
judges them. :func:`fc_model` is the one-layer model of the rounding tests; :func:`run` runs
a model in LiteRT with a chosen kernel path.
"""

import numpy as np
from ai_edge_litert import schema_py_generated as tfl
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from npugen.sim.compiler.tflite_write import Graph

__all__ = ["Graph", "OpResolverType", "fc_model", "run", "tfl"]

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
