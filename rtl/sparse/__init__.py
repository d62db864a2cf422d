"""EIE-style sparse engine: relative-index decoder, processing element, matrix-vector engine."""

from . import ports
from .decoder import RelIndexDecoder
from .engine import SparseMatVec
from .params import SparseParams
from .pe import SparsePE
from .ports import CFG_LAYOUT, CfgOp, signature

__all__ = [
    "CFG_LAYOUT", "CfgOp", "RelIndexDecoder", "SparseMatVec", "SparseParams", "SparsePE",
    "ports", "signature",
]
