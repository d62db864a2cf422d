"""Registry of the blocks npugen generates: name -> params class and component factory."""

from dataclasses import dataclass

from .sparse import SparseMatVec, SparseParams
from .systolic import SystolicParams, systolic_array
from .winograd import WinogradConv, WinogradParams

__all__ = ["BLOCKS", "Block"]


@dataclass(frozen=True)
class Block:
    """One generatable block family."""

    name: str
    params_cls: type
    build: object
    summary: str


BLOCKS = {
    "systolic": Block("systolic", SystolicParams, systolic_array,
                      "TPU-style systolic int8 MAC array (weight- or output-stationary)"),
    "sparse": Block("sparse", SparseParams, SparseMatVec,
                    "EIE-style sparse matrix-vector engine: CSC storage, 4-bit codebook and "
                    "relative row indices, zero-activation skipping"),
    "winograd": Block("winograd", WinogradParams, WinogradConv,
                      "3x3 convolution layer on a Winograd F(2x2,3x3) tile engine, exact "
                      "integer arithmetic"),
}
