"""Element-wise int8 add as onnxruntime's AVX2 ``QLinearAdd`` kernel computes it, in integers.

onnxruntime evaluates ``QLinearAdd`` in float32 (:mod:`npugen.sim.models.qladd` is the golden
model and explains why the kernel, not the operator, defines the answer). On x86-64 with
AVX2 and FMA3 each element is ``v = fma(a, rac, fma(b, rbc, fixed))``, converted to int32
rounding half to even and saturated to int8; ``rac``, ``rbc`` and ``fixed`` are float32
constants of the layer that the compiler computes as the kernel does. This module does the
same with no floating-point library: two exact ``int8 x float32 + float32`` fused
multiply-adds, each rounded once to float32 (half to even), then the conversion.

The fused multiply-add (:class:`Fma8`), for ``x`` int8, ``y`` a normal float32 and ``z``
zero or a normal float32, all held as integers (``y = my * 2**ey``, ``|my|`` 24 bits with
the hidden one):

- ``P = x * my``: ``|P|`` is 0 or in ``[2**23, 2**31)``; ``d = ez - ey``.
- ``x == 0``: the result is ``z``. ``d >= 33``: ``|P * 2**ey| < 2**(ez - 2)``, less than half
  the gap between ``z`` and either neighbour, so the result is ``z`` again.
- Otherwise the exact sum is formed on the grid ``g = 2**(ey - 2)``: ``P`` shifted left by 2
  and ``z``'s significand shifted left by ``d + 2`` (at most 34) or, for ``d < -2``, right by
  ``-(d + 2)`` rounding toward minus infinity with a sticky bit for what was shifted out.
  That is exact enough: when ``z``'s low bits fall below ``g`` (``d <= -3``), ``z`` is
  more than 2 binades below ``P``, so ``|sum| >= 2**(ey + 22)``, where every float32 and every
  midpoint between two is a multiple of ``g``; the sum lies strictly inside one step of ``g``
  and rounds as that step's centre does. The grid-``g/2`` value (61 bits with sign) is made
  a magnitude, normalized by its bit length and rounded half to even to 24 significant bits.
- The result is flagged ``invalid`` when an operand is outside that domain (``y`` zero,
  subnormal, infinite or NaN; ``z`` subnormal, infinite or NaN) or the rounded result is not
  a normal float32 (overflow, or below ``2**-126``). The sign of a zero result is not kept
  (``+0``); no conversion to an integer tells them apart.

Conversion (``cvtps2dq`` and two saturating packs): ``|v|`` rounded half to even to an integer
by a right shift; ``v >= 2**23`` is an integer already and saturates; ``|v| >= 2**31`` is out
of int32's range, ``cvtps2dq`` returns ``INT32_MIN`` and the packs give -128 (for a positive
``v`` too, as the kernel does).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..common.pipeline import LockstepPipeline
from .requant import _bit_length, _shift_parts

__all__ = ["FMA_STAGES", "Fma8", "QLinearAdder", "fma8_in_layout", "qladd_in_layout"]

#: Pipeline stages of one fused multiply-add.
FMA_STAGES = 7

#: ``d = ez - ey`` from which ``z`` alone is the result (see the module text).
_Z_ONLY = 33
#: Right shifts of ``z``'s 24-bit significand beyond this leave only the sticky bit.
_MAX_RIGHT = 26
#: Width of the exact sum in units of ``g``: ``|z| * 2**34 + |P| * 4 < 2**59``, plus a sign.
_SUM_BITS = 60


def fma8_in_layout():
    """``x * y + z``: ``x`` int8, ``y`` and ``z`` float32 bit patterns."""
    return data.StructLayout({"x": signed(8), "y": unsigned(32), "z": unsigned(32)})


def qladd_in_layout():
    """Two int8 elements and the layer's float32 constants (bit patterns)."""
    return data.StructLayout({"a": signed(8), "b": signed(8), "rac": unsigned(32),
                              "rbc": unsigned(32), "fixed": unsigned(32)})


def _fields(m, bits, name):
    """Sign, biased exponent and fraction of a float32 bit pattern."""
    sign = Signal(name=f"{name}_s")
    exp = Signal(8, name=f"{name}_e")
    frac = Signal(23, name=f"{name}_f")
    m.d.comb += [frac.eq(bits[:23]), exp.eq(bits[23:31]), sign.eq(bits[31])]
    return sign, exp, frac


