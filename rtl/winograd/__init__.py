"""Winograd F(2x2, 3x3) convolution: transforms and the tile engine, exact integer arithmetic."""

from . import ports
from .direct import DirectConvTile
from .engine import WinogradF23
from .layer import WinogradConv
from .params import FilterInput, Primitives, WinogradParams
from .ports import signature
from .transforms import FilterTransform2D, InputTransform2D, OutputTransform2D

__all__ = [
    "DirectConvTile", "FilterInput", "FilterTransform2D", "InputTransform2D",
    "OutputTransform2D", "WinogradConv", "WinogradF23", "Primitives", "WinogradParams",
    "ports", "signature",
]
