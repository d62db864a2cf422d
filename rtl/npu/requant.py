"""Requantization unit: int32 accumulator to a narrow integer, as a named runtime rounds it."""

import enum

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..common.params import Validated, check_int
from ..common.pipeline import LockstepPipeline

__all__ = ["Requantizer", "Rounding", "requant_in_layout"]


class Rounding(enum.IntEnum):
    """The runtime whose requantization an instruction reproduces bit for bit."""

    #: onnxruntime CPU: float32(acc) x float32 scale, round half to even (``multiplier`` and
    #: ``shift`` are the scale's 24-bit mantissa and exponent).
    ORT = 0
    #: TFLite's integer single rounding of ``acc x q / 2**(31 - s)``, half up (a
    #: ``TFLITE_SINGLE_ROUNDING`` build; LiteRT's default XNNPACK path rounds as ``ORT``).
    TFLITE = 1
    #: TFLite reference kernels / TFLite Micro (gemmlowp): double rounding.
    GEMMLOWP = 2


def requant_in_layout(out_width):
    """One accumulator and the requantization parameters of its output channel."""
    return data.StructLayout({
        "acc": signed(32),
        "multiplier": unsigned(31),  # ort: 24-bit mantissa; tflite/gemmlowp: q in [2**30, 2**31)
        "shift": signed(8),  # ort: exponent; tflite/gemmlowp: s in -31..30
        "zero_point": signed(out_width + 1),
        "lo": signed(out_width + 1),
        "hi": signed(out_width + 1),
        "mode": unsigned(2),
    })


def _shift_parts(m, x, k, rule, name):
    """``x >> k`` and the rounding increment of ``x / 2**k`` by ``rule``. Combinational.

    Returns ``(q, up)``: the rounded quotient is ``q + up`` (added in the next stage, so a
    stage holds one shifter and one comparison, not a shift, a comparison and an add).
    ``half_up``: floor(x / 2**k + 1/2). ``half_even``: ties to even (``x >= 0``).
    ``half_away``: ties away from zero (gemmlowp's RoundingDivideByPOT). ``k`` must be less
    than ``len(x)``.
    """
    width = len(x)
    q = Signal(signed(width), name=f"{name}_q")
    m.d.comb += q.eq(x >> k)
    # The bits shifted out: the half bit (k - 1) and whether anything below it is set.
    ones = Signal(width, name=f"{name}_mask")  # 2**k - 1
    m.d.comb += ones.eq((Const(1, width + 1) << k) - 1)
    rem = Signal(width, name=f"{name}_rem")
    m.d.comb += rem.eq(x.as_unsigned() & ones)
    half = Signal(width, name=f"{name}_half")  # 2**(k - 1), 0 for k = 0
    m.d.comb += half.eq(ones ^ (ones >> 1))
    up = Signal(name=f"{name}_up")
    if rule == "half_up":
        m.d.comb += up.eq((rem >= half) & (k != 0))
    elif rule == "half_even":
        m.d.comb += up.eq(((rem > half) | ((rem == half) & q[0])) & (k != 0))
    else:
        threshold = (ones >> 1) + x[-1]
        m.d.comb += up.eq(rem > threshold)
    return q, up


def _saturate(m, x, bits, name):
    """``x`` saturated to a ``bits``-bit signed value (a comparison of its top bits only)."""
    top = x[bits - 1:]
    lim = 1 << (bits - 1)
    y = Signal(signed(bits), name=name)
    with m.If((top == 0) | (top == (1 << len(top)) - 1)):
        m.d.comb += y.eq(x)
    with m.Elif(x[-1]):
        m.d.comb += y.eq(-lim)
    with m.Else():
        m.d.comb += y.eq(lim - 1)
    return y