def fma_stages(m, pipe, x, y, z, k, extra, name):
    """Add the :data:`FMA_STAGES` stages of ``fma(x, y, z)`` to ``pipe`` after stage ``k``.

    ``x``, ``y``, ``z`` and the values of ``extra`` (``{name: value}``, carried along) are
    stage ``k``'s registers. Returns ``(result, invalid, extra)``: the float32 bit pattern,
    the invalid flag and ``extra``, all registers of stage ``k + FMA_STAGES``.
    """
    carry = pipe.carry
    keys = list(extra)
    internal = {"p", "d", "mz", "sz", "ey", "z", "only_z", "bad", "p4", "al", "sticky", "sum",
                "neg", "mag", "n", "exp", "base", "inc", "zero", "result", "invalid"}
    if internal & set(keys):  # pragma: no cover - a caller's naming mistake
        raise ValueError(f"extra must not use the names {sorted(internal & set(keys))}")

    def keep(s):
        return {key: s[key] for key in keys}

    # 1: decode; the product x * my (x negated for a negative y); d; the domain checks.
    sy, ey, fy = _fields(m, y, f"{name}_y")
    sz, ez, fz = _fields(m, z, f"{name}_z")
    xs = Signal(signed(9), name=f"{name}_xs")
    m.d.comb += xs.eq(Mux(sy, -x, x))
    product = Signal(signed(33), name=f"{name}_p")
    m.d.comb += product.eq(xs * Cat(fy, Const(1, 1)))
    d = Signal(signed(10), name=f"{name}_d")
    m.d.comb += d.eq(ez - ey)
    z_zero = (ez == 0) & (fz == 0)
    bad = (ey == 0) | (ey == 255) | (ez == 255) | ((ez == 0) & (fz != 0))
    only_z = (x == 0) | ((d >= _Z_ONLY) & ~z_zero)
    s1 = carry({**extra, "p": product, "d": d, "mz": Mux(z_zero, 0, Cat(fz, Const(1, 1))),
                "sz": sz, "ey": ey, "z": z, "only_z": only_z, "bad": bad}, k + 1)

    # 2: z's significand on the grid g (left by d + 2, or right with a sticky bit).
    mz = Signal(signed(26), name=f"{name}_mz")
    m.d.comb += mz.eq(Mux(s1["sz"], -s1["mz"], s1["mz"]))
    up = s1["d"] + 2
    left = Signal(range(_Z_ONLY + 2), name=f"{name}_left")
    m.d.comb += left.eq(Mux(up < 0, 0, Mux(up > _Z_ONLY + 1, _Z_ONLY + 1, up)))
    right = Signal(range(_MAX_RIGHT + 1), name=f"{name}_right")
    m.d.comb += right.eq(Mux(up >= 0, 0, Mux(-up > _MAX_RIGHT, _MAX_RIGHT, -up)))
    aligned = Signal(signed(_SUM_BITS), name=f"{name}_al")
    m.d.comb += aligned.eq(Mux(up >= 0, mz << left, mz >> right))
    mask = Signal(24, name=f"{name}_mask")
    m.d.comb += mask.eq((Const(1, 27) << right) - 1)
    sticky = Signal(name=f"{name}_sticky")
    m.d.comb += sticky.eq((s1["mz"][:24] & mask) != 0)
    s2 = carry({**keep(s1), "p4": s1["p"] << 2, "al": aligned, "sticky": sticky,
                "ey": s1["ey"], "z": s1["z"], "only_z": s1["only_z"], "bad": s1["bad"]},
               k + 2)

    # 3: the exact sum, in units of g / 2 (the sticky bit is the half).
    total = Signal(signed(_SUM_BITS + 1), name=f"{name}_sum")
    m.d.comb += total.eq(Cat(s2["sticky"], (s2["p4"] + s2["al"])[:_SUM_BITS]))
    common = {"ey": s2["ey"], "z": s2["z"], "only_z": s2["only_z"], "bad": s2["bad"]}
    s3 = carry({**keep(s2), **common, "sum": total}, k + 3)

    # 4: sign and magnitude.
    neg = s3["sum"][-1]
    mag = Signal(unsigned(_SUM_BITS + 1), name=f"{name}_mag")
    m.d.comb += mag.eq(Mux(neg, -s3["sum"], s3["sum"]))
    common = {c: s3[c] for c in common}
    s4 = carry({**keep(s3), **common, "neg": neg, "mag": mag}, k + 4)

    # 5: the bit length n; the value is mag * 2**(ey - 150 - 3), so the biased exponent of
    # its leading one is n - 1 + ey - 153 + 127.
    n = _bit_length(m, s4["mag"], f"{name}_n")
    exp = Signal(signed(11), name=f"{name}_exp")
    m.d.comb += exp.eq(n + s4["ey"] - 27)
    s5 = carry({**keep(s4), **{c: s4[c] for c in ("z", "only_z", "bad")}, "neg": s4["neg"],
                "mag": s4["mag"], "n": n, "exp": exp}, k + 5)

    # 6: 24 significant bits: right by n - 24 rounding half to even, or left by 24 - n.
    cut = Signal(range(_SUM_BITS + 2), name=f"{name}_cut")
    m.d.comb += cut.eq(Mux(s5["n"] > 24, s5["n"] - 24, 0))
    q, inc = _shift_parts(m, Cat(s5["mag"], Const(0, 1)).as_signed(), cut, "half_even",
                          f"{name}_r")
    lift = Signal(range(25), name=f"{name}_lift")
    m.d.comb += lift.eq(Mux(s5["n"] > 24, 0, 24 - s5["n"]))
    base = Signal(24, name=f"{name}_base")
    m.d.comb += base.eq(Mux(s5["n"] > 24, q, s5["mag"][:24] << lift))
    s6 = carry({**keep(s5), **{c: s5[c] for c in ("z", "only_z", "bad", "neg", "exp")},
                "base": base, "inc": inc & (s5["n"] > 24), "zero": s5["n"] == 0}, k + 6)

    # 7: the increment (a carry out makes the significand 2**23 of the next binade), the
    # result or z, and the range check.
    rounded = Signal(25, name=f"{name}_rounded")
    m.d.comb += rounded.eq(s6["base"] + s6["inc"])
    biased = Signal(signed(11), name=f"{name}_biased")
    m.d.comb += biased.eq(s6["exp"] + rounded[24])
    frac = Signal(23, name=f"{name}_frac")
    m.d.comb += frac.eq(Mux(rounded[24], 0, rounded[:23]))
    result = Signal(32, name=f"{name}_result")
    invalid = Signal(name=f"{name}_invalid")
    with m.If(s6["only_z"]):
        m.d.comb += result.eq(s6["z"])
        m.d.comb += invalid.eq(s6["bad"])
    with m.Elif(s6["zero"]):
        m.d.comb += invalid.eq(s6["bad"])
    with m.Else():
        m.d.comb += result.eq(Cat(frac, biased[:8], s6["neg"]))
        m.d.comb += invalid.eq(s6["bad"] | (biased < 1) | (biased > 254))
    s7 = carry({**keep(s6), "result": result, "invalid": invalid}, k + 7)
    return s7["result"], s7["invalid"], keep(s7)


