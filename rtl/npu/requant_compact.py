"""Compact requantization unit: ``ort`` rounding only, every shift done a step at a time."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned

from .requant import (
    _fixed_interval_handshake,
    _radix4_addend,
    _RequantUnit,
    _signed_clamped_output,
)

__all__ = ["CompactRequantizer"]

#: The shift register's width: a product of a 25-bit and a 24-bit magnitude (below 2**48).
_W = 49
#: Magnitudes below 2**SIG have 24 significant bits at most (float32's mantissa).
_SIG = 24
#: A pass-C shift this long rounds every value (at most 2**24) to 0.
_RIGHT_MAX = 26
#: A value being rounded has at most 34 bits (pass C with ``e >= 0``: ``2**24 << 9``, or
#: ``2**25 << 17`` for a 16-bit output).
_RIGHT_BITS = _SIG + 1 + 17


class CompactRequantizer(_RequantUnit):
    """:class:`~.requant_serial.SerialRequantizer`'s ``ort_only`` function in fewer LUTs.

    The same ports and golden model (:func:`npugen.sim.models.requant.requantize_ort`):
    ``float32(acc)``, one float32 multiply by the scale (mantissa ``multiplier``, exponent
    ``shift``), round half to even to an integer, sign, zero point, clamp to ``[lo, hi]``.
    Every beat is rounded as ``ort`` (``mode`` is not read). It is built for the smallest
    FPGAs: instead of a barrel shifter and two bit-length encoders, one 49-bit register
    shifts right by 8, 4 or 1 per cycle, collecting the bit of weight 1/2 (``guard``) and
    whether anything below it was set (``sticky``), and a multiply of two bits per cycle.

    Steps (``t`` counts busy cycles from 0):

    - ``|acc|`` into the register; the exponent ``e`` starts at ``shift``.
    - pass A: while the value has more than 24 significant bits, shift (by 8 while it has
      32 or more, by 4 while 28 or more, else by 1; ``e`` grows by as much); then round half
      to even: ``x`` = float32(|acc|)'s mantissa (at most 2**24). At most 4 shifts (31 bits:
      4, 1, 1, 1) and the rounding.
    - ``3 * x``, then ``x * multiplier`` in 12 steps of two multiplier bits.
    - pass B: the product the same way (the float32 product's mantissa; at most 6 shifts:
      47 bits, 8, 8, 4, 1, 1, 1).
    - pass C: with ``e >= 0`` the value is an integer: ``m << e`` as ``(m << (w + 1)) >>
      (w + 1 - e)`` (``w`` = ``out_width``), or, beyond ``w + 1``, a value past every
      bound; with ``e < 0`` a right shift by ``min(-e, 26)``, rounded half to even: steps of
      8 while 8 or more remain, then of 4, then of 1; at most 6 (23: 8, 8, 4, 1, 1, 1) and
      the rounding.
    - with pass C's rounding, saturation to ``out_width + 3`` bits; then sign, zero point
      and clamp into the output register at ``t`` = :attr:`INTERVAL` - 1 (the path above,
      at its longest, fits).

    Members
    -------
    i : In(stream.Signature(requant_in_layout(out_width)))
    o : Out(stream.Signature(signed(out_width + 1)))

    One beat every :attr:`INTERVAL` cycles; the output appears ``INTERVAL + 1`` cycles after
    its input was taken (:attr:`LATENCY`). ``i.ready`` is high while the unit is idle, and
    in the last step when the output register is free (empty or taken in that cycle), so
    back-to-back beats come :attr:`INTERVAL` cycles apart. ``o.valid`` and the payload come
    from registers.
    """

    #: The longest path: pass A 4 + 1, 3x 1, multiply 12, pass B 6 + 1, load 1, pass C
    #: 6 + 1 (with the saturation); the output at the step after.
    INTERVAL = 5 + 1 + 12 + 7 + 1 + 7 + 1
    #: Cycles from an accepted input beat to its output.
    LATENCY = INTERVAL + 1
    #: Every beat is rounded as ``ort``.
    ort_only = True

    @property
    def interval(self):
        """Busy cycles per beat (:attr:`INTERVAL`)."""
        return self.INTERVAL

    @property
    def latency(self):
        """Cycles from an accepted input beat to its output (:attr:`LATENCY`)."""
        return self.LATENCY

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        ow = self.out_width
        p = self.i.payload
        busy = Signal()
        t = Signal(range(self.INTERVAL))
        mantissa = Signal(unsigned(_SIG))
        zp, lo, hi = (Signal(signed(ow + 1), name=n) for n in ("zp", "lo", "hi"))
        neg = Signal()
        e = Signal(signed(10))  # the value's binary exponent so far
        # The shift register; during the multiply it holds the product's running high part
        # above the multiplier's remaining bits (which become the product's low bits).
        w = Signal(unsigned(_W))
        guard, sticky = Signal(), Signal()
        k = Signal(range(_RIGHT_MAX + 1))  # pass C's shift still to do
        x = Signal(unsigned(_SIG + 1))
        x3 = Signal(unsigned(_SIG + 3))
        second = Signal(signed(ow + 3))

        # ---- the shift register's steps and the rounding (half to even); a rounded value
        # has at most 34 bits (pass C with e >= 0), every other at most 25
        by8 = Cat(w[8:], Const(0, 8))
        by4 = Cat(w[4:], Const(0, 4))
        by1 = Cat(w[1:], Const(0, 1))
        rounded = Signal(unsigned(_RIGHT_BITS))
        m.d.comb += rounded.eq(w[:_RIGHT_BITS] + (guard & (sticky | w[0])))

        def shift(m, eight, four):
            """Shift the register right by 8 (``eight``), 4 (``four``) or 1; return the step.

            The bit shifted out last becomes ``guard``; everything below it, ``sticky``.
            """
            with m.If(eight):
                m.d.sync += [w.eq(by8), guard.eq(w[7]),
                             sticky.eq(sticky | guard | (w[:7] != 0))]
            with m.Elif(four):
                m.d.sync += [w.eq(by4), guard.eq(w[3]),
                             sticky.eq(sticky | guard | (w[:3] != 0))]
            with m.Else():
                m.d.sync += [w.eq(by1), guard.eq(w[0]), sticky.eq(sticky | guard)]
            return Mux(eight, 8, Mux(four, 4, 1))

        # Normalizing: a step of 8 with 32 significant bits or more, of 4 with 28 or more (so
        # 24 remain), else of 1 while there are more than 24.
        wide = w[31:] != 0
        mid = w[27:] != 0
        over = w[_SIG:] != 0

        # ---- the multiply step: hi + digit * x, then {hi, lo} >> 2 (hi: w[24:], lo: w[:24])
        addend = _radix4_addend(m, w[:2], x, x3, "addend")
        partial = Signal(unsigned(_SIG + 3))
        m.d.comb += partial.eq(w[_SIG:] + addend)

        # ---- hand-shake
        finish, accept = _fixed_interval_handshake(m, self, busy, t, self.INTERVAL)
        with m.If(accept):  # |acc| goes straight into the register
            m.d.sync += [e.eq(p.shift), neg.eq(p.acc[-1]),
                         w.eq(Mux(p.acc[-1], -p.acc, p.acc)[:32]), guard.eq(0), sticky.eq(0),
                         mantissa.eq(p.multiplier[:_SIG]), zp.eq(p.zero_point), lo.eq(p.lo),
                         hi.eq(p.hi)]

        steps = Signal(range(13))  # multiply steps done
        with m.FSM(name="compact"):
            with m.State("IDLE"):
                with m.If(accept):
                    m.next = "A"
            with m.State("A"):  # float32(|acc|)
                with m.If(over):
                    m.d.sync += e.eq(e + shift(m, wide, mid))
                with m.Else():
                    m.d.sync += [x.eq(rounded), steps.eq(0)]
                    m.next = "X3"
            with m.State("X3"):
                m.d.sync += [x3.eq(x + (x << 1)), w.eq(mantissa), guard.eq(0), sticky.eq(0)]
                m.next = "MUL"
            with m.State("MUL"):
                m.d.sync += [w.eq(Cat(w[2:_SIG], partial)), steps.eq(steps + 1)]
                with m.If(steps == _SIG // 2 - 1):
                    m.next = "B"
            with m.State("B"):  # the float32 product's mantissa, into x (free again)
                with m.If(over):
                    m.d.sync += e.eq(e + shift(m, wide, mid))
                with m.Else():
                    m.d.sync += x.eq(rounded)
                    m.next = "LOAD_C"
            with m.State("LOAD_C"):  # to an integer by the exponent
                m.d.sync += [guard.eq(0), sticky.eq(0)]
                with m.If(e > ow + 1):
                    # Any non-zero value shifted left this far is beyond every bound.
                    m.d.sync += [w.eq(Mux(x != 0, 1 << (ow + 2), 0)), k.eq(0)]
                with m.Elif(e >= 0):  # x << e, as (x << (ow + 1)) >> (ow + 1 - e): exact
                    m.d.sync += [w.eq(x << (ow + 1)), k.eq(ow + 1 - e)]
                with m.Else():
                    m.d.sync += [w.eq(x), k.eq(Mux(-e > _RIGHT_MAX, _RIGHT_MAX, -e))]
                m.next = "C"
            with m.State("C"):
                with m.If(k != 0):
                    m.d.sync += k.eq(k - shift(m, k >= 8, k >= 4))
                with m.Else():
                    # saturated: +-2**(ow + 2) is beyond every clamp bound
                    m.d.sync += second.eq(Mux(rounded[ow + 2:] != 0, (1 << (ow + 2)) - 1,
                                              rounded))
                    m.next = "HOLD"
            with m.State("HOLD"):
                with m.If(finish):
                    m.next = "IDLE"
                    with m.If(accept):  # the next beat, back to back
                        m.next = "A"

        # ---- the last step: sign, zero point, clamp
        _signed_clamped_output(m, self, finish, neg, second, zp, lo, hi)
        return m
