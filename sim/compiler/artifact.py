"""The compiled folder that ``npugen compile`` writes and ``npugen infer`` runs.

``DIR/program.npup``
    the program file (:mod:`npugen.sim.formats.program`): instructions, the weight image
    and the requantization tables, for the NPU whose params hash it carries.
``DIR/plan.json``
    the NPU params, the rounding mode, the input's and output's shapes, quantization and
    scratchpad addresses, and per layer: op, shapes, engine, bands (tiles), MACs and the
    predicted cycles (:func:`npugen.sim.models.npu.cycles_of`; an ``SPFC``'s with its matrix
    loaded and every input non-zero).
``DIR/model.onnx`` (or ``DIR/model.tflite``)
    a copy of the source model, for ``npugen infer --check``.

The folder is written next to its final place and renamed into it, so a failed compile
leaves nothing behind and an existing folder is replaced only whole.
"""

import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from npugen.rtl.npu.isa import Op
from npugen.rtl.npu.params import NpuParams

from ..formats.program import disassemble, from_bytes, to_bytes
from .ir import TensorQuant
from .quant import RULES

__all__ = ["Compiled", "PLAN_VERSION", "read_compiled", "write_compiled"]

#: 2: ISA version 2 (ADD), layers read earlier values (``reads``). 3: TFLite models: the
#: input's ``layout`` and ``quantize`` rule, the ``hwc`` and ``flat_hwc`` output layouts.
#: 4: ISA version 3 (ADD mode 1, XNNPACK's add). 5: ISA version 4 (SPFC, the sparse
#: engine; its layers' predicted cycles assume the matrix loaded and every input non-zero).
#: 6: ISA version 6 (CONV's ``engine``: a layer's ``engine`` may be ``winograd``).
#: 7: ``input.dtype`` and ``output.dtype`` (``int8``: a TFLite model's int8 graph edge),
#: ``output.softmax`` (None, or the host's int8 softmax after the NPU: beta, input scale).
#: 8: a layer's ``stride`` is ``[rows, columns]`` where they differ.
PLAN_VERSION = 8
#: Valid ``input.layout``, ``input.quantize`` and ``output.layout`` values.
INPUT_LAYOUTS, OUTPUT_LAYOUTS = ("chw", "hwc"), ("chw", "flat", "hwc", "flat_hwc")
#: Valid ``input.dtype`` and ``output.dtype``: the model's float edge, or its int8 tensor.
DTYPES = ("float32", "int8")
_ENGINE = {Op.CONV: "systolic", Op.MAXPOOL: "pool", Op.AVGPOOL: "pool", Op.ADD: "add",
           Op.SPFC: "sparse"}


def _engine(op, fields):
    """Name the engine an instruction runs on (a CONV with ``engine`` 1: the Winograd one)."""
    return "winograd" if op is Op.CONV and fields["engine"] else _ENGINE[op]


def _stride(layer):
    """Return a layer's stride for the plan: an int, ``[rows, columns]`` if unequal, or None."""
    strides = getattr(layer, "strides", None)
    if strides is None:
        return None
    return strides[0] if strides[0] == strides[1] else list(strides)


@dataclass
class Compiled:
    """What ``infer`` needs: params, program, the plan's I/O description."""

    params: NpuParams
    program: object
    plan: dict

    @property
    def input_quant(self):
        """The input's :class:`~.ir.TensorQuant`."""
        return TensorQuant(**self.plan["input"]["quant"])

    @property
    def input_layout(self):
        """``"chw"`` (ONNX) or ``"hwc"`` (TFLite): the axis order of a 3-D model input."""
        return self.plan["input"]["layout"]

    @property
    def quantize_rule(self):
        """How the float input is quantized (:data:`.quant.RULES`)."""
        return self.plan["input"]["quantize"]

    @property
    def input_dtype(self):
        """``"float32"`` (quantized here) or ``"int8"`` (the model takes int8 as is)."""
        return self.plan["input"]["dtype"]

    @property
    def output_dtype(self):
        """``"float32"`` (dequantized here) or ``"int8"`` (the model returns int8)."""
        return self.plan["output"]["dtype"]

    @property
    def output_softmax(self):
        """None, or ``{"beta", "input_scale"}`` of the softmax the host computes last."""
        return self.plan["output"].get("softmax")

    @property
    def output_quant(self):
        """The output's :class:`~.ir.TensorQuant`."""
        return TensorQuant(**self.plan["output"]["quant"])


