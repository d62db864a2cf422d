"""The multiplier inside a PE, kept apart so a DSP-specific variant can replace it."""

from amaranth.hdl import ClockSignal, Instance, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Ecp5Multiplier", "InferredMultiplier", "make_multiplier", "multiplier_latency"]


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
        super().__init__({
            "a": In(signed(a_width)),
            "b": In(signed(b_width)),
            "p": Out(signed(a_width + b_width)),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        product = Signal.like(self.p, reset_less=True)
        m.d.sync += product.eq(self.a * self.b)
        m.d.comb += self.p.eq(product)
        return m


class Ecp5Multiplier(wiring.Component):
    """Signed multiplier on one Lattice ECP5 ``MULT18X18D`` with its own registers.

    The A and B input registers and the output register of the DSP block are on (clock
    ``CLK0`` = the ``sync`` clock, no clock enable or reset: the PE qualifies data with tags),
    so the fabric-to-DSP and DSP-to-fabric routes each start or end at a register inside the
    DSP, which is what lets the block run near its ~250 MHz ceiling. Same signature as
    :class:`InferredMultiplier`, ``latency`` 2. Operands up to 18 bits, sign-extended.

    Simulation uses npugen's behavioural model of the primitive (``sim/verilog``); synthesis
    maps the instance directly.
    """

    latency = 2

    def __init__(self, a_width, b_width):
        if a_width > 18 or b_width > 18:
            self._MustUse__silence = True  # never built: no "unused elaboratable" warning
            raise ValueError(f"MULT18X18D operands are at most 18 bits, not {a_width}, "
                             f"{b_width}")
        super().__init__({
            "a": In(signed(a_width)),
            "b": In(signed(b_width)),
            "p": Out(signed(a_width + b_width)),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        a = Signal(signed(18))
        b = Signal(signed(18))
        p = Signal(signed(36))
        m.d.comb += [a.eq(self.a), b.eq(self.b), self.p.eq(p)]
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


def make_multiplier(params):
    """Return the multiplier the parameters ask for."""
    from .params import Multiplier

    cls = Ecp5Multiplier if params.multiplier is Multiplier.ECP5 else InferredMultiplier
    return cls(params.a_width, params.w_width)


def multiplier_latency(params):
    """Cycles from operands to product of the multiplier ``params`` selects."""
    from .params import Multiplier

    return (Ecp5Multiplier if params.multiplier is Multiplier.ECP5
            else InferredMultiplier).latency
