"""``npugen compile`` and ``npugen infer``: ONNX or TFLite model -> compiled folder -> outputs.

Engines: ``isa`` (the instruction-level simulator), ``verilator`` (the NPU's Verilator
model, autonomous per image: the cocotb bench ``tb_npu_infer``), ``board`` (a board built
with ``npugen board --block npu`` behind its UART link). ``check`` runs onnxruntime
(CPUExecutionProvider) on the compiled folder's copy of the model - LiteRT with its
default delegate (XNNPACK) for a ``.tflite`` model - and lists every mismatching element.
"""

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime

from ..compiler.artifact import read_compiled, write_compiled
from ..compiler.execute import check_batch, input_words, outputs_of, run_isa
from ..compiler.lower import lower
from ..compiler.onnx_import import load_onnx, network_from_onnx
from ..compiler.quant import dequantize
from ..compiler.tflite_import import load_tflite, network_from_tflite
from ..models.qladd import ort_kernel
from .build import RUN_FAST, build_lock, module_name, run_bench

__all__ = ["ENGINES", "InferResult", "compile_model", "infer", "litert_outputs",
           "model_dir", "onnxruntime_outputs"]

ENGINES = ("isa", "verilator", "board")


def compile_model(model_path, out_dir, p, engine_for=None):
    """Compile ``model_path`` for NPU ``p`` into ``out_dir``; return the plan dict.

    ``engine_for``: forced engines (:func:`~..compiler.lower.lower`).

    Raises ValueError (:class:`~..compiler.onnx_import.ModelError` or
    :class:`~..compiler.lower.LowerError`) before anything is written.
    """
    if Path(model_path).suffix.lower() == ".tflite":
        network = network_from_tflite(load_tflite(model_path))
    else:
        network = network_from_onnx(load_onnx(model_path))
    lowered = lower(network, p, engine_for)
    write_compiled(out_dir, network, lowered, p, model_path)
    return read_compiled(out_dir).plan


@dataclass
class InferResult:
    """Outputs of a batch, the NPU's cycles per image, and the check's findings."""

    outputs: np.ndarray
    cycles: list
    seconds: float | None = None  # wall time of the simulation (verilator)
    mismatches: list = field(default_factory=list)  # (index tuple, ours, onnxruntime)
    checked: bool = False
    runtime: str = "onnxruntime"  # what the check ran
    #: The check's onnxruntime QLinearAdd kernel on this CPU (``avx2``, ``sse2`` or
    #: ``unknown``); the NPU's ADD follows ``avx2``. None unless the network has an add.
    kernel: str | None = None


def onnxruntime_outputs(model_path, x):
    """Onnxruntime's output of ``model_path`` for float batch ``x`` (CPU provider)."""
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(model_path), options,
                                           providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: x})[0]


def litert_outputs(model_path, x):
    """LiteRT's output of ``.tflite`` ``model_path`` for batch ``x``, one item at a time.

    ``x`` is cast to the model's input type (float32, or int8 for an int8 graph input).

    The interpreter's default resolver: XNNPACK on x86-64, the path the compiler follows.
    """
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model_path))
    interp.allocate_tensors()
    (i,), (o,) = interp.get_input_details(), interp.get_output_details()
    out = []
    for item in x:
        interp.set_tensor(i["index"], item[None].astype(i["dtype"]))
        interp.invoke()
        out.append(interp.get_tensor(o["index"])[0].copy())
    return np.stack(out)


def _verilator(compiled, folder, x, build_dir, seed, cxx_opt):
    p = compiled.params
    build_dir = Path(build_dir).resolve()
    # one Verilator build per NPU, shared: a second run waits for the first
    with build_lock(build_dir), tempfile.TemporaryDirectory(dir=build_dir) as tmp:
        spec, result = Path(tmp, "infer.json"), Path(tmp, "result.json")
        spec.write_text(json.dumps({"compiled": str(Path(folder).resolve()),
                                    "inputs": input_words(compiled, x),
                                    "result": str(result)}))
        # in a process group of its own: Ctrl-C or SIGTERM stop make and the simulation too
        run_bench(p, build_dir=build_dir, seed=seed, isolate=True,
                  test_module="npugen.sim.cocotb.tb_npu_infer",
                  extra_env={"NPUGEN_INFER": str(spec)}, cxx_opt=cxx_opt)
        if not result.exists():
            raise RuntimeError(f"the Verilator run failed; see {build_dir}/test.log")
        r = json.loads(result.read_text())
    return r["outputs"], r["cycles"], r["seconds"]


def model_dir(params, build_root="build/infer"):
    """Return the folder of ``params``' Verilator model for ``npugen infer`` (one per NPU)."""
    return Path(build_root, module_name(params) + "_infer")


def infer(folder, x, *, engine="isa", raw=False, check=False, client_session=None,
          build_root="build/infer", seed=1, progress=None, cxx_opt=RUN_FAST, build_dir=None):
    """Run batch ``x`` (float32, or int8 for an int8 model input) through ``folder``'s network.

    ``client_session(compiled, words) -> (outputs, cycles)`` runs the board engine (the
    CLI opens the serial port). ``cxx_opt`` is the Verilator model's C++ optimisation
    (:data:`~.build.BUILD_FAST` when a few images take less time than the build). The model
    is built in ``build_dir``, by default :func:`model_dir` in ``build_root``; a model built there
    before from the same sources and flags is reused. Returns an :class:`InferResult`.
    """
    compiled = read_compiled(folder)
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    seconds = None
    if engine == "isa":
        y, cycles = run_isa(compiled, x, raw=raw, progress=progress)
    else:
        if engine == "verilator":
            if build_dir is None:
                build_dir = model_dir(compiled.params, build_root)
            words, cycles, seconds = _verilator(compiled, folder, x, build_dir, seed, cxx_opt)
        else:
            words, cycles = client_session(compiled, input_words(compiled, x))
        y = outputs_of(compiled, words, raw=raw)
    result = InferResult(outputs=y, cycles=list(cycles), seconds=seconds)
    if check:
        tflite = Path(folder, "model.tflite")
        model = tflite if tflite.is_file() else Path(folder, "model.onnx")
        runtime, run = (("LiteRT", litert_outputs) if model == tflite
                        else ("onnxruntime", onnxruntime_outputs))
        if not model.is_file():
            raise ValueError(f"{str(folder)!r} has no model.onnx or model.tflite to check "
                             "against")
        try:
            ref = run(model, check_batch(compiled, x))
        except Exception as exc:  # the runtimes' errors derive from Exception only
            raise RuntimeError(f"{runtime} could not run {model}: {exc}") from None
        int8_out = compiled.output_dtype == "int8"
        ours = dequantize(y, compiled.output_quant) if raw and not int8_out else y
        if ref.shape != ours.shape:
            raise RuntimeError(f"{runtime}'s output has shape {ref.shape}, ours "
                               f"{ours.shape}")
        if int8_out:
            if ref.dtype != np.int8:
                raise RuntimeError(f"{runtime}'s output is {ref.dtype}, the plan says int8")
            bad = np.argwhere(ref != ours)
        else:  # float32: bit for bit (-0.0 is not 0.0)
            bad = np.argwhere(ref.view(np.uint32) != ours.astype(np.float32).view(np.uint32))
        kind = int if int8_out else float
        result.mismatches = [(tuple(int(i) for i in idx), kind(ours[tuple(idx)]),
                              kind(ref[tuple(idx)])) for idx in bad]
        result.checked, result.runtime = True, runtime
        if any(layer["op"] == "Add" for layer in compiled.plan["layers"]):
            result.kernel = ort_kernel() or "unknown"
    return result
