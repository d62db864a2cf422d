"""Serial requantization unit: :class:`~.requant.Requantizer`'s function in few LUTs."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned

from .requant import (
    Requantizer,
    Rounding,
    _bit_length,
    _fixed_interval_handshake,
    _radix4_addend,
    _RequantUnit,
    _saturate,
    _signed_clamped_output,
)

__all__ = ["SerialRequantizer"]

#: Width of the shared shifter's input: a 64-bit product, signed, and one bit of headroom
#: (``ort_only``: a product below 2**49, signed).
_W, _W_ORT = 66, 50
#: Rounding rules of the shared shifter.
_TRUNC, _HALF_UP, _HALF_EVEN, _HALF_AWAY = range(4)


class SerialRequantizer(_RequantUnit):
    """Maps int32 accumulators to ``out_width``-bit outputs, one every :attr:`INTERVAL` cycles.

    The same function as :class:`~.requant.Requantizer` (the same ports, the same golden
    model, :mod:`npugen.sim.models.requant`), built for small FPGAs: one shared 66-bit
    rounding right shifter does the three roundings in turn, and the multiply is serial,
    two multiplier bits per cycle in the fabric (no DSP block: on an iCE40 UP5K the
    systolic array takes them all). About half the pipelined unit's LUTs and under a third
    of its flip-flops (``synth_ice40``: 1,398 SB_LUT4 and 317 flip-flops against 2,643 and
    1,090).

    The shifter divides ``w`` by ``2**k`` (``k`` < 64) and rounds: ``trunc`` (floor),
    ``half_up``, ``half_even`` or ``half_away`` (ties away from zero: gemmlowp's
    RoundingDivideByPOT). Its barrel shifts ``2 * w``, so the bit of weight 1/2 comes out as
    the result's last bit, and each stage ORs together the bits it shifts out (the sticky
    bit); one increment adds the rounding.

    Steps, one cycle each after the input is taken (``t``):

    0. ``|acc|`` and its bit length; the first pass's shifter input (``ort``: ``|acc|``
       rounded half-even to 24 significant bits; ``gemmlowp``: ``acc << max(s, 0)``
       wrapped to 32 bits, as ``(acc * 2**32) >> (32 - max(s, 0))``; ``tflite``: ``acc``).
    1. The shift: the multiplier's first operand ``x``.
    2. ``3 * x``, for the radix-4 multiply.
    3. - 18. ``x * multiplier``, two multiplier bits per cycle (one 36-bit add).
    19. The second pass's input: the product, and its shift (``ort``: to 24 significant
        bits, half even; ``tflite``: by ``31 - s``, half up; ``gemmlowp``: by 31, half up).
    20. The shift, saturated to 34 bits; the third pass's input (``ort``: to an integer by
        the exponent, half even, or a left shift done as a right shift of ``y * 2**9``;
        ``gemmlowp``: by ``max(-s, 0)``, half away; ``tflite``: none).
    21. The shift, saturated to ``out_width + 3`` bits (``+-2**(out_width + 2)`` is beyond
        every clamp bound).
    22. Sign (``ort``), zero point and clamp into the output register.

    With ``ort_only`` the unit rounds every beat as ``ort`` (its ``mode`` is not read; the
    NPU stops other modes before they run): the first pass's result has 25 bits and the
    mantissa 24, so the multiply takes 12 steps and the shifter, the product and the
    registers are narrower; the shifter's output is registered (a cycle more per pass: the
    unit sits in nearly full small FPGAs, where routing sets the clock): :attr:`interval`
    22.

    Parameters
    ----------
    out_width : int
        Output bits (2..16), as :class:`~.requant.Requantizer`.
    ort_only : bool
        Only the ``ort`` rounding (a narrower, faster unit).

    Members
    -------
    i : In(stream.Signature(requant_in_layout(out_width)))
    o : Out(stream.Signature(signed(out_width + 1)))

    One beat every :attr:`interval` cycles (:attr:`INTERVAL` with every mode); the output
    appears ``interval + 1`` cycles after its input was taken. ``i.ready`` is high while
    the unit is idle, and in the last step when the output register is free (empty or taken
    in that cycle), so back-to-back beats come ``interval`` cycles apart. ``o.valid`` and
    the payload come from registers.
    """

    #: Busy cycles per beat (steps 0..22), and the distance of back-to-back beats.
    INTERVAL = 23
    #: Cycles from an accepted input beat to its output.
    LATENCY = INTERVAL + 1
    #: ``ort_only``: four multiply steps fewer, and a register after the shifter (one
    #: cycle more in each of the three passes).
    INTERVAL_ORT = INTERVAL - 4 + 3

    @classmethod
    def validate(cls, out_width=8, ort_only=False):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        super().validate(out_width)
        if not isinstance(ort_only, bool):
            raise TypeError(f"ort_only must be a bool, not {type(ort_only).__name__}")

    def __init__(self, out_width=8, ort_only=False):
        self.ort_only = ort_only
        super().__init__(out_width)

    @property
    def interval(self):
        """Busy cycles per beat: :attr:`INTERVAL`, or :attr:`INTERVAL_ORT` with ``ort_only``."""
        return self.INTERVAL_ORT if self.ort_only else self.INTERVAL

    @property
    def latency(self):
        """Cycles from an accepted input beat to its output."""
        return self.interval + 1

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        ow = self.out_width
        first_bits = Requantizer.FIRST_BITS
        p = self.i.payload
        ort_only = self.ort_only
        # ort: x = |acc| rounded to 24 significant bits (at most 2**24), a 24-bit mantissa.
        wide = _W_ORT if ort_only else _W
        x_bits, m_bits = (26, 24) if ort_only else (34, 32)
        mul_steps = m_bits // 2
        interval = self.interval
        # The schedule: with ort_only each pass's shift has a cycle of its own (``lag``: the
        # shifter's output register, for the clock of a nearly full small FPGA).
        lag = 1 if ort_only else 0
        s_x = 1 + lag
        s_mul = s_x + 2
        s_load2 = s_mul + mul_steps
        s_load3 = s_load2 + 1 + lag
        s_second = s_load3 + 1 + lag
        assert s_second + 2 == interval

        busy = Signal()
        t = Signal(range(interval))
        acc = Signal(signed(32))
        shift = Signal(signed(8))
        mode = Signal(2)
        zp, lo, hi = (Signal(signed(ow + 1), name=n) for n in ("zp", "lo", "hi"))
        # The shared shifter: input, amount, rule.
        w = Signal(signed(wide))
        k = Signal(range(64))
        rule = Signal(2)
        # The multiply: x, 3x, the running high part, the multiplier's remaining bits
        # (which become the product's low 32 bits).
        x = Signal(signed(x_bits))
        x3 = Signal(signed(x_bits + 2))
        prod_hi = Signal(signed(x_bits))
        prod_lo = Signal(unsigned(m_bits))
        exp = Signal(signed(10))  # ort: the float32 result's exponent
        neg = Signal()  # ort: acc < 0 (the datapath works on |acc|)
        second = Signal(signed(ow + 3))

        is_ort = Const(1) if ort_only else mode == Rounding.ORT
        is_tfl = Const(0) if ort_only else mode == Rounding.TFLITE
        is_gml = ~is_ort & ~is_tfl  # mode 3 is treated as gemmlowp

        # ---- the shared shifter: r = round(w / 2**k). The barrel shifts 2w (the half bit
        # becomes the result's last bit) and ORs together what each stage shifts out.
        v = Cat(Const(0, 1), w).as_signed()
        sticky = Const(0, 1)
        for j in range(len(k)):
            amount = 1 << j
            nv = Signal(signed(len(v)), name=f"sh_v{j}")
            ns = Signal(name=f"sh_s{j}")
            m.d.comb += [nv.eq(Mux(k[j], v >> amount, v)),
                         ns.eq(sticky | (k[j] & (v[:amount] != 0)))]
            v, sticky = nv, ns
        if ort_only:
            v_q = Signal(signed(len(v)), name="sh_q")
            sticky_q = Signal(name="sh_sticky_q")
            m.d.sync += [v_q.eq(v), sticky_q.eq(sticky)]
            v, sticky = v_q, sticky_q
        low = v[0]  # the bit of weight 1/2 (0 for k = 0)
        q = v[1:].as_signed()  # w >> k
        up = Signal()
        with m.Switch(rule):
            with m.Case(_HALF_UP):
                m.d.comb += up.eq(low)
            with m.Case(_HALF_EVEN):
                m.d.comb += up.eq(low & (sticky | q[0]))
            with m.Case(_HALF_AWAY):  # ties away from zero
                m.d.comb += up.eq(low & (sticky | ~w[-1]))
        r = Signal(signed(wide + 1))
        m.d.comb += r.eq(q + up)

        # ---- saturation of the second pass's result to FIRST_BITS (tflite only reaches it;
        # ort's is at most 2**24)
        y = r[:26].as_signed() if ort_only else _saturate(m, r, first_bits, "y")
        # ---- and of the third's to out_width + 3 bits: +-2**(ow + 2) is beyond every bound
        bounded = _saturate(m, r, ow + 3, "bounded")

        # ---- step 0 inputs: |acc| and its bit length
        mag = Signal(unsigned(32))
        m.d.comb += mag.eq(Mux(acc[-1], -acc, acc))
        blen_a = _bit_length(m, mag, "blen_a")
        shift_a = Signal(range(9))
        m.d.comb += shift_a.eq(Mux(blen_a > 24, blen_a - 24, 0))
        # ---- step 19 inputs: the product and its bit length (ort: it is not negative)
        product = Signal(signed(x_bits + m_bits))
        m.d.comb += product.eq(Cat(prod_lo, prod_hi))
        blen_p = _bit_length(m, product[:wide - 1], "blen_p")
        shift_p = Signal(range(40))
        m.d.comb += shift_p.eq(Mux(blen_p > 24, blen_p - 24, 0))

        # ---- the multiply step: hi + digit * x, then {hi, lo} >> 2
        addend = _radix4_addend(m, prod_lo[:2], x, x3, "addend")
        partial = Signal(signed(x_bits + 2))
        m.d.comb += partial.eq(prod_hi + addend)

        # ---- hand-shake
        finish, accept = _fixed_interval_handshake(m, self, busy, t, interval)
        with m.If(accept):
            m.d.sync += [acc.eq(p.acc), shift.eq(p.shift),
                         mode.eq(p.mode), zp.eq(p.zero_point), lo.eq(p.lo), hi.eq(p.hi),
                         prod_lo.eq(p.multiplier[:m_bits])]

        left = Signal(range(31))
        m.d.comb += left.eq(Mux(shift > 0, shift, 0))
        with m.If(busy):
            with m.Switch(t):
                with m.Case(0):
                    m.d.sync += neg.eq(acc[-1])
                    with m.If(is_ort):
                        m.d.sync += [w.eq(mag), k.eq(shift_a), rule.eq(_HALF_EVEN),
                                     exp.eq(shift_a)]
                    with m.Elif(is_tfl):
                        m.d.sync += [w.eq(acc), k.eq(0), rule.eq(_TRUNC)]
                    with m.Else():
                        m.d.sync += [w.eq(acc << 32), k.eq(32 - left), rule.eq(_TRUNC)]
                with m.Case(s_x):
                    m.d.sync += [x.eq(Mux(is_gml, r[:32].as_signed(), r)), prod_hi.eq(0)]
                with m.Case(s_x + 1):
                    m.d.sync += x3.eq(x + (x << 1))
                with m.Case(*range(s_mul, s_mul + mul_steps)):
                    m.d.sync += [prod_hi.eq(partial >> 2),
                                 prod_lo.eq(Cat(prod_lo[2:], partial[:2]))]
                with m.Case(s_load2):
                    m.d.sync += w.eq(product)
                    with m.If(is_ort):
                        m.d.sync += [k.eq(shift_p), rule.eq(_HALF_EVEN),
                                     exp.eq(exp + shift_p + shift)]
                    with m.Elif(is_tfl):
                        m.d.sync += [k.eq(31 - shift), rule.eq(_HALF_UP)]
                    with m.Else():
                        m.d.sync += [k.eq(31), rule.eq(_HALF_UP)]
                with m.Case(s_load3):
                    with m.If(is_ort & (exp < 0)):
                        m.d.sync += [w.eq(y), k.eq(Mux(-exp > first_bits - 1, first_bits - 1,
                                                       -exp)), rule.eq(_HALF_EVEN)]
                    with m.Elif(is_ort & (exp > ow + 1)):
                        # Any non-zero value shifted left this far is beyond every bound.
                        m.d.sync += [w.eq(Mux(y != 0, 1 << (ow + 2), 0)), k.eq(0),
                                     rule.eq(_TRUNC)]
                    with m.Elif(is_ort):  # y << exp, as (y << (ow + 1)) >> (ow + 1 - exp)
                        m.d.sync += [w.eq(y << (ow + 1)), k.eq(ow + 1 - exp),
                                     rule.eq(_TRUNC)]
                    with m.Elif(is_tfl):
                        m.d.sync += [w.eq(y), k.eq(0), rule.eq(_TRUNC)]
                    with m.Else():
                        m.d.sync += [w.eq(y), k.eq(Mux(shift < 0, -shift, 0)),
                                     rule.eq(_HALF_AWAY)]
                with m.Case(s_second):
                    m.d.sync += second.eq(bounded)

        # ---- step 22: sign, zero point, clamp
        _signed_clamped_output(m, self, finish, is_ort & neg, second, zp, lo, hi)
        return m
