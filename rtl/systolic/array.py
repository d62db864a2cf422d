"""Entry point: build the systolic array for a params object."""

from .output_stationary import OsArray
from .params import Dataflow, SystolicParams
from .weight_stationary import WsArray

__all__ = ["systolic_array"]


def systolic_array(params):
    """Return the :class:`WsArray` or :class:`OsArray` component ``params`` describes."""
    if not isinstance(params, SystolicParams):
        raise TypeError(f"params must be SystolicParams, not {params!r}")
    return WsArray(params) if params.dataflow is Dataflow.WS else OsArray(params)