def to_int8_stages(m, pipe, v, k, extra, name):
    """Add the two stages of ``cvtps2dq`` + saturating packs of ``v`` after stage ``k``.

    Returns ``(value, extra)``; ``value`` is combinational from stage ``k + 1``'s registers
    (the caller registers it as stage ``k + 2``).
    """
    sign, exp, frac = _fields(m, v, name)
    mant = Signal(28, name=f"{name}_m")  # the significand, zeros on top (shifts up to 26)
    m.d.comb += mant.eq(Cat(frac, exp != 0))
    # exp < 150: |v| = mant * 2**(exp - 150) is rounded by a right shift of 150 - exp; any
    # shift of 26 or more gives 0 (|v| < 2**-2), so it is clamped there.
    shift = Signal(range(27), name=f"{name}_shift")
    m.d.comb += shift.eq(Mux(exp >= 150, 0, Mux(exp < 124, 26, 150 - exp)))
    q, inc = _shift_parts(m, mant.as_signed(), shift, "half_even", name)
    s1 = pipe.carry({**extra, "q": q, "inc": inc, "sign": sign, "big": exp >= 150,
                     "huge": exp >= 158}, k + 1)
    r = Signal(signed(26), name=f"{name}_int")
    m.d.comb += r.eq(s1["q"] + s1["inc"])
    value = Signal(signed(8), name=f"{name}_value")
    with m.If(s1["huge"]):  # out of int32's range: INT32_MIN, packed to -128
        m.d.comb += value.eq(-128)
    with m.Elif(s1["sign"]):
        m.d.comb += value.eq(Mux(s1["big"] | (r > 128), -128, -r))
    with m.Else():
        m.d.comb += value.eq(Mux(s1["big"] | (r > 127), 127, r))
    return value, {key: s1[key] for key in extra}


