"""Parameters of the EIE-style sparse matrix-vector engine, and the widths derived from them.

Storage format (shared with the encoder in ``npugen.sim.models.sparse``; see its docstring):
rows are interleaved over ``n_pe`` processing elements (global row ``i`` is local row
``i // n_pe`` of PE ``i % n_pe``); every PE keeps its slice of every column as a list of 8-bit
entries, the low nibble a codebook index (0 = the zero weight) and the high nibble the number
of zero rows, in local numbering, since the previous entry of the column. Column pointers
``ptr[0..cols]`` per PE delimit each column's entries.

Bit growth: one product is ``16 + act_width`` bits (exact); accumulators and outputs are
``acc_width`` bits and wrap modulo ``2**acc_width``.
"""

import enum
from dataclasses import dataclass

from ..common.params import ACC_WIDTH_MAX, Params, flag, param

__all__ = ["ENTRY_BITS", "INDEX_BITS", "RUN_BITS", "WEIGHT_WIDTH", "Primitives", "SparseParams"]


class Primitives(enum.Enum):
    """What the engine's memories and multipliers are built from."""

    #: ``lib.memory`` and ``a * b``: the synthesis tool infers block RAMs and DSPs (on ECP5
    #: without the block RAMs' output registers).
    INFERRED = "inferred"
    #: Lattice ECP5 ``DP16KD`` block RAMs with their output registers and ``MULT18X18D``
    #: blocks with their input and output registers, instantiated.
    ECP5 = "ecp5"

#: Bits of one stored entry, of its codebook index (low nibble) and of its zero run (high).
ENTRY_BITS, INDEX_BITS, RUN_BITS = 8, 4, 4
#: Width of a codebook weight (signed fixed point; the fraction width is the host's business).
WEIGHT_WIDTH = 16


@dataclass(frozen=True, kw_only=True)
class SparseParams(Params, block="sparse"):
    """Parameters of the sparse matrix-vector engine (:class:`SparseMatVec`)."""

    n_pe: int = param(4, "processing elements; row i belongs to PE i mod n_pe", lo=1, hi=64)
    rows_max: int = param(64, "largest number of matrix rows (outputs)", lo=1, hi=4096)
    cols_max: int = param(64, "largest number of matrix columns (activations)", lo=1, hi=4096)
    entries_max: int = param(1024, "entry memory depth per PE (stored entries incl. padding)",
                             lo=16, hi=65535)
    act_width: int = param(8, "activation width in bits, signed", choices=(8, 16))
    acc_width: int = param(32, "accumulator and output width; sums wrap modulo 2**acc_width",
                           lo=16, hi=ACC_WIDTH_MAX)
    queue_depth: int = param(8, "activation queue depth per PE", lo=1, hi=64)
    act_lanes: int = param(4, "activations per input beat (leading-non-zero window)",
                           lo=1, hi=16)
    relu: bool = flag(False, "clamp outputs at zero (after wrapping)")
    acc_banks: int = param(
        1, "accumulator banks per PE: 2 = double-buffered, a vector's readout overlaps the "
        "next vector's MAC phase (twice the accumulator memory)", choices=(1, 2))
    primitives: Primitives = param(
        Primitives.INFERRED, "memories and multipliers: inferred = portable (the tool picks); "
        "ecp5 = DP16KD block RAMs with output registers and MULT18X18D with its registers "
        "(entries_max up to 16384)")

    #: Largest ``entries_max`` with ``primitives=ecp5`` (one DP16KD column of 16384 x 1).
    ECP5_DEPTH_MAX = 16384

    def check(self):
        """Cross-field rules: DP16KD depth."""
        if self.primitives is Primitives.ECP5:
            for name, what, depth in (
                    ("entries_max", "entries_max", self.entries_max),
                    ("rows_max", "ceil(rows_max / n_pe)", self.rows_pe_max),
                    ("cols_max", "cols_max + 1", self.cols_max + 1)):
                if depth > self.ECP5_DEPTH_MAX:
                    raise ValueError(f"{name}: {what} must be at most {self.ECP5_DEPTH_MAX} "
                                     f"with primitives=ecp5, not {depth}")

    def device_problem(self, family):
        """Vendor primitives build only on their own family."""
        if self.primitives is Primitives.ECP5 and family != "ecp5":
            return "primitives=ecp5 is for ecp5 devices"
        return None

    @property
    def rows_pe_max(self):
        """Accumulators per PE: ceil(rows_max / n_pe)."""
        return -(-self.rows_max // self.n_pe)

    @property
    def product_width(self):
        """Width of one exact weight x activation product."""
        return WEIGHT_WIDTH + self.act_width

    @property
    def fetch_credits(self):
        """Columns a PE's fetch may hold between its queue and the walker (its FIFO's depth).

        Enough for one column per cycle around the loop from the queue's pop to the walker's
        take (:attr:`fetch_loop` cycles) with the ECP5 primitives; portable builds (often on
        the iCE40, where the FIFO is in flip-flops) keep four, so runs of columns with one
        stored entry go at four columns per seven cycles.
        """
        return 9 if self.primitives is Primitives.ECP5 else 4

    @property
    def fetch_loop(self):
        """Cycles from a PE's queue pop to the walker's take of that column (the credit loop)."""
        return 9 if self.primitives is Primitives.ECP5 else 7

    @property
    def ptr_width(self):
        """Width of a column pointer (0..entries_max)."""
        return self.entries_max.bit_length()

    @property
    def macs(self):
        """Multipliers, one per PE (peak MACs per cycle)."""
        return self.n_pe

    @property
    def slug(self):
        """Short unique name for module names, build folders and test ids."""
        relu = "_relu" if self.relu else ""
        banks = "_ab2" if self.acc_banks == 2 else ""
        prim = "" if self.primitives is Primitives.INFERRED else f"_{self.primitives.value}"
        return (f"sparse_pe{self.n_pe}_r{self.rows_max}c{self.cols_max}e{self.entries_max}"
                f"_a{self.act_width}acc{self.acc_width}_q{self.queue_depth}l{self.act_lanes}"
                f"{relu}{banks}{prim}")
