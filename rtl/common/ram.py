"""Simple dual-port RAMs with a two-register read: read register, then output register.

Two implementations of one signature, chosen by :class:`BufferRam`: a portable one from
``lib.memory`` (the synthesis tool infers the RAM; the output register is fabric), and one that
instantiates ECP5 ``DP16KD`` block RAMs with their own output registers. The ECP5 block RAM's
read data leaves the block about 5.6 ns after the clock without its output register (nextpnr's
timing model), which alone limits a design to about 150 MHz; with it, the outputs start at a
register and the block is off the critical path.
"""

import enum

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .params import Validated

__all__ = ["BufferRam", "Ecp5BlockRam", "InferredRam", "pipelined_ram"]


class BufferRam(enum.Enum):
    """Where a buffer keeps its words."""

    #: ``lib.memory`` with a synchronous read port and a fabric output register; yosys picks
    #: LUT RAM or block RAM by size (on ECP5 without the block RAM's output register).
    INFERRED = "inferred"
    #: Lattice ECP5 ``DP16KD`` in 512 x 36 pseudo-dual-port mode, output registers on.
    ECP5 = "ecp5"


def _signature(width, depth):
    return {
        "w_en": In(1), "w_addr": In(range(depth)), "w_data": In(width),
        "r_en": In(1), "r_addr": In(range(depth)), "o_en": In(1),
        "r_data": Out(width),
    }


class InferredRam(wiring.Component):
    """``depth`` x ``width`` RAM: one write port, one read port with two registers.

    Members
    -------
    w_en, w_addr, w_data : In(1), In(range(depth)), In(width)
        Write ``w_data`` at ``w_addr`` on the clock edge that ends a cycle with ``w_en``.
    r_en, r_addr : In(1), In(range(depth))
        With ``r_en``, the read register takes the word at ``r_addr`` on this edge; without,
        it holds. Reading the word that the same edge writes is not defined (the users
        never do).
    o_en : In(1)
        With ``o_en``, the output register takes the read register on this edge.
    r_data : Out(width)
        The output register.
    """

    def __init__(self, width, depth):
        self._width, self._depth = width, depth
        super().__init__(_signature(width, depth))

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=self._width, depth=self._depth, init=[])
        wr = mem.write_port()
        rd = mem.read_port(domain="sync", transparent_for=())
        out = Signal(self._width, reset_less=True)
        m.d.comb += [wr.en.eq(self.w_en), wr.addr.eq(self.w_addr), wr.data.eq(self.w_data),
                     rd.en.eq(self.r_en), rd.addr.eq(self.r_addr), self.r_data.eq(out)]
        with m.If(self.o_en):
            m.d.sync += out.eq(rd.data)
        return m


class Ecp5BlockRam(Validated, wiring.Component):
    """:class:`InferredRam`'s behaviour on ECP5 ``DP16KD`` blocks with output registers.

    ``ceil(width / 36)`` blocks side by side in 512 x 36 pseudo-dual-port mode: port A
    writes (byte enables on ``ADA0..3``, all four driven by ``w_en``), port B reads (``CEB``
    = ``r_en`` clocks the read register, ``OCEA``/``OCEB`` = ``o_en`` the output registers;
    both are driven alike because the read data's low half leaves on ``DOA``). Pin use
    follows yosys's own mapping of a 36-bit memory onto ``DP16KD``.
    Simulation uses npugen's behavioural model (``sim/verilog/DP16KD.v``). ``depth`` <= 512.
    """

    BLOCK_WIDTH = 36
    BLOCK_DEPTH = 512

    @classmethod
    def validate(cls, width, depth):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        if depth > cls.BLOCK_DEPTH:
            raise ValueError(f"depth must be at most {cls.BLOCK_DEPTH} for DP16KD storage, "
                             f"not {depth}")

    def __init__(self, width, depth):
        self._width, self._depth = width, depth
        super().__init__(_signature(width, depth))

    @property
    def blocks(self):
        """Number of ``DP16KD`` blocks."""
        return -(-self._width // self.BLOCK_WIDTH)

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        abits = len(self.w_addr)
        for blk in range(self.blocks):
            lo = blk * self.BLOCK_WIDTH
            n = min(self.BLOCK_WIDTH, self._width - lo)
            di = Signal(self.BLOCK_WIDTH, name=f"di{blk}")
            do = Signal(self.BLOCK_WIDTH, name=f"do{blk}")
            m.d.comb += [di[:n].eq(self.w_data[lo:lo + n]),
                         self.r_data[lo:lo + n].eq(do[:n])]
            ports = {}
            for k in range(18):
                ports[f"i_DIA{k}"] = di[k]
                ports[f"i_DIB{k}"] = di[18 + k]
                ports[f"o_DOA{k}"] = do[k]
                ports[f"o_DOB{k}"] = do[18 + k]
            # Word address on AD5..AD13; AD0..AD3 of the write port are its byte enables.
            for k in range(14):
                bit = k - 5
                w = self.w_addr[bit] if 0 <= bit < abits else Const(0)
                r = self.r_addr[bit] if 0 <= bit < abits else Const(0)
                ports[f"i_ADA{k}"] = self.w_en if k < 4 else w
                ports[f"i_ADB{k}"] = r
            for k in range(3):
                ports[f"i_CSA{k}"] = 0
                ports[f"i_CSB{k}"] = 0
            m.submodules[f"bram{blk}"] = Instance(
                "DP16KD",
                p_DATA_WIDTH_A=36, p_DATA_WIDTH_B=36,
                p_REGMODE_A="OUTREG", p_REGMODE_B="OUTREG",
                p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
                i_CLKA=ClockSignal(), i_CEA=1, i_WEA=1, i_OCEA=self.o_en, i_RSTA=0,
                i_CLKB=ClockSignal(), i_CEB=self.r_en, i_WEB=0, i_OCEB=self.o_en, i_RSTB=0,
                **ports,
            )
        return m


def pipelined_ram(kind, width, depth):
    """Build the RAM of ``kind`` (a :class:`BufferRam`)."""
    return {BufferRam.INFERRED: InferredRam, BufferRam.ECP5: Ecp5BlockRam}[kind](width, depth)