class Fma8(wiring.Component):
    """``x * y + z`` rounded once to float32: ``x`` int8, ``y`` and ``z`` float32 patterns.

    Members
    -------
    i : In(stream.Signature(fma8_in_layout()))
    o : Out(stream.Signature(data.StructLayout({"value": unsigned(32), "invalid": 1})))
        The float32 result (round half to even) and the out-of-domain flag (module text).

    Latency :attr:`LATENCY` cycles (an input register and :data:`FMA_STAGES`), one beat per
    cycle; the stages advance together (``i.ready = ~o.valid | o.ready``).
    """

    LATENCY = 1 + FMA_STAGES

    def __init__(self):
        super().__init__({
            "i": In(stream.Signature(fma8_in_layout())),
            "o": Out(stream.Signature(data.StructLayout({"value": unsigned(32),
                                                          "invalid": 1}))),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        pipe = LockstepPipeline(m, self.i, self.o, self.LATENCY)
        s0 = pipe.carry({"x": self.i.payload.x, "y": self.i.payload.y,
                         "z": self.i.payload.z}, 1)
        result, invalid, _ = fma_stages(m, pipe, s0["x"], s0["y"], s0["z"], 1, {}, "fma")
        # The last stage's registers are the output (they move with the pipeline).
        m.d.comb += [self.o.payload.value.eq(result), self.o.payload.invalid.eq(invalid)]
        return m


class QLinearAdder(wiring.Component):
    """One int8 element of ``QLinearAdd`` per cycle, as onnxruntime's AVX2 kernel computes it.

    ``c = int8(fma(a, rac, fma(b, rbc, fixed)))`` (module text); the golden model is
    :func:`npugen.sim.models.qladd.ort_add` with ``kernel="avx2"``, the constants
    :func:`npugen.sim.models.qladd.avx2_constants`.

    Members
    -------
    i : In(stream.Signature(qladd_in_layout()))
    o : Out(stream.Signature(data.StructLayout({"value": signed(8), "invalid": 1})))
        ``invalid``: a constant or an intermediate left the float32 domain the unit handles
        (module text); ``value`` is then undefined.

    Latency :attr:`LATENCY` cycles (an input register, two multiply-adds, the conversion),
    one beat per cycle; the stages advance together (``i.ready = ~o.valid | o.ready``).
    """

    LATENCY = 1 + 2 * FMA_STAGES + 2

    def __init__(self):
        super().__init__({
            "i": In(stream.Signature(qladd_in_layout())),
            "o": Out(stream.Signature(data.StructLayout({"value": signed(8), "invalid": 1}))),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        pipe = LockstepPipeline(m, self.i, self.o, self.LATENCY)
        p = self.i.payload
        s0 = pipe.carry({"a": p.a, "b": p.b, "rac": p.rac, "rbc": p.rbc, "fixed": p.fixed}, 1)
        inner, bad_inner, s1 = fma_stages(m, pipe, s0["b"], s0["rbc"], s0["fixed"], 1,
                                          {"a": s0["a"], "rac": s0["rac"]}, "inner")
        k = 1 + FMA_STAGES
        outer, bad_outer, s2 = fma_stages(m, pipe, s1["a"], s1["rac"], inner, k,
                                          {"flag": bad_inner}, "outer")
        k += FMA_STAGES
        value, s3 = to_int8_stages(m, pipe, outer, k, {"flag": s2["flag"] | bad_outer}, "cvt")
        with m.If(pipe.go):
            m.d.sync += [self.o.payload.value.eq(value), self.o.payload.invalid.eq(s3["flag"])]
        return m
