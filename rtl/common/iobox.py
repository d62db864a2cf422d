"""I/O box: measure a core's speed and size on an FPGA without its ports needing pins."""

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["IoBox"]


class IoBox(wiring.Component):
    """Wrap ``core`` so that it needs three pins besides the clock.

    Every input bit of the core (stream payloads, valids, readies) comes from one long shift
    register fed by ``din``; every output bit is XOR-reduced into ``dout`` through a tree of
    registered 4-input XORs.
    Nothing can be optimised away (every input is a free variable, every output observed),
    and the core's paths start and end at registers, so place and route reports the core's
    own Fmax. The shift register and the XOR tree add FFs and LUTs: resource figures should
    come from synthesising the core alone (``npugen synth`` does that).

    Members
    -------
    din : In(1)
    dout : Out(1)
    """

    din: In(1)
    dout: Out(1)

    def __init__(self, core):
        self.core = core
        super().__init__()

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        m.submodules.core = core = self.core
        inputs, outputs = [], []
        for _, member, value in core.signature.flatten(core):
            (inputs if member.flow == In else outputs).append(Value.cast(value))
        width = sum(len(v) for v in inputs)
        chain = Signal(max(width, 1))
        m.d.sync += chain.eq(Cat(self.din, chain[:-1]))
        offset = 0
        for v in inputs:
            m.d.comb += v.eq(chain[offset:offset + len(v)])
            offset += len(v)
        # A registered tree of 4-input XORs: one LUT level between registers, so the box
        # never limits the measured Fmax (a single XOR cell over hundreds of bits did, at
        # about 130 MHz on ECP5), and no linear chain (which overflows yosys's ABC9 stack).
        bits = list(Cat(*outputs))
        level = 0
        while len(bits) > 1:
            nxt = []
            for g in range(0, len(bits), 4):
                reg = Signal(name=f"xor_l{level}_{g // 4}")
                m.d.sync += reg.eq(Cat(*bits[g:g + 4]).xor())
                nxt.append(reg)
            bits, level = nxt, level + 1
        m.d.sync += self.dout.eq(bits[0])
        return m
