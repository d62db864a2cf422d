"""EIE-style sparse engine: relative-index decoder, processing element, matrix-vector engine."""

from .decoder import RelIndexDecoder
from .engine import CFG_LAYOUT, CfgOp, SparseMatVec
from .params import SparseParams
from .pe import SparsePE

__all__ = ["CFG_LAYOUT", "CfgOp", "RelIndexDecoder", "SparseMatVec", "SparseParams", "SparsePE"]
