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

from dataclasses import dataclass

from ..common.params import Params, check_int, param

__all__ = ["ENTRY_BITS", "INDEX_BITS", "RUN_BITS", "WEIGHT_WIDTH", "SparseParams", "check_flag"]

#: Bits of one stored entry, of its codebook index (low nibble) and of its zero run (high).
ENTRY_BITS, INDEX_BITS, RUN_BITS = 8, 4, 4
#: Width of a codebook weight (signed fixed point; the fraction width is the host's business).
WEIGHT_WIDTH = 16


def check_flag(name, value):
    """Return ``value`` as a bool; accepts bools, 0/1 and the words true/false/on/off/yes/no."""
    words = {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in words:
        return words[value.lower()]
    raise ValueError(f"{name} must be one of true, false (or 1, 0), not {value!r}")


@dataclass(frozen=True, kw_only=True)
class SparseParams(Params):
    """Parameters of the sparse matrix-vector engine (:class:`SparseMatVec`)."""

    block = "sparse"

    n_pe: int = param(4, help="processing elements; row i belongs to PE i mod n_pe",
                      valid="1..64")
    rows_max: int = param(64, help="largest number of matrix rows (outputs)", valid="1..4096")
    cols_max: int = param(64, help="largest number of matrix columns (activations)",
                          valid="1..4096")
    entries_max: int = param(1024, help="entry memory depth per PE (stored entries incl. "
                                        "padding)", valid="16..65535")
    act_width: int = param(8, help="activation width in bits, signed", valid="8, 16")
    acc_width: int = param(32, help="accumulator and output width; sums wrap modulo "
                                    "2**acc_width", valid="16..48")
    queue_depth: int = param(8, help="activation queue depth per PE", valid="1..64")
    act_lanes: int = param(4, help="activations per input beat (leading-non-zero window)",
                           valid="1..16")
    relu: bool = param(False, help="clamp outputs at zero (after wrapping)",
                       valid="true, false")

    def __post_init__(self):
        check_int("n_pe", self.n_pe, 1, 64)
        check_int("rows_max", self.rows_max, 1, 4096)
        check_int("cols_max", self.cols_max, 1, 4096)
        check_int("entries_max", self.entries_max, 16, 65535)
        check_int("act_width", self.act_width, 8, 16)
        if self.act_width not in (8, 16):
            raise ValueError(f"act_width must be 8 or 16, not {self.act_width!r}")
        check_int("acc_width", self.acc_width, 16, 48)
        check_int("queue_depth", self.queue_depth, 1, 64)
        check_int("act_lanes", self.act_lanes, 1, 16)
        self._set("relu", check_flag("relu", self.relu))

    @property
    def rows_pe_max(self):
        """Accumulators per PE: ceil(rows_max / n_pe)."""
        return -(-self.rows_max // self.n_pe)

    @property
    def product_width(self):
        """Width of one exact weight x activation product."""
        return WEIGHT_WIDTH + self.act_width

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
        return (f"sparse_pe{self.n_pe}_r{self.rows_max}c{self.cols_max}e{self.entries_max}"
                f"_a{self.act_width}acc{self.acc_width}_q{self.queue_depth}l{self.act_lanes}"
                f"{relu}")
