"""TPU-style systolic int8 MAC array (weight- and output-stationary)."""

from . import ports
from .array import systolic_array
from .mul import Ecp5Multiplier, FabricMultiplier, Ice40DualMultiplier, InferredMultiplier
from .output_stationary import OsArray
from .params import Dataflow, Multiplier, SystolicParams
from .pe import OsPE, WsPE
from .ports import signature
from .weight_stationary import WsArray

__all__ = [
    "Dataflow", "Ecp5Multiplier", "FabricMultiplier", "Ice40DualMultiplier",
    "InferredMultiplier", "Multiplier", "OsArray", "OsPE", "SystolicParams", "WsArray", "WsPE",
    "ports", "signature", "systolic_array",
]
