"""The integrated NPU (issue 14, in progress): so far its requantization unit."""

from .requant import Requantizer, Rounding, requant_in_layout

__all__ = ["Requantizer", "Rounding", "requant_in_layout"]
