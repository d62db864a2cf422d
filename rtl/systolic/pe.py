"""Processing elements of the systolic array.

Both PEs are three separate small pieces: data movement (operand registers passed to the
neighbours), the multiplier (:class:`~.mul.InferredMultiplier`, replaceable), and the
accumulate stage. Data registers have no reset (they are qualified by tags that do reset),
which keeps them free to pack into DSP and fabric registers.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .mul import make_multiplier

__all__ = ["OsPE", "WsPE"]


def _delay(m, sig, cycles, name):
    """Register ``sig`` ``cycles`` times (a resettable tag pipeline)."""
    for i in range(cycles):
        nxt = Signal.like(sig, name=f"{name}_d{i + 1}")
        m.d.sync += nxt.eq(sig)
        sig = nxt
    return sig


class WsPE(wiring.Component):
    """Weight-stationary PE: ``psum_out = psum_in + a * w`` with a double-buffered weight.

    Members
    -------
    a_in, a_out : In/Out(signed(a_width))
        Activation from the left neighbour; registered copy to the right neighbour.
    swap_in, swap_out : In/Out(1)
        Tag travelling with the activation: when it enters this PE, the active weight takes
        the shadow weight, so the swap moves through the array with the first vector of a
        new tile.
    w_shift : In(1)
        Shift the shadow-weight chain by one row (all PEs of the array at once).
    w_in, w_out : In/Out(signed(w_width))
        Shadow-weight chain: from the PE below, to the PE above.
    psum_in, psum_out : In/Out(signed(acc_width))
        Partial sum from the PE above; registered sum to the PE below. Wraps modulo
        ``2**acc_width``.

    Timing (L = multiplier latency, 1 by default): if ``a_in`` carries vector t in cycle S,
    ``a_out`` carries it in S+1, ``psum_in`` must carry its partial sum in S+1+L and
    ``psum_out`` holds the new sum in S+2+L.
    """

    def __init__(self, params):
        self._params = params
        p = params
        super().__init__({
            "a_in": In(signed(p.a_width)), "a_out": Out(signed(p.a_width)),
            "swap_in": In(1), "swap_out": Out(1),
            "w_shift": In(1),
            "w_in": In(signed(p.w_width)), "w_out": Out(signed(p.w_width)),
            "psum_in": In(signed(p.acc_width)), "psum_out": Out(signed(p.acc_width)),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self._params
        # Data movement.
        a_reg = Signal(signed(p.a_width), reset_less=True)
        swap_reg = Signal()
        shadow = Signal(signed(p.w_width), reset_less=True)
        active = Signal(signed(p.w_width), reset_less=True)
        m.d.sync += [a_reg.eq(self.a_in), swap_reg.eq(self.swap_in)]
        with m.If(self.w_shift):
            m.d.sync += shadow.eq(self.w_in)
        # The swap lands on the same edge as the new tile's first activation.
        with m.If(self.swap_in):
            m.d.sync += active.eq(shadow)
        m.d.comb += [self.a_out.eq(a_reg), self.swap_out.eq(swap_reg), self.w_out.eq(shadow)]
        # Multiply.
        m.submodules.mul = mul = make_multiplier(p)
        m.d.comb += [mul.a.eq(a_reg), mul.b.eq(active)]
        # Accumulate (wraps by truncation to acc_width).
        psum = Signal(signed(p.acc_width), reset_less=True)
        m.d.sync += psum.eq(self.psum_in + mul.p)
        m.d.comb += self.psum_out.eq(psum)
        return m


class OsPE(wiring.Component):
    """Output-stationary PE: accumulates ``sum_k a[k] * b[k]`` for one output element.

    Members
    -------
    a_in, a_out : In/Out(signed(a_width))
        A operand, left to right.
    b_in, b_out : In/Out(signed(w_width))
        B operand, top to bottom.
    first_in, first_out, last_in, last_out : In/Out(1)
        Tags travelling with ``a``: ``first`` restarts the accumulator, ``last`` marks the
        final term of a tile.
    acc : Out(signed(acc_width))
        The accumulator, wrapping modulo ``2**acc_width``.
    done : Out(1)
        High for the one cycle in which ``acc`` holds a finished tile's result (the next
        tile's terms then overwrite it).

    Timing (L = multiplier latency): operands on ``a_in``/``b_in`` in cycle S are in ``acc``
    from cycle S+2+L; ``done`` is high in that cycle when they carried ``last``.
    """

    def __init__(self, params):
        self._params = params
        p = params
        super().__init__({
            "a_in": In(signed(p.a_width)), "a_out": Out(signed(p.a_width)),
            "b_in": In(signed(p.w_width)), "b_out": Out(signed(p.w_width)),
            "first_in": In(1), "first_out": Out(1),
            "last_in": In(1), "last_out": Out(1),
            "acc": Out(signed(p.acc_width)),
            "done": Out(1),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self._params
        # Data movement: operands and their tags.
        a_reg = Signal(signed(p.a_width), reset_less=True)
        b_reg = Signal(signed(p.w_width), reset_less=True)
        first = Signal()
        last = Signal()
        m.d.sync += [a_reg.eq(self.a_in), b_reg.eq(self.b_in),
                     first.eq(self.first_in), last.eq(self.last_in)]
        m.d.comb += [self.a_out.eq(a_reg), self.b_out.eq(b_reg),
                     self.first_out.eq(first), self.last_out.eq(last)]
        # Multiply; the tags wait for the product.
        m.submodules.mul = mul = make_multiplier(p)
        m.d.comb += [mul.a.eq(a_reg), mul.b.eq(b_reg)]
        first_p = _delay(m, first, mul.latency, "first")
        last_p = _delay(m, last, mul.latency, "last")
        # Accumulate. Idle cycles carry a == 0, so they add nothing.
        acc = Signal(signed(p.acc_width), reset_less=True)
        done = Signal()
        m.d.sync += [acc.eq(Mux(first_p, 0, acc) + mul.p), done.eq(last_p)]
        m.d.comb += [self.acc.eq(acc), self.done.eq(done)]
        return m
