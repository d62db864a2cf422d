"""Adders built on the ECP5's carry cells (``CCU2C``) directly, for tight loops."""

from amaranth.hdl import C, Instance, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .params import Validated

__all__ = ["Ecp5MuxAdd", "mux_add_init"]


def mux_add_init():
    """Return the ``CCU2C`` half's LUT4 contents for one bit of ``(sel ? a : b) + c``.

    Pins: A = c, B = sel, C = b, D = a. The LUT4 gives the bit's propagate,
    ``(sel ? a : b) ^ c``. The cell's generate (taken when propagate is 0) is the LUT4's
    entries with C = D = 0 read as a LUT2 of A and B; there ``sel ? a : b`` is 0, so those
    entries are ``c`` = pin A, which is the generate an adder needs (propagate 0 means both
    addend bits are equal, to ``c``).
    """
    init = 0
    for index in range(16):
        c, sel, b, a = ((index >> k) & 1 for k in range(4))
        init |= ((a if sel else b) ^ c) << index
    return init


class Ecp5MuxAdd(Validated, wiring.Component):
    """``y = (sel ? a : b) + c`` in one chain of ECP5 carry cells, combinational.

    Yosys maps ``Mux(sel, a, b) + c`` to a row of LUT4s (the multiplexer) feeding a ``CCU2C``
    chain, so a loop through it (an accumulator adding into its own last sum) crosses a LUT,
    two routes and the chain. Here each carry cell's own LUT4 makes the multiplexer and the
    propagate together (:func:`mux_add_init`): one route from the registers to the chain.
    The loop operand should be ``a`` (pin D, the cell's fastest input).

    Members
    -------
    sel : In(1)
    a, b : In(signed(width))
    c : In(signed(c_width)), sign-extended (or cut) to ``width``
    y : Out(signed(width))
        ``(sel ? a : b) + c`` modulo ``2**width`` (wraps). No register: the caller's.

    Synthesis maps the instances directly; simulation uses npugen's model of ``CCU2C``
    (``sim/flow/verilog``). There is no Amaranth-simulator model: test it in Verilator.
    """

    @classmethod
    def validate(cls, width, c_width):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        if not isinstance(width, int) or width < 2:
            raise ValueError(f"width must be an integer >= 2, not {width!r}")
        if not isinstance(c_width, int) or c_width < 1:
            raise ValueError(f"c_width must be an integer >= 1, not {c_width!r}")

    def __init__(self, width, c_width):
        self._width = width
        super().__init__({"sel": In(1), "a": In(signed(width)), "b": In(signed(width)),
                          "c": In(signed(c_width)), "y": Out(signed(width))})

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        width = self._width
        cells = (width + 1) // 2
        a = Signal(2 * cells)
        b = Signal(2 * cells)
        c = Signal(2 * cells)
        y = Signal(2 * cells)
        carry = Signal(cells + 1)  # carry[0]: the chain's carry in, 0
        m.d.comb += [a.eq(self.a), b.eq(self.b), c.eq(self.c), self.y.eq(y)]
        init = C(mux_add_init(), 16)
        for k in range(cells):
            pins = {}
            for half in range(2):
                bit = 2 * k + half
                pins.update({f"i_A{half}": c[bit], f"i_B{half}": self.sel,
                             f"i_C{half}": b[bit], f"i_D{half}": a[bit],
                             f"o_S{half}": y[bit]})
            m.submodules[f"ccu{k}"] = Instance(
                "CCU2C", p_INIT0=init, p_INIT1=init, p_INJECT1_0="NO", p_INJECT1_1="NO",
                i_CIN=carry[k], o_COUT=carry[k + 1], **pins)
        return m