def plan_of(network, lowered, p):
    """Return the ``plan.json`` dict of a lowered network."""
    layers, shapes = [], network.shapes()
    insns = [disassemble(w) for w in lowered.program.insns]
    for n, (layer, (first, end)) in enumerate(zip(network.layers, lowered.spans, strict=True)):
        kind = type(layer).__name__
        bands = insns[first:end]
        sources = network.sources(n)
        add = ("xnnpack (LiteRT's int8 add)" if network.add_kernel == "xnnpack"
               else f"{network.mode} (AVX2 QLinearAdd kernel)" if network.mode == "ort"
               else f"{network.mode} (TFLite's integer add)")
        if getattr(layer, "subtract", False):
            add += ", b negated (SUB)"
        # the source model's operator where the layer only implements it (AveragePool, Sub)
        op = getattr(layer, "op", "") or ("Sub" if getattr(layer, "subtract", False) else kind)
        rounding = {"MaxPool": None, "Add": add,
                    "AveragePool": "TFLite's average (half away from zero), by ort constants",
                    "Mean": "XNNPACK's mean, by ort constants"}
        layers.append({
            "name": layer.name, "op": op, "engine": _engine(*bands[-1]),
            "reads": [v - 1 for v in sources],  # layer indices; -1 is the network input
            "input": list(shapes[sources[0]]), "output": list(shapes[n + 1]),
            "kernel": getattr(layer, "kernel", None), "stride": _stride(layer),
            "pads": list(getattr(layer, "pads", ())) or None,
            "tiles": len(bands), "macs": layer.macs(shapes[sources[0]]),
            "predicted_cycles": sum(lowered.cycles(p, i) for i in range(first, end)),
            "rounding": rounding.get(op, rounding.get(kind, network.mode)),
        })
    return {
        "plan_version": PLAN_VERSION,
        "npu": json.loads(p.to_json()),
        "mode": network.mode,
        "input": {"name": network.input_name, "model_shape": list(network.model_input_shape),
                  "shape_hwc": list(network.input_shape), "address": lowered.input_address,
                  "layout": network.input_layout, "quantize": network.quantize_rule,
                  "dtype": network.input_dtype,
                  "quant": {"scale": network.input_quant.scale,
                            "zero_point": network.input_quant.zero_point}},
        "output": {"name": network.output_name, "layout": network.output_layout,
                   "dtype": network.output_dtype, "softmax": network.output_softmax,
                   "shape_hwc": list(lowered.output_shape),
                   "address": lowered.output_address,
                   "quant": {"scale": network.output_quant.scale,
                             "zero_point": network.output_quant.zero_point}},
        "instructions": len(lowered.program.insns),
        "macs": lowered.macs,
        "predicted_cycles": sum(lowered.cycles(p, i) for i in range(len(insns))),
        "layers": layers,
    }


def write_compiled(out_dir, network, lowered, p, model_path=None):
    """Write the compiled folder ``out_dir`` (atomically); return its path."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (tmp / "program.npup").write_bytes(to_bytes(lowered.program, p.lanes))
        (tmp / "plan.json").write_text(json.dumps(plan_of(network, lowered, p), indent=1)
                                       + "\n")
        if model_path is not None:
            suffix = ".tflite" if Path(model_path).suffix.lower() == ".tflite" else ".onnx"
            shutil.copyfile(model_path, tmp / f"model{suffix}")
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def read_compiled(path):
    """Read a compiled folder; ValueError naming the file if anything is missing or bad."""
    path = Path(path)
    plan_path, program_path = path / "plan.json", path / "program.npup"
    for f in (plan_path, program_path):
        if not f.is_file():
            raise ValueError(f"{str(path)!r} is not a compiled network: {f.name} is missing "
                             "(run 'npugen compile')")
    try:
        plan = json.loads(plan_path.read_text())
        if plan.get("plan_version") != PLAN_VERSION:
            raise ValueError(f"plan_version must be {PLAN_VERSION} (compiled by another "
                             "npugen version: run 'npugen compile' again)")
        p = NpuParams.from_json(json.dumps(plan["npu"]))
        for side in ("input", "output"):
            part = plan[side]
            for key in ("shape_hwc", "address", "quant"):
                part[key]  # noqa: B018 - a KeyError names what is missing
            TensorQuant(**part["quant"])
        plan["input"]["model_shape"]  # noqa: B018
        checks = (("input.layout", plan["input"]["layout"], INPUT_LAYOUTS),
                  ("input.quantize", plan["input"]["quantize"], RULES),
                  ("output.layout", plan["output"]["layout"], OUTPUT_LAYOUTS),
                  ("input.dtype", plan["input"]["dtype"], DTYPES),
                  ("output.dtype", plan["output"]["dtype"], DTYPES))
        for name, value, valid in checks:
            if value not in valid:
                raise ValueError(f"{name} must be one of {', '.join(valid)}, not {value!r}")
        softmax = plan["output"].get("softmax")
        if softmax is not None:
            for key in ("beta", "input_scale"):
                value = softmax[key]
                if not (isinstance(value, float) and math.isfinite(value) and value > 0):
                    raise ValueError(f"output.softmax.{key} must be a positive float, not "
                                     f"{value!r}")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{str(plan_path)!r} is malformed: {exc}") from None
    program = from_bytes(program_path.read_bytes(), p.lanes)
    program.check_for(p)
    return Compiled(params=p, program=program, plan=plan)