def _bit_length(m, x, name, chunk=8):
    """Bit length of the non-negative ``x``: a few LUT levels, not a priority chain.

    Each ``chunk``-bit group's own bit length and the highest non-zero group are found side
    by side; the result selects the one from the other.
    """
    n = Signal(range(len(x) + 1), name=name)
    groups = [x[i:i + chunk] for i in range(0, len(x), chunk)]
    local = []
    for g, bits in enumerate(groups):
        lb = Signal(range(len(bits) + 1), name=f"{name}_g{g}")
        for i in range(len(bits)):  # a small priority encoder per group
            with m.If(bits[i]):
                m.d.comb += lb.eq(i + 1)
        local.append(lb)
    nonzero = Signal(len(groups), name=f"{name}_nz")
    m.d.comb += nonzero.eq(Cat(*(bits != 0 for bits in groups)))
    top = Signal(range(max(len(groups), 2)), name=f"{name}_top")
    for g in range(len(groups)):
        with m.If(nonzero[g]):
            m.d.comb += top.eq(g)
    with m.Switch(top):
        for g in range(len(groups)):
            with m.Case(g):
                m.d.comb += n.eq(Mux(nonzero[g], g * chunk + local[g], 0))
    return n


def _radix4_addend(m, digit, x, x3, name):
    """``digit * x`` for a 2-bit multiplier digit, from ``x`` and ``3 * x`` (``x3``).

    One step of a radix-4 serial multiply: the caller adds it to the product's running high
    part and shifts two bits out. Returns a signal as wide (and as signed) as ``x3``.
    """
    addend = Signal(x3.shape(), name=name)
    with m.Switch(digit):
        with m.Case(1):
            m.d.comb += addend.eq(x)
        with m.Case(2):
            m.d.comb += addend.eq(x << 1)
        with m.Case(3):
            m.d.comb += addend.eq(x3)
    return addend


def _fixed_interval_handshake(m, unit, busy, t, interval):
    """Drive the hand-shake of a unit that takes ``interval`` busy cycles per beat.

    ``busy`` and the step counter ``t`` (0 at the beat's first busy cycle) are the caller's;
    this drives ``i.ready`` (idle, or the last step when the output register is free: empty
    or taken in that cycle, so back-to-back beats come ``interval`` cycles apart),
    ``o.valid`` (from a register), ``busy`` and ``t``. Returns ``(finish, accept)``:
    ``finish`` is the cycle the output register loads, ``accept`` the cycle a beat is taken
    (``busy`` and ``t`` restart; the caller loads the beat's operands).
    """
    out_free = ~unit.o.valid | unit.o.ready
    last = busy & (t == interval - 1)
    finish = last & out_free
    m.d.comb += unit.i.ready.eq(~busy | finish)
    with m.If(unit.o.ready):
        m.d.sync += unit.o.valid.eq(0)
    with m.If(finish):
        m.d.sync += [unit.o.valid.eq(1), busy.eq(0)]
    with m.Elif(busy & ~last):
        m.d.sync += t.eq(t + 1)
    accept = unit.i.valid & unit.i.ready
    with m.If(accept):
        m.d.sync += [busy.eq(1), t.eq(0)]
    return finish, accept


def _signed_clamped_output(m, unit, finish, negate, second, zp, lo, hi):
    """Load ``zp -+ second``, clamped to ``[lo, hi]``, into the output (the last step).

    ``second`` is a magnitude saturated to ``out_width + 3`` bits (beyond every bound);
    ``negate`` subtracts it. The result loads the output register when ``finish`` is high.
    """
    value = Signal(signed(unit.out_width + 4), name="value")
    m.d.comb += value.eq(Mux(negate, zp - second, zp + second))
    result = Signal(signed(unit.out_width + 1), name="result")
    with m.If(value < lo):
        m.d.comb += result.eq(lo)
    with m.Elif(value > hi):
        m.d.comb += result.eq(hi)
    with m.Else():
        m.d.comb += result.eq(value)
    with m.If(finish):
        m.d.sync += unit.o.payload.eq(result)


class _RequantUnit(Validated, wiring.Component):
    """The ports and the parameter check both requantization units share."""

    @classmethod
    def validate(cls, out_width=8):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        check_int("out_width", out_width, 2, 16)

    def __init__(self, out_width=8):
        self.out_width = out_width
        super().__init__({
            "i": In(stream.Signature(requant_in_layout(out_width))),
            "o": Out(stream.Signature(signed(out_width + 1))),
        })


