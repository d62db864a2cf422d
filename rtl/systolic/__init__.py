"""TPU-style systolic int8 MAC array (weight- and output-stationary)."""

from .array import systolic_array
from .mul import InferredMultiplier
from .output_stationary import OsArray
from .params import Dataflow, SystolicParams
from .pe import OsPE, WsPE
from .weight_stationary import WsArray

__all__ = [
    "Dataflow", "InferredMultiplier", "OsArray", "OsPE", "SystolicParams", "WsArray", "WsPE",
    "systolic_array",
]
