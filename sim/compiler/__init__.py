"""Compiler from quantized networks to NPU programs.

:mod:`.ir` is the network form the compiler works on (no ONNX in it), :mod:`.onnx_import`
reads onnxruntime's int8 models into it, :mod:`.lower` turns it into a
:class:`~npugen.sim.formats.program.Program` for one NPU, and :mod:`.artifact` writes and
reads the compiled folder that ``npugen infer`` runs.
"""