class Requantizer(_RequantUnit):
    """Maps int32 accumulators to ``out_width``-bit outputs; the rounding is per beat.

    Each input beat carries its accumulator (bias included) and its output channel's
    parameters (:func:`requant_in_layout`); the output is the value the named runtime
    computes (:mod:`npugen.sim.models.requant` is the golden model), clamped to
    ``[lo, hi]`` (which also encodes a fused ReLU or ReLU6).

    Datapath (integers only; no floating-point unit), after an input register (the
    accumulator comes from block RAM through the bias add) and a stage that takes ``|acc|``
    and its bit length. Each rounding takes two stages (the shift and its increment, then
    the add), so no stage holds more than one shifter or one carry chain and a comparison:

    1. ``ort``: ``|acc|`` rounded half-even to 24 significant bits (float32(acc));
       ``gemmlowp``: ``acc << max(s, 0)`` wrapped to 32 bits; ``tflite``: ``acc``.
    2. One 33 x 31-bit signed multiply by ``multiplier`` (two stages: four DSP-sized
       products, registered; their sum).
    3. ``ort``: the product rounded half-even to 24 significant bits (the float32
       multiply); ``tflite``: rounded half up by ``31 - s`` bits, done; ``gemmlowp``: rounded
       half up by 31 bits (SaturatingRoundingDoublingHighMul).
    4. ``ort``: half-even to an integer (the exponent's right shift); ``gemmlowp``: half away
       from zero by ``max(-s, 0)`` bits (RoundingDivideByPOT).
    5. Sign (``ort``), clamp to ``[lo - zero_point, hi - zero_point]``, add ``zero_point``.

    Parameters
    ----------
    out_width : int
        Output bits (2..16); ``lo``, ``hi`` and ``zero_point`` are ``out_width + 1``-bit
        signed so that both int8 and uint8 ranges fit.

    Members
    -------
    i : In(stream.Signature(requant_in_layout(out_width)))
    o : Out(stream.Signature(signed(out_width + 1)))
        The requantized value (within ``[lo, hi]``).

    Latency :attr:`LATENCY` cycles, one beat per cycle. The pipeline advances when its last
    stage is empty or taken (``i.ready = ~o.valid | o.ready``), so ``o.valid`` and the
    payload come from registers and never depend on ``o.ready``. A mode value of 3 is
    treated as ``gemmlowp`` (the instruction decoder rejects it first). Valid parameters:
    ``ort`` mantissa in ``[2**23, 2**24)`` and exponent ``-126-23..127-23``; ``q`` in
    ``[2**30, 2**31)`` and ``s`` in ``-31..30``; ``lo <= hi``. Outside them the output is
    still clamped to ``[lo, hi]`` but no runtime defines it.
    """

    #: Cycles from an accepted input beat to its output.
    LATENCY = 12

    #: Width of the value between the two roundings (stage 3 -> 4), saturated.
    FIRST_BITS = 34

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        pipe = LockstepPipeline(m, self.i, self.o, self.LATENCY)
        go, carry = pipe.go, pipe.carry

        p = self.i.payload
        # Stage 1: the input, registered: it arrives from block RAM through a bias add.
        ctl = carry({"mode": p.mode, "shift": p.shift, "zp": p.zero_point, "lo": p.lo,
                     "hi": p.hi, "mult": p.multiplier}, 1)
        acc = carry({"acc": p.acc}, 1)["acc"]

        # Stage 2: |acc| and its bit length.
        neg = acc[-1]
        mag = Signal(unsigned(32))
        m.d.comb += mag.eq(Mux(neg, -acc, acc))
        blen_a = _bit_length(m, mag, "blen_a")
        s0 = carry({**ctl, "acc": acc, "mag": mag, "neg": neg, "blen_a": blen_a}, 2)
        ctl = {k: s0[k] for k in ctl}

        # Stage 3: float32(|acc|): the shift and its rounding increment.
        shift_a = Signal(range(9))  # bits above 24 rounded away
        m.d.comb += shift_a.eq(Mux(s0["blen_a"] > 24, s0["blen_a"] - 24, 0))
        q_a, up_a = _shift_parts(m, Cat(s0["mag"], Const(0, 1)).as_signed(), shift_a,
                                 "half_even", "fa")
        left = Signal(range(31))
        m.d.comb += left.eq(Mux(ctl["shift"] > 0, ctl["shift"], 0))
        wrapped = Signal(signed(32))
        m.d.comb += wrapped.eq(s0["acc"] << left)
        s1 = carry({**ctl, "acc": s0["acc"], "q_a": q_a, "up_a": up_a, "wrapped": wrapped,
                    "neg": s0["neg"], "shift_a": shift_a}, 3)

        # Stage 4: the multiplier's first operand.
        operand = Signal(signed(33))
        with m.Switch(s1["mode"]):
            with m.Case(Rounding.ORT):
                m.d.comb += operand.eq(s1["q_a"] + s1["up_a"])
            with m.Case(Rounding.TFLITE):
                m.d.comb += operand.eq(s1["acc"])
            with m.Default():
                m.d.comb += operand.eq(s1["wrapped"])
        s2 = carry({**{k: s1[k] for k in ctl}, "operand": operand, "neg": s1["neg"],
                    "shift_a": s1["shift_a"]}, 4)

        # Stages 5-6: the multiply, as four products that each fit one 18 x 18 DSP block
        # (operand = oh * 2**17 + ol, mult = mh * 2**17 + ml; ol, ml unsigned), registered
        # before any addition; then their sum: the two middle products' sum added to ll and
        # hh side by side (ll < 2**34: a concatenation, no adder).
        op, mu = s2["operand"], s2["mult"]
        ol, oh, ml, mh = op[:17], op[17:].as_signed(), mu[:17], mu[17:]
        keep = {**{k: s2[k] for k in ctl}, "neg": s2["neg"], "shift_a": s2["shift_a"]}
        pp = carry({**keep, "ll": ol * ml, "lh": ol * mh, "hl": oh * ml, "hh": oh * mh}, 5)
        keep = {k: pp[k] for k in keep}
        mid = Signal(signed(35))
        m.d.comb += mid.eq(pp["lh"] + pp["hl"])
        outer = Signal(signed(64))
        m.d.comb += outer.eq(Cat(pp["ll"][:34], pp["hh"]).as_signed())
        product = Signal(signed(64))
        m.d.comb += product.eq(outer + (mid << 17))
        s3 = carry({**keep, "product": product}, 6)

        # Stage 7: where the first rounding cuts (ort: 24 significant bits of the product),
        # and the exponent that the second rounding will use.
        x = s3["product"]
        blen_p = _bit_length(m, x[:63], "blen_p")  # ort: the product is non-negative
        shift_p = Signal(range(40))
        m.d.comb += shift_p.eq(Mux(blen_p > 24, blen_p - 24, 0))
        k1 = Signal(range(64))
        with m.Switch(s3["mode"]):
            with m.Case(Rounding.ORT):
                m.d.comb += k1.eq(shift_p)
            with m.Case(Rounding.TFLITE):
                m.d.comb += k1.eq(31 - s3["shift"])
            with m.Default():
                m.d.comb += k1.eq(31)
        # ort: the float32 product is first * 2**e; e = shift_a + shift_p + exponent.
        exp = Signal(signed(10))
        m.d.comb += exp.eq(s3["shift_a"] + shift_p + s3["shift"])
        s4 = carry({**{k: s3[k] for k in ctl}, "product": x, "k1": k1, "exp": exp,
                    "neg": s3["neg"]}, 7)

        # Stage 8: the first rounding's shift (ort: half even; tflite, gemmlowp: half up);
        # the second rounding's shift amount.
        q1e, up1e = _shift_parts(m, s4["product"], s4["k1"], "half_even", "fp")
        _, up1u = _shift_parts(m, s4["product"], s4["k1"], "half_up", "hu")  # same shift
        up1 = Mux(s4["mode"] == Rounding.ORT, up1e, up1u)
        # A right shift by FIRST_BITS - 1 already rounds every ort value (< 2**25) to 0.
        most = self.FIRST_BITS - 1
        right = Signal(range(self.FIRST_BITS))
        with m.Switch(s4["mode"]):
            with m.Case(Rounding.ORT):
                m.d.comb += right.eq(Mux(s4["exp"] < 0,
                                         Mux(-s4["exp"] > most, most, -s4["exp"]), 0))
            with m.Case(Rounding.TFLITE):
                m.d.comb += right.eq(0)
            with m.Default():
                m.d.comb += right.eq(Mux(s4["shift"] < 0, -s4["shift"], 0))
        s5 = carry({**{k: s4[k] for k in ctl}, "q1": q1e, "up1": up1, "exp": s4["exp"],
                    "right": right, "neg": s4["neg"]}, 8)

        # Stage 9: the first rounding's increment; narrow to FIRST_BITS. ort's value has at
        # most 25 bits and gemmlowp's at most 32 (a doubling high multiply); only tflite's
        # can be wider, and any value that wide is beyond every clamp bound, so it
        # saturates without changing the output.
        rounded = Signal(signed(65))
        m.d.comb += rounded.eq(s5["q1"] + s5["up1"])
        first = _saturate(m, rounded, self.FIRST_BITS, "first")
        s6 = carry({**{k: s5[k] for k in ctl}, "first": first, "exp": s5["exp"],
                    "right": s5["right"], "neg": s5["neg"]}, 9)

        # Stage 10: the second rounding's shift (ort: to an integer, half even; gemmlowp:
        # RoundingDivideByPOT, half away); ort with a non-negative exponent is already an
        # integer: any non-zero value shifted left by 9 or more is beyond every clamp bound,
        # so it saturates instead of shifting.
        y = s6["first"]
        q2e, up2e = _shift_parts(m, y, s6["right"], "half_even", "ie")
        _, up2a = _shift_parts(m, y, s6["right"], "half_away", "ha")  # same shift
        big = (1 << (self.out_width + 2))
        lifted = Signal(signed(self.FIRST_BITS + self.out_width + 2))
        with m.If(s6["exp"] > self.out_width + 1):
            m.d.comb += lifted.eq(Mux(y != 0, big, 0))
        with m.Else():
            m.d.comb += lifted.eq(y << s6["exp"][:5])
        base = Signal(signed(self.FIRST_BITS + self.out_width + 2))
        up2 = Signal()
        with m.Switch(s6["mode"]):
            with m.Case(Rounding.ORT):
                m.d.comb += [base.eq(Mux(s6["exp"] < 0, q2e, lifted)),
                             up2.eq((s6["exp"] < 0) & up2e)]
            with m.Case(Rounding.TFLITE):
                m.d.comb += base.eq(y)
            with m.Default():
                m.d.comb += [base.eq(q2e), up2.eq(up2a)]
        s7 = carry({"zp": s6["zp"], "lo": s6["lo"], "hi": s6["hi"], "base": base, "up2": up2,
                    "negate": (s6["mode"] == Rounding.ORT) & s6["neg"]}, 10)

        # Stage 11: the second rounding's increment, and the sign (ort).
        second = Signal(signed(self.FIRST_BITS + self.out_width + 3))
        m.d.comb += second.eq(s7["base"] + s7["up2"])
        s8 = carry({"zp": s7["zp"], "lo": s7["lo"], "hi": s7["hi"], "second": second,
                    "negate": s7["negate"]}, 11)

        # Stage 12: sign, zero point and clamp. ort clamps before the zero point (in float),
        # the others after it; with integer bounds both are the same function.
        shifted = Signal(signed(self.FIRST_BITS + self.out_width + 5))
        m.d.comb += shifted.eq(Mux(s8["negate"], s8["zp"] - s8["second"],
                                   s8["zp"] + s8["second"]))
        result = Signal(signed(self.out_width + 1))
        with m.If(shifted < s8["lo"]):
            m.d.comb += result.eq(s8["lo"])
        with m.Elif(shifted > s8["hi"]):
            m.d.comb += result.eq(s8["hi"])
        with m.Else():
            m.d.comb += result.eq(shifted)
        with m.If(go):
            m.d.sync += self.o.payload.eq(result)
        return m
