"""I/O box: measure a core's speed and size on an FPGA without its ports needing pins."""

from operator import xor

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .pipeline import reduce_tree

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
        # never limits the measured Fmax (a single XOR cell over hundreds of bits would), and
        # no linear chain (which overflows yosys's ABC9 stack).
        bits = list(Cat(*outputs))
        folded = reduce_tree(m, bits, xor, name="xor") if len(bits) > 1 else bits[0]
        m.d.sync += self.dout.eq(folded)
        return m
