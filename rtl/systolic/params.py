"""Parameters of the systolic int8 MAC array, shared by RTL, golden model, benches and CLI."""

import enum
from dataclasses import dataclass

from ..common.params import ACC_WIDTH_MAX, Params, param
from ..common.ram import BufferRam

__all__ = ["BufferRam", "Dataflow", "Multiplier", "SystolicParams"]


class Dataflow(enum.Enum):
    """Which operand stays in the processing elements."""

    #: Weight-stationary (TPU v1): a weight tile sits in the PEs, activations stream through.
    WS = "ws"
    #: Output-stationary: each PE owns one output and accumulates it over K.
    OS = "os"


class Multiplier(enum.Enum):
    """How a PE multiplies."""

    #: ``a * b`` with a registered product, for any target (yosys infers the DSP).
    INFERRED = "inferred"
    #: Lattice ECP5 ``MULT18X18D`` instantiated with its input and output registers on.
    ECP5 = "ecp5"
    #: Lattice iCE40 ``SB_MAC16`` in its dual 8x8 mode: two PEs per DSP block (operands up
    #: to 8 bits).
    ICE40 = "ice40"


@dataclass(frozen=True, kw_only=True)
class SystolicParams(Params, block="systolic"):
    """Parameters of a ``rows x cols`` systolic multiply-accumulate array.

    Operands are signed two's-complement integers of ``a_width`` (activations, the A matrix)
    and ``w_width`` (weights, the B matrix) bits. Products are exact (``a_width + w_width``
    bits); sums wrap modulo ``2**acc_width`` (two's complement), as the hardware adders do.
    """

    rows: int = param(8, "PE rows (the reduction dimension of one WS weight tile)", lo=1, hi=64)
    cols: int = param(8, "PE columns (output lanes)", lo=1, hi=64)
    a_width: int = param(8, "activation width in bits, signed", lo=2, hi=16)
    w_width: int = param(8, "weight width in bits, signed", lo=2, hi=16)
    acc_width: int = param(32, "accumulator width in bits; sums wrap modulo 2**acc_width",
                           lo="a_width + w_width", hi=ACC_WIDTH_MAX)
    dataflow: Dataflow = param(Dataflow.WS, "ws = weight-stationary, os = output-stationary")
    multiplier: Multiplier = param(
        Multiplier.INFERRED, "inferred = portable a*b; ecp5 = MULT18X18D with its input and "
        "output registers (operands up to 18 bits); ice40 = SB_MAC16 dual 8x8 mode, two PEs "
        "per DSP (operands up to 8 bits)")
    dsp_limit: int = param(0, "DSP multipliers at most (with multiplier=ecp5); the PEs beyond "
                              "get pipelined fabric multipliers of the same latency; 0 = no "
                              "limit", lo=0, hi=4096)
    result_ram: BufferRam = param(
        BufferRam.INFERRED, "result buffer storage: inferred = portable memory (the tool picks "
        "LUT or block RAM); ecp5 = DP16KD block RAM with its output register (the WS array's "
        "psum delay line too, else LUT RAM)")

    def check(self):
        """Cross-field rules: the DSP limit needs DSPs; DSP operand widths."""
        if self.dsp_limit and self.multiplier is not Multiplier.ECP5:
            raise ValueError(f"dsp_limit must be 0 with multiplier={self.multiplier.value}, "
                             f"not {self.dsp_limit} (it needs multiplier=ecp5)")
        limit = {Multiplier.ECP5: 18, Multiplier.ICE40: 8}.get(self.multiplier)
        if limit is not None:
            for name in ("a_width", "w_width"):
                if getattr(self, name) > limit:
                    raise ValueError(f"{name} must be 2..{limit} with multiplier="
                                     f"{self.multiplier.value}, not {getattr(self, name)}")

    def device_problem(self, family):
        """Vendor primitives build only on their own family."""
        if self.multiplier in (Multiplier.ECP5, Multiplier.ICE40) \
                and self.multiplier.value != family:
            return f"multiplier={self.multiplier.value} is for {self.multiplier.value} devices"
        if self.result_ram is BufferRam.ECP5 and family != "ecp5":
            return "result_ram=ecp5 is for ecp5 devices"
        return None

    @property
    def product_width(self):
        """Width of an exact signed product."""
        return self.a_width + self.w_width

    @property
    def macs(self):
        """Multiply-accumulates per cycle at full utilisation."""
        return self.rows * self.cols

    @property
    def slug(self):
        """Short unique name, used for Verilog module names, build folders and test ids."""
        dsp = "" if self.multiplier is Multiplier.INFERRED else f"_{self.multiplier.value}"
        if self.dsp_limit:
            dsp += f"dsp{self.dsp_limit}"
        ram = "" if self.result_ram is BufferRam.INFERRED else f"_ram{self.result_ram.value}"
        return (f"systolic_{self.dataflow.value}_{self.rows}x{self.cols}"
                f"_a{self.a_width}w{self.w_width}acc{self.acc_width}{dsp}{ram}")
