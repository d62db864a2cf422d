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

__all__ = ["FilterInput", "Primitives", "WinogradParams", "signed_bits"]


def signed_bits(bound):
    """Bits of a signed integer holding every value in ``-bound..bound``."""
    return bound.bit_length() + 1


class FilterInput(enum.Enum):
    """What the filter stream carries."""

    #: Raw 3x3 filters; the hardware FilterTransform computes U' on chip.
    RAW = "raw"
    #: Transformed 4x4 U' words computed on the host (npugen.sim.models.winograd).
    TRANSFORMED = "transformed"


class Primitives(enum.Enum):
    """What the tile engine's filter store and multipliers are built from."""

    #: ``lib.memory`` and ``a * b`` with registered operands and product, for any target
    #: (on ECP5 yosys maps them to block RAMs without their output registers and DSP blocks
    #: without their own registers).
    INFERRED = "inferred"
    #: Lattice ECP5 ``DP16KD`` block RAMs with their output registers for the U' store and
    #: ``MULT18X18D`` blocks with their input and output registers (two cycles more latency).
    ECP5 = "ecp5"


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
    primitives: Primitives = param(
        Primitives.INFERRED, "filter store and multipliers: inferred = portable (the tool "
        "picks); ecp5 = DP16KD block RAMs with output registers and MULT18X18D with its "
        "registers (ECP5 devices only, k_max*c_max <= 16384)")

    #: Largest ``k_max * c_max`` with ``primitives=ecp5`` (one DP16KD column of 16384 x 1).
    ECP5_STORE_MAX = 16384

    def check(self):
        """Check that the DP16KD-based U' store (primitives=ecp5) holds K*C words."""
        if self.primitives is Primitives.ECP5 and self.k_max * self.c_max > self.ECP5_STORE_MAX:
            raise ValueError(f"k_max * c_max must be at most {self.ECP5_STORE_MAX} with "
                             f"primitives=ecp5, not {self.k_max * self.c_max}")

    def device_problem(self, family):
        """Return why ``primitives=ecp5`` cannot build for ``family`` (not ECP5), or None."""
        if self.primitives is Primitives.ECP5 and family != "ecp5":
            return "primitives=ecp5 is for ecp5 devices"
        return None

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
        prim = "" if self.primitives is Primitives.INFERRED else f"_{self.primitives.value}"
        return (f"winograd_c{self.c_max}k{self.k_max}_h{self.h_max}w{self.w_max}"
                f"_d{self.data_width}acc{self.acc_width}_{self.filter_input.value}{engines}"
                f"{prim}")
