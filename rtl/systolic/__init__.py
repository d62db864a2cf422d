"""TPU-style systolic int8 MAC array (weight- and output-stationary)."""

from .array import systolic_array
from .mul import Ecp5Multiplier, InferredMultiplier
from .output_stationary import OsArray
from .params import Dataflow, Multiplier, SystolicParams
from .pe import OsPE, WsPE
from .weight_stationary import WsArray

__all__ = [
    "Dataflow", "Ecp5Multiplier", "InferredMultiplier", "Multiplier", "OsArray", "OsPE",
    "SystolicParams", "WsArray", "WsPE", "systolic_array",
]
