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

from .params import Validated, check_int

__all__ = ["BufferRam", "Ecp5BlockRam", "Ice40SpRam", "InferredRam", "disjoint_memory",
           "pipelined_ram"]


class BufferRam(enum.Enum):
    """Where a buffer keeps its words."""

    #: ``lib.memory`` with a synchronous read port and a fabric output register; yosys picks
    #: LUT RAM or block RAM by size (on ECP5 without the block RAM's output register).
    INFERRED = "inferred"
    #: Lattice ECP5 ``DP16KD`` (512 x 36 pseudo-dual-port, or 1024 x 18 ... 16384 x 1 for
    #: deeper memories), output registers on.
    ECP5 = "ecp5"


def disjoint_memory(*, shape, depth):
    """Return a ``lib.memory.Memory`` (no initial contents) that needs no read-during-write logic.

    Its user promises that a read port and a write port never use one address in the same
    cycle. Amaranth's read port without transparency returns the old word when a write to
    its address lands in the same cycle; iCE40 and ECP5 block RAMs leave that case
    undefined, so yosys emulates it in the fabric: a register per write-data bit, one per
    read-data bit and a multiplexer (on the 4-lane UP5K NPU, 645 flip-flops and 156 LUTs
    for five memories; 550 logic cells). The ``no_rw_check`` attribute tells yosys the
    case never arises, and the block RAM is used as it is. The promise is the caller's to
    keep and its tests' to check: the NPU's tests watch every such memory's ports in every
    cycle (``tests/rtl/test_npu_core.py``) and fail on a same-address read and write.
    """
    return memory.Memory(shape=shape, depth=depth, init=[], attrs={"no_rw_check": 1})


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

    The block's aspect ratio follows ``depth``: 512 x 36 (pseudo-dual-port: port A writes 36
    bits with byte enables on ``ADA0..3``, all four driven by ``w_en``; the read data's low
    half leaves on ``DOA``, its high half on ``DOB``), or for deeper memories 1024 x 18,
    2048 x 9, 4096 x 4, 8192 x 2, 16384 x 1 (port A writes on ``DIA`` with ``WEA`` =
    ``w_en``, port B reads on ``DOB``). ``ceil(width / block width)`` blocks side by side.
    ``CEB`` = ``r_en`` clocks the read register, ``OCEA``/``OCEB`` = ``o_en`` the output
    registers. Address and data pins follow yosys's own mapping of such memories onto
    ``DP16KD``. Simulation uses npugen's behavioural model (``sim/flow/verilog/DP16KD.v``).
    ``depth`` <= 16384.
    """

    #: (deepest memory, block data width, lowest address pin) per aspect ratio.
    MODES = ((512, 36, 5), (1024, 18, 4), (2048, 9, 3), (4096, 4, 2), (8192, 2, 1),
             (16384, 1, 0))
    BLOCK_WIDTH = 36
    BLOCK_DEPTH = 512

    @classmethod
    def validate(cls, width, depth):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        check_int("width", width, 1, 4096)
        check_int("depth", depth, 2, cls.MODES[-1][0])

    def __init__(self, width, depth):
        self._width, self._depth = width, depth
        self._mode = next(m for m in self.MODES if depth <= m[0])
        super().__init__(_signature(width, depth))

    @property
    def block_width(self):
        """Data bits per block in the chosen aspect ratio."""
        return self._mode[1]

    @property
    def blocks(self):
        """Number of ``DP16KD`` blocks."""
        return -(-self._width // self.block_width)

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        _, bw, lo_pin = self._mode
        abits = len(self.w_addr)
        for blk in range(self.blocks):
            lo = blk * bw
            n = min(bw, self._width - lo)
            di = Signal(36, name=f"di{blk}")
            do = Signal(36, name=f"do{blk}")
            m.d.comb += [di[:n].eq(self.w_data[lo:lo + n]),
                         self.r_data[lo:lo + n].eq(do[:n])]
            ports = {}
            for k in range(14):
                bit = k - lo_pin
                w = self.w_addr[bit] if 0 <= bit < abits else Const(0)
                r = self.r_addr[bit] if 0 <= bit < abits else Const(0)
                if bw == 36:  # AD0..AD3 of the write port are its byte enables
                    ports[f"i_ADA{k}"] = self.w_en if k < 4 else w
                elif bw == 18:  # AD0, AD1: byte enables
                    ports[f"i_ADA{k}"] = Const(1) if k < 2 else w
                else:
                    ports[f"i_ADA{k}"] = w
                ports[f"i_ADB{k}"] = r
            if bw == 36:
                for k in range(18):
                    ports[f"i_DIA{k}"] = di[k]
                    ports[f"i_DIB{k}"] = di[18 + k]
                    ports[f"o_DOA{k}"] = do[k]
                    ports[f"o_DOB{k}"] = do[18 + k]
                wea = Const(1)
            else:
                # Port A's read data is not used in these modes; its pins get a wire so
                # that every pin of the instance is connected.
                doa = Signal(18, name=f"doa_unused{blk}")
                for k in range(18):
                    ports[f"i_DIA{k}"] = di[k] if k < bw else Const(0)
                    ports[f"i_DIB{k}"] = Const(0)
                    ports[f"o_DOA{k}"] = doa[k]
                    ports[f"o_DOB{k}"] = do[k]
                wea = self.w_en
            for k in range(3):
                ports[f"i_CSA{k}"] = 0
                ports[f"i_CSB{k}"] = 0
            m.submodules[f"bram{blk}"] = Instance(
                "DP16KD",
                p_DATA_WIDTH_A=bw, p_DATA_WIDTH_B=bw,
                p_REGMODE_A="OUTREG", p_REGMODE_B="OUTREG",
                p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
                i_CLKA=ClockSignal(), i_CEA=1, i_WEA=wea, i_OCEA=self.o_en, i_RSTA=0,
                i_CLKB=ClockSignal(), i_CEB=self.r_en, i_WEB=0, i_OCEB=self.o_en, i_RSTB=0,
                **ports,
            )
        return m


class Ice40SpRam(Validated, wiring.Component):
    """``depth`` x ``width`` single-port RAM on iCE40 UP5K ``SB_SPRAM256KA`` blocks.

    Each block holds 16384 x 16 bits; ``ceil(width / 16)`` blocks side by side (the UP5K
    has four). One access per cycle: a write, or a read whose data is ``r_data`` from the
    next cycle on. The data holds while neither is asked for, and is not defined after a
    write (the block's own rule: yosys's model drives ``x``). Yosys does not map an
    Amaranth ``Memory`` onto these blocks (Amaranth 0.5 gives every memory an initial
    value, which SPRAM cannot have), hence the instances. Simulation uses yosys's own model
    of the block (``ice40/cells_sim.v``).

    Members
    -------
    addr : In(range(depth))
    w_en, w_data : In(1), In(width)
        Write ``w_data`` at ``addr`` on this clock edge (a write wins over a read).
    r_en : In(1)
        Read the word at ``addr`` on this clock edge.
    r_data : Out(width)
    """

    BLOCK_WIDTH = 16
    BLOCK_DEPTH = 16384

    @classmethod
    def validate(cls, width, depth):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        check_int("width", width, 1, 4 * cls.BLOCK_WIDTH)
        check_int("depth", depth, 2, cls.BLOCK_DEPTH)

    def __init__(self, width, depth):
        self._width, self._depth = width, depth
        super().__init__({"addr": In(range(depth)), "w_en": In(1), "w_data": In(width),
                          "r_en": In(1), "r_data": Out(width)})

    @property
    def blocks(self):
        """Number of ``SB_SPRAM256KA`` blocks."""
        return -(-self._width // self.BLOCK_WIDTH)

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        bw = self.BLOCK_WIDTH
        address = Signal(14)
        m.d.comb += address.eq(self.addr)
        for blk in range(self.blocks):
            lo = blk * bw
            n = min(bw, self._width - lo)
            di = Signal(bw, name=f"di{blk}")
            do = Signal(bw, name=f"do{blk}")
            m.d.comb += [di[:n].eq(self.w_data[lo:lo + n]), self.r_data[lo:lo + n].eq(do[:n])]
            m.submodules[f"spram{blk}"] = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=address, i_DATAIN=di, i_MASKWREN=Const(0b1111, 4),
                i_WREN=self.w_en, i_CHIPSELECT=self.w_en | self.r_en, i_CLOCK=ClockSignal(),
                i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1, o_DATAOUT=do,
            )
        return m


def pipelined_ram(kind, width, depth):
    """Build the RAM of ``kind`` (a :class:`BufferRam`)."""
    return {BufferRam.INFERRED: InferredRam, BufferRam.ECP5: Ecp5BlockRam}[kind](width, depth)
