"""Processing elements of the systolic array.

Both PEs are data movement (operand registers passed to the neighbours) and an accumulate
stage around a multiplier that lives outside the PE: the PE drives ``mul_a``/``mul_b`` and
adds ``mul_p``, and the array attaches the multipliers (:func:`~.mul.attach_multipliers`),
so one DSP block can serve two PEs (iCE40 ``SB_MAC16`` in its dual 8x8 mode). Data
registers have no reset (they are qualified by tags that do reset), which keeps them free to
pack into DSP and fabric registers.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..common.pipeline import delay
from .mul import multiplier_latency
from .params import Multiplier

__all__ = ["OsPE", "WsBroadcastPE", "WsPE", "ws_psum_width"]


def _psum_members(pe, p, psum_in_width, psum_out_width):
    """Set ``pe``'s partial-sum widths (``acc_width`` unless given); return its psum members.

    ``psum_in`` only when its width is not 0 (a top-row PE has no adder).
    """
    pe._in_width = p.acc_width if psum_in_width is None else psum_in_width
    pe._out_width = p.acc_width if psum_out_width is None else psum_out_width
    members = {"psum_out": Out(signed(pe._out_width))}
    if pe._in_width:
        members["psum_in"] = In(signed(pe._in_width))
    return members


def _mul_members(p):
    return {"mul_a": Out(signed(p.a_width)), "mul_b": Out(signed(p.w_width)),
            "mul_p": In(signed(p.product_width))}


class WsPE(wiring.Component):
    """Weight-stationary PE: ``psum_out = psum_in + a * w`` with a double-buffered weight.

    Parameters
    ----------
    params : SystolicParams
    psum_in_width : int
        Width of the incoming partial sum; 0 for the top row, which has no adder
        (``psum_out = a * w``). Default ``acc_width``.
    psum_out_width : int
        Width of the outgoing partial sum (default ``acc_width``). The array narrows the
        chain to the exact width a column needs so far (see :func:`ws_psum_width`).

    Members
    -------
    a_in, a_out : In/Out(signed(a_width))
        Activation from the left neighbour; registered copy to the right neighbour.
    swap_in, swap_out : In/Out(1)
        Tag travelling with the activation: when it enters this PE, the active weight takes
        the shadow weight, so the swap moves through the array with the first vector of a
        new tile.
    w_shift : In(1)
        Shift the shadow-weight chain by one row (all PEs of a column at once).
    w_in, w_out : In/Out(signed(w_width))
        Shadow-weight chain: from the PE below, to the PE above.
    psum_in : In(signed(psum_in_width))
        Partial sum from the PE above (absent when ``psum_in_width == 0``).
    psum_out : Out(signed(psum_out_width))
        Registered ``psum_in + a * w``, wrapped modulo ``2**psum_out_width``.
    mul_a, mul_b, mul_p : Out(signed(a_width)), Out(signed(w_width)), In(product)
        To and from the attached multiplier: the registered activation, the active weight,
        and their product ``L`` cycles later.

    Timing (L = multiplier latency, 1 by default): if ``a_in`` carries vector t in cycle S,
    ``a_out`` carries it in S+1, ``psum_in`` must carry its partial sum in S+1+L and
    ``psum_out`` holds the new sum in S+2+L.
    """

    def __init__(self, params, *, psum_in_width=None, psum_out_width=None):
        self._params = p = params
        super().__init__({
            "a_in": In(signed(p.a_width)), "a_out": Out(signed(p.a_width)),
            "swap_in": In(1), "swap_out": Out(1),
            "w_shift": In(1),
            "w_in": In(signed(p.w_width)), "w_out": Out(signed(p.w_width)),
            **_psum_members(self, p, psum_in_width, psum_out_width),
            **_mul_members(p),
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
        # Multiply (outside), accumulate (wraps by truncation to psum_out_width).
        m.d.comb += [self.mul_a.eq(a_reg), self.mul_b.eq(active)]
        psum = Signal(signed(self._out_width), reset_less=True)
        m.d.sync += psum.eq(self.psum_in + self.mul_p if self._in_width else self.mul_p)
        m.d.comb += self.psum_out.eq(psum)
        return m


class WsBroadcastPE(wiring.Component):
    """Weight-stationary PE of a row-broadcast array: ``psum_out = psum_in + a * w``.

    :class:`WsPE` without the activation forwarding and without the shadow weight: every PE
    of a row sees the row's activation in the same cycle, and its weight arrives on the
    row's weight bus in the cycle the tile's first vector does (``WsArray(broadcast=True)``).
    With ``multiplier=ice40`` the PE keeps no registers but its sum: the ``SB_MAC16``'s A
    register takes ``a_in`` and its B register, loaded only when ``mul_load`` is high (the
    swap), is the active weight; with the other multipliers an activation register and an
    active-weight register in the fabric do the same, in front of the multiplier.

    Members
    -------
    a_in : In(signed(a_width))
        The row's activation.
    swap_in : In(1)
        The row's swap tag: the active weight takes ``w_in`` on this edge.
    w_in : In(signed(w_width))
        The row's weight bus (this PE's column).
    psum_in, psum_out :
        As :class:`WsPE`.
    mul_a, mul_b, mul_p : Out(signed(a_width)), Out(signed(w_width)), In(product)
        To and from the attached multiplier.
    mul_load : Out(1)
        Only with ``multiplier=ice40``: load the DSP block's B register (``swap_in``).

    Timing (:func:`~.ports.ws_broadcast_product_cycles` = ``R``): if ``a_in`` carries vector t in
    cycle S, ``psum_in`` must carry its partial sum in S+R and ``psum_out`` holds the new sum
    in S+R+1. A top-row PE (no ``psum_in``) has no sum register: ``psum_out`` is the product,
    in S+R (its row gets the activation a cycle late instead).
    """

    def __init__(self, params, *, psum_in_width=None, psum_out_width=None):
        self._params = p = params
        self._in_dsp = p.multiplier is Multiplier.ICE40
        members = {
            "a_in": In(signed(p.a_width)), "swap_in": In(1), "w_in": In(signed(p.w_width)),
            **_psum_members(self, p, psum_in_width, psum_out_width),
            **_mul_members(p),
        }
        if self._in_dsp:
            members["mul_load"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self._params
        if self._in_dsp:  # the DSP block's A and B registers are the operand registers
            m.d.comb += [self.mul_a.eq(self.a_in), self.mul_b.eq(self.w_in),
                         self.mul_load.eq(self.swap_in)]
        else:
            a_reg = Signal(signed(p.a_width), reset_less=True)
            active = Signal(signed(p.w_width), reset_less=True)
            m.d.sync += a_reg.eq(self.a_in)
            with m.If(self.swap_in):
                m.d.sync += active.eq(self.w_in)
            m.d.comb += [self.mul_a.eq(a_reg), self.mul_b.eq(active)]
        if not self._in_width:  # the top row: the product itself, unregistered
            m.d.comb += self.psum_out.eq(self.mul_p)
            return m
        psum = Signal(signed(self._out_width), reset_less=True)
        m.d.sync += psum.eq(self.psum_in + self.mul_p)
        m.d.comb += self.psum_out.eq(psum)
        return m


def ws_psum_width(params, row):
    """Width of the partial sum leaving PE row ``row`` of a weight-stationary column.

    After ``row + 1`` exact products (each within ``product_width`` signed bits) the sum
    needs at most ``product_width + ceil(log2(row + 1))`` bits, so it never wraps; capped at
    ``acc_width``, where wrapping early or late gives the same result modulo
    ``2**acc_width``. The array adds the incoming partial sums at full width below the
    last row, so the chain adders stay narrow (19 bits for 8 int8 rows instead of 32).
    """
    return min(params.acc_width, params.product_width + row.bit_length())


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
    mul_a, mul_b, mul_p : Out(signed(a_width)), Out(signed(w_width)), In(product)
        To and from the attached multiplier (``L`` cycles from operands to product).

    Timing (L = multiplier latency): operands on ``a_in``/``b_in`` in cycle S are in ``acc``
    from cycle S+2+L; ``done`` is high in that cycle when they carried ``last``.
    """

    def __init__(self, params):
        self._params = params
        self._latency = multiplier_latency(params)
        p = params
        super().__init__({
            "a_in": In(signed(p.a_width)), "a_out": Out(signed(p.a_width)),
            "b_in": In(signed(p.w_width)), "b_out": Out(signed(p.w_width)),
            "first_in": In(1), "first_out": Out(1),
            "last_in": In(1), "last_out": Out(1),
            "acc": Out(signed(p.acc_width)),
            "done": Out(1),
            **_mul_members(p),
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
        # Multiply (outside); the tags wait for the product.
        m.d.comb += [self.mul_a.eq(a_reg), self.mul_b.eq(b_reg)]
        first_p = delay(m, first, self._latency, name="first")
        last_p = delay(m, last, self._latency, name="last")
        # Accumulate. Idle cycles carry a == 0, so they add nothing.
        acc = Signal(signed(p.acc_width), reset_less=True)
        done = Signal()
        m.d.sync += [acc.eq(Mux(first_p, 0, acc) + self.mul_p), done.eq(last_p)]
        m.d.comb += [self.acc.eq(acc), self.done.eq(done)]
        return m
