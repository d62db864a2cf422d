"""Parameters of the Winograd F(2x2, 3x3) convolution unit, and the widths derived from them.

Bit bounds for ``data_width`` = n-bit signed inputs and filters (|x| <= 2**(n-1)):

- input transform ``V = B^T d B``: each entry is a sum of at most 4 terms +-d, so
  ``|V| <= 4 * 2**(n-1) = 2**(n+1)`` (int8: 512);
- scaled filter transform ``U' = G' g G'^T`` with ``G' = 2G`` (entries 0, +-1, 2): the row
  sums of |G'| are at most 3, so ``|U'| <= 9 * 2**(n-1)`` (int8: 1152);
- element-wise product: ``|U' V| <= 9 * 2**(n-1) * 2**(n+1) = 9 * 4**n`` (int8: 589,824);
- channel sum over C channels: ``<= C * 9 * 4**n``, i.e. ceil(log2 C) more bits;
- the output transform gives ``4 Y`` exactly (Y the direct convolution), so
  ``|4 Y| <= 4 * 9 * C * 4**(n-1) = C * 9 * 4**n``: the channel-sum width suffices for the
  output transform too, in modular arithmetic.

The Winograd-domain accumulators are ``min(m_exact_width, acc_width + 2)`` bits: when the
exact bound needs more than ``acc_width + 2`` bits the sums wrap, and since 4Y mod
2**(acc_width+2) = 4 (Y mod 2**acc_width), the shift by 2 still gives the output wrapped to
``acc_width`` bits exactly, as documented.
"""

import enum
from dataclasses import dataclass

from ..common.params import ACC_WIDTH_MAX, Params, param

__all__ = ["FilterInput", "WinogradParams", "signed_bits"]


def signed_bits(bound):
    """Bits of a signed integer holding every value in ``-bound..bound``."""
    return bound.bit_length() + 1


class FilterInput(enum.Enum):
    """What the filter stream carries."""

    #: Raw 3x3 filters; the hardware FilterTransform computes U' on chip.
    RAW = "raw"
    #: Transformed 4x4 U' words computed on the host (npugen.sim.models.winograd).
    TRANSFORMED = "transformed"


@dataclass(frozen=True, kw_only=True)
class WinogradParams(Params, block="winograd"):
    """Parameters of the Winograd F(2x2, 3x3) tile engine and convolution layer."""

    c_max: int = param(16, "largest number of input channels", lo=1, hi=256)
    k_max: int = param(16, "largest number of filters (output channels)", lo=1, hi=256)
    h_max: int = param(32, "largest feature-map height (layer wrapper)", lo=3, hi=1024)
    w_max: int = param(32, "largest feature-map width (line-buffer length)", lo=3, hi=1024)
    engines: int = param(1, "parallel tile engines in the convolution layer", lo=1, hi=8)
    data_width: int = param(8, "input and filter width in bits, signed", lo=2, hi=12)
    acc_width: int = param(32, "output width in bits; outputs wrap modulo 2**acc_width",
                           lo=16, hi=ACC_WIDTH_MAX)
    filter_input: FilterInput = param(FilterInput.RAW, "raw = 3x3 filters transformed on chip, "
                                      "transformed = host-transformed U' words")

    # Derived widths (see the module docstring for the bounds).
    @property
    def v_bound(self):
        """Largest |V| of the input transform."""
        return 4 << (self.data_width - 1)

    @property
    def u_bound(self):
        """Largest |U'| of the scaled filter transform."""
        return 9 << (self.data_width - 1)

    @property
    def product_bound(self):
        """Largest |U' * V| of one channel."""
        return self.u_bound * self.v_bound

    @property
    def v_width(self):
        """Width of V words."""
        return signed_bits(self.v_bound)

    @property
    def u_width(self):
        """Width of U' words."""
        return signed_bits(self.u_bound)

    @property
    def product_width(self):
        """Width of one element-wise product."""
        return signed_bits(self.product_bound)

    @property
    def m_width(self):
        """Width of the Winograd-domain channel sums and the output transform."""
        exact = signed_bits(self.c_max * self.product_bound)
        return min(exact, self.acc_width + 2)

    @property
    def macs(self):
        """Direct-convolution MACs per cycle at full rate: 2x2 x 3x3 per tile engine."""
        return 36 * self.engines

    @property
    def slug(self):
        """Short unique name for module names, build folders and test ids."""
        engines = f"_e{self.engines}" if self.engines != 1 else ""
        return (f"winograd_c{self.c_max}k{self.k_max}_h{self.h_max}w{self.w_max}"
                f"_d{self.data_width}acc{self.acc_width}_{self.filter_input.value}{engines}")
