"""The integrated NPU: scratchpads, an instruction-driven controller, engines, requantization.

:mod:`.isa` is the instruction set, :mod:`.protocol` the host commands.
"""

from . import isa, protocol
from .core import Npu, NpuState, signature
from .params import NpuParams, params_hash
from .requant import Requantizer, Rounding, requant_in_layout

__all__ = ["Npu", "NpuParams", "NpuState", "Requantizer", "Rounding", "isa", "params_hash",
           "protocol", "requant_in_layout", "signature"]
