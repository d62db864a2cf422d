"""The multiplier inside a PE, kept apart so a DSP-specific variant can replace it."""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["InferredMultiplier"]


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
