"""Element-wise int8 add as onnxruntime's AVX2 ``QLinearAdd`` kernel computes it, in integers.

(The unit also computes XNNPACK's integer add, the ``ADD`` instruction's mode 1, and
TFLite's integer add, modes 2 and 3: see :func:`xnn_stages` and :func:`tfl_stages`;
everything below is about mode 0.)

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
  a normal float32 (overflow, or below ``2**-126``). A zero result may carry either sign
  (IEEE gives ``+0`` for a sum that cancels); no conversion to an integer tells them apart.

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

__all__ = ["FMA_STAGES", "TFL_STAGES", "Fma8", "QLinearAdder", "fma8_in_layout",
           "qladd_const_layout", "qladd_in_layout"]

#: Pipeline stages of one fused multiply-add.
FMA_STAGES = 9

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
    """One beat: two int8 elements (the layer's constants are :func:`qladd_const_layout`)."""
    return data.StructLayout({"a": signed(8), "b": signed(8)})


def qladd_const_layout():
    """Return the layer's constants' layout (a port of its own, static during the layer).

    ``mode`` 0 (onnxruntime): ``rac``, ``rbc``, ``fixed`` are float32 bit patterns; the
    shifts and zero points unused. ``mode`` 1 (XNNPACK): ``rac`` and ``rbc`` are the integer
    multipliers (two's complement, ``|m| <= 2**21``), ``fixed`` the int32 bias, ``shift`` the
    right shift and ``zc`` the output zero point. ``mode`` 2 (TFLite, double rounding) and
    3 (single rounding): ``rac``, ``rbc``, ``fixed`` are the multipliers ``q`` of a, b and
    the sum (in ``[2**30, 2**31)``), ``shift``, ``shift_b``, ``shift_out`` their right
    shifts, ``za``, ``zb``, ``zc`` the zero points. Every mode clamps to ``[lo, hi]``
    (``lo <= hi``).
    """
    return data.StructLayout({"rac": unsigned(32), "rbc": unsigned(32), "fixed": unsigned(32),
                              "mode": 2, "shift": unsigned(5), "shift_b": unsigned(5),
                              "shift_out": unsigned(5), "za": signed(8), "zb": signed(8),
                              "zc": signed(8), "lo": signed(8), "hi": signed(8)})


#: Multiplier bits the XNNPACK path uses (the decoder keeps ``|m| <= 2**21``).
XNN_MULT_BITS = 23


def xnn_stages(m, pipe, s, k, name):
    """XNNPACK's integer add after stage 1 (``s``: stage 1's registers); 6 stages.

    ``k``: the layer's constants (:func:`qladd_const_layout`, static while the beats are in
    flight, so no stage carries them). Returns stage 7's register ``value`` (int8). One carry
    chain or one shifter per stage, as the float path: 2, each 8 x 23-bit product in two
    halves (8 x 12 unsigned low, 8 x 11 signed high: one DSP multiplier each); 3, the halves
    joined; 4, ``bias + a * ma``; 5, ``+ b * mb`` (34 bits, exact: no wrap); 6, the
    arithmetic right shift (floor; the bias holds the rounding half); 7, + zero point,
    saturated to int8.
    """
    low, high = 12, XNN_MULT_BITS - 12
    parts = {}
    for x, mult, tag in ((s["a"], k["rac"], "a"), (s["b"], k["rbc"], "b")):
        lo = Signal(signed(8 + low + 1), name=f"{name}_{tag}lo")
        hi = Signal(signed(8 + high), name=f"{name}_{tag}hi")
        m.d.comb += [lo.eq(x * Cat(mult[:low], Const(0, 1)).as_signed()),
                     hi.eq(x * mult[low:XNN_MULT_BITS].as_signed())]
        parts.update({f"{tag}lo": lo, f"{tag}hi": hi})
    s2 = pipe.carry(parts, 2)
    pa = Signal(signed(8 + XNN_MULT_BITS), name=f"{name}_pa")
    pb = Signal(signed(8 + XNN_MULT_BITS), name=f"{name}_pb")
    m.d.comb += [pa.eq((s2["ahi"] << low) + s2["alo"]), pb.eq((s2["bhi"] << low) + s2["blo"])]
    s3 = pipe.carry({"pa": pa, "pb": pb}, 3)
    part = Signal(signed(33), name=f"{name}_part")
    m.d.comb += part.eq(k["fixed"].as_signed() + s3["pa"])
    s4 = pipe.carry({"part": part, "pb": s3["pb"]}, 4)
    acc = Signal(signed(34), name=f"{name}_acc")
    m.d.comb += acc.eq(s4["part"] + s4["pb"])
    s5 = pipe.carry({"acc": acc}, 5)
    shifted = Signal(signed(34), name=f"{name}_shifted")
    m.d.comb += shifted.eq(s5["acc"] >> k["shift"])
    s6 = pipe.carry({"shifted": shifted}, 6)
    total = Signal(signed(35), name=f"{name}_total")
    m.d.comb += total.eq(s6["shifted"] + k["zc"])
    value = Signal(signed(8), name=f"{name}_value")
    m.d.comb += value.eq(Mux(total < -128, -128, Mux(total > 127, 127, total)))
    return pipe.carry({"value": value}, 7)


#: Pipeline stages of :func:`tfl_stages` after stage 1.
TFL_STAGES = 13


def _tfl_round(m, pipe, r, n, e, single, k, name):
    """``M`` of :mod:`npugen.sim.models.tfl_add` on ``r = x * q / 2**(31 - n)``: 3 stages.

    ``r`` is stage ``k``'s register holding the product with its low ``31 - n`` zero bits
    dropped (inputs: ``n = 11``, as ``x = (a - za) * 2**20``; the sum: ``n = 31``), so
    ``x * q / 2**31 = r / 2**n``; ``e`` (the right shift) and ``single`` are the layer's
    static constants. Double rounding: ``h = (r + 2**(n - 1)) >> n`` (the doubling high
    multiply, half up for either sign), then ``h / 2**e`` half away from zero. Single
    rounding: ``r / 2**(n + e)`` half up, which is ``h`` for ``e = 0`` and ``(r >> n) / 2**e``
    half up otherwise (the bits below ``n`` cannot move a quotient by ``2**e >= 2`` across an
    integer). One shifter serves both. Returns stage ``k + 3``'s ``value`` register.
    """
    width = len(r) - n + 1
    h = Signal(signed(width), name=f"{name}_h")
    m.d.comb += h.eq((r + (1 << (n - 1))) >> n)
    x = Signal(signed(width), name=f"{name}_x")
    m.d.comb += x.eq(Mux(single & (e != 0), r >> n, h))
    # 2**e - 1 as a thermometer code, registered once (e is static): no carry chain in
    # front of the comparison below.
    ones = Signal(width, name=f"{name}_ones")
    m.d.sync += ones.eq(Cat(*(e > i for i in range(width))))
    s1 = pipe.carry({"x": x}, k + 1)
    q = Signal(signed(width), name=f"{name}_q")
    m.d.comb += q.eq(s1["x"] >> e)
    rem = Signal(width, name=f"{name}_rem")
    m.d.comb += rem.eq(s1["x"].as_unsigned() & ones)
    below = ones >> 1                              # 2**(e - 1) - 1 (0 for e = 0)
    above = rem > below                            # rem >= 2**(e - 1): half up
    tie = rem == (ones ^ below)                    # rem == 2**(e - 1)
    # RoundingDivideByPOT: rem > below + (x < 0), i.e. a negative tie rounds down.
    away = above & ~(s1["x"][-1] & tie)
    s2 = pipe.carry({"q": q, "up": Mux(single, above, away)}, k + 2)
    value = Signal(signed(width), name=f"{name}_v")
    m.d.comb += value.eq(s2["q"] + s2["up"])
    return pipe.carry({"value": value}, k + 3)["value"]


def tfl_stages(m, pipe, s, k, name):
    """TFLite's integer add (modes 2 and 3) after stage 1 (``s``): :data:`TFL_STAGES` stages.

    ``k``: the layer's static constants. Golden model
    :func:`npugen.sim.models.tfl_add.tflite_add_int`. 2: ``a - za``, ``b - zb`` (9 bits);
    3: each times its 31-bit ``q`` in two halves (9 x 17 and 9 x 16 bits: one DSP multiplier
    each); 4: the halves joined (40 bits); 5-7: :func:`_tfl_round` with ``n = 11``; 8: the sum
    (``|sum| < 2**29``); 9: the sum times ``q`` of the output in two halves; 10: joined (61
    bits); 11-13: :func:`_tfl_round` with ``n = 31``; 14: + ``zc``, saturated to int8.
    Returns stage 14's register ``value``.
    """
    single = k["mode"][0]
    xa = Signal(signed(9), name=f"{name}_xa")
    xb = Signal(signed(9), name=f"{name}_xb")
    m.d.comb += [xa.eq(s["a"] - k["za"]), xb.eq(s["b"] - k["zb"])]
    s2 = pipe.carry({"xa": xa, "xb": xb}, 2)
    parts = {}
    for tag, q in (("a", k["rac"]), ("b", k["rbc"])):
        x = s2[f"x{tag}"]
        lo = Signal(signed(26), name=f"{name}_{tag}lo")
        hi = Signal(signed(25), name=f"{name}_{tag}hi")
        m.d.comb += [lo.eq(x * Cat(q[:16], Const(0, 1)).as_signed()),
                     hi.eq(x * Cat(q[16:31], Const(0, 1)).as_signed())]
        parts.update({f"{tag}lo": lo, f"{tag}hi": hi})
    s3 = pipe.carry(parts, 3)
    joined = {}
    for tag in ("a", "b"):
        r = Signal(signed(40), name=f"{name}_{tag}r")
        m.d.comb += r.eq((s3[f"{tag}hi"] << 16) + s3[f"{tag}lo"])
        joined[f"r{tag}"] = r
    s4 = pipe.carry(joined, 4)
    # The two inputs' roundings side by side (stages 5-7).
    va = _tfl_round(m, pipe, s4["ra"], 11, k["shift"], single, 4, f"{name}_a")
    vb = _tfl_round(m, pipe, s4["rb"], 11, k["shift_b"], single, 4, f"{name}_b")
    total = Signal(signed(30), name=f"{name}_sum")
    m.d.comb += total.eq(va + vb)
    s8 = pipe.carry({"sum": total}, 8)
    qo = k["fixed"]
    plo = Signal(signed(47), name=f"{name}_plo")
    phi = Signal(signed(46), name=f"{name}_phi")
    m.d.comb += [plo.eq(s8["sum"] * Cat(qo[:16], Const(0, 1)).as_signed()),
                 phi.eq(s8["sum"] * Cat(qo[16:31], Const(0, 1)).as_signed())]
    s9 = pipe.carry({"plo": plo, "phi": phi}, 9)
    product = Signal(signed(61), name=f"{name}_p")
    m.d.comb += product.eq((s9["phi"] << 16) + s9["plo"])
    s10 = pipe.carry({"p": product}, 10)
    vo = _tfl_round(m, pipe, s10["p"], 31, k["shift_out"], single, 10, f"{name}_o")
    t = Signal(signed(32), name=f"{name}_t")
    m.d.comb += t.eq(vo + k["zc"])
    value = Signal(signed(8), name=f"{name}_value")
    m.d.comb += value.eq(Mux(t < -128, -128, Mux(t > 127, 127, t)))
    return pipe.carry({"value": value}, 14)


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
    the invalid flag and ``extra``, all registers of stage ``k + FMA_STAGES``. No stage
    holds more than one carry chain, one shifter or one wide OR.
    """
    keys = list(extra)
    if {"s_" + key for key in keys} & set(keys):  # pragma: no cover - naming mistake
        raise ValueError("extra keys must not start with 's_'")
    stage = [k]

    def carry(values, s_prev=None):
        """Register ``values`` (internal names get an ``s_`` prefix) and the extras."""
        stage[0] += 1
        kept = {key: s_prev[key] for key in keys} if s_prev is not None else dict(extra)
        regs = pipe.carry({**kept, **{f"s_{n}": v for n, v in values.items()}}, stage[0])
        out = {n: regs[f"s_{n}"] for n in values}
        out.update({key: regs[key] for key in keys})
        return out

    # 1: decode; the two halves of the product x * my (12 significand bits each, so each
    # fits one DSP multiplier); up = d + 2 with d = ez - ey; the domain checks.
    sy, ey, fy = _fields(m, y, f"{name}_y")
    sz, ez, fz = _fields(m, z, f"{name}_z")
    my = Cat(fy, Const(1, 1))
    p_lo = Signal(signed(21), name=f"{name}_plo")
    p_hi = Signal(signed(21), name=f"{name}_phi")
    m.d.comb += [p_lo.eq(x * my[:12]), p_hi.eq(x * my[12:])]
    up = Signal(signed(11), name=f"{name}_up")
    m.d.comb += up.eq(ez + 2 - ey)
    z_zero = (ez == 0) & (fz == 0)
    bad = (ey == 0) | (ey == 255) | (ez == 255) | ((ez == 0) & (fz != 0))
    s1 = carry({"p_lo": p_lo, "p_hi": p_hi, "sy": sy, "up": up,
                "mz": Mux(z_zero, 0, Cat(fz, Const(1, 1))), "sz": sz, "ey": ey, "z": z,
                "x_zero": x == 0, "z_zero": z_zero, "bad": bad})

    # 2: the product (|x * my| < 2**31); z's signed significand; the shift amounts (left
    # by d + 2 up to 34, or right with a sticky bit, at most _MAX_RIGHT); whether z alone
    # is the result.
    product = Signal(signed(33), name=f"{name}_p")
    m.d.comb += product.eq(s1["p_lo"] + (s1["p_hi"] << 12))
    mz = Signal(signed(26), name=f"{name}_mz")
    m.d.comb += mz.eq(Mux(s1["sz"], -s1["mz"], s1["mz"]))
    u = s1["up"]
    left = Signal(range(_Z_ONLY + 2), name=f"{name}_left")
    m.d.comb += left.eq(Mux(u < 0, 0, Mux(u > _Z_ONLY + 1, _Z_ONLY + 1, u)))
    right = Signal(range(_MAX_RIGHT + 1), name=f"{name}_right")
    m.d.comb += right.eq(Mux(u >= 0, 0, Mux(-u > _MAX_RIGHT, _MAX_RIGHT, -u)))
    only_z = s1["x_zero"] | ((u >= _Z_ONLY + 2) & ~s1["z_zero"])
    common = {"ey": s1["ey"], "z": s1["z"], "bad": s1["bad"]}
    s2 = carry({**common, "p": product, "sy": s1["sy"], "szm": mz, "mz": s1["mz"],
                "left": left, "right": right, "rshift": u < 0, "only_z": only_z}, s1)

    # 3: x * y on the grid g (the sign of y applied); z on the grid g, and the sticky bit
    # of what a right shift drops.
    p4 = Signal(signed(36), name=f"{name}_p4")
    m.d.comb += p4.eq(Mux(s2["sy"], -s2["p"], s2["p"]) << 2)
    aligned = Signal(signed(_SUM_BITS), name=f"{name}_al")
    m.d.comb += aligned.eq(Mux(s2["rshift"], s2["szm"] >> s2["right"],
                               s2["szm"] << s2["left"]))
    dropped = Cat(*(s2["right"] > i for i in range(24)))  # ones below the shift
    sticky = Signal(name=f"{name}_sticky")
    m.d.comb += sticky.eq((s2["mz"][:24] & dropped) != 0)
    common = {c: s2[c] for c in ("ey", "z", "bad", "only_z")}
    s3 = carry({**common, "p4": p4, "al": aligned, "sticky": sticky}, s2)

    # 4: the exact sum, in units of g / 2 (the sticky bit is the half).
    total = Signal(signed(_SUM_BITS + 1), name=f"{name}_sum")
    m.d.comb += total.eq(Cat(s3["sticky"], (s3["p4"] + s3["al"])[:_SUM_BITS]))
    common = {c: s3[c] for c in common}
    s4 = carry({**common, "sum": total}, s3)

    # 5: sign and magnitude.
    neg = s4["sum"][-1]
    mag = Signal(unsigned(_SUM_BITS + 1), name=f"{name}_mag")
    m.d.comb += mag.eq(Mux(neg, -s4["sum"], s4["sum"]))
    common = {c: s4[c] for c in common}
    s5 = carry({**common, "neg": neg, "mag": mag}, s4)

    # 6: the bit length n; the value is mag * 2**(ey - 150 - 3), so the biased exponent of
    # its leading one is n - 1 + ey - 153 + 127.
    n = _bit_length(m, s5["mag"], f"{name}_n")
    exp = Signal(signed(11), name=f"{name}_exp")
    m.d.comb += exp.eq(n + s5["ey"] - 27)
    tail = {c: s5[c] for c in ("z", "bad", "only_z", "neg")}
    s6 = carry({**tail, "mag": s5["mag"], "n": n, "exp": exp}, s5)

    # 7: normalized: the leading one at the top bit (a left shift by _SUM_BITS + 1 - n).
    top = _SUM_BITS + 1
    norm = Signal(top, name=f"{name}_norm")
    m.d.comb += norm.eq(s6["mag"] << (top - s6["n"])[:6])
    tail = {c: s6[c] for c in tail}
    s7 = carry({**tail, "norm": norm, "exp": s6["exp"], "zero": s6["n"] == 0}, s6)

    # 8: 24 significant bits, rounded half to even on the guard bit and the sticky rest.
    mant = s7["norm"][top - 24:]
    guard = s7["norm"][top - 25]
    rest = s7["norm"][:top - 25] != 0
    tail = {c: s7[c] for c in tail}
    s8 = carry({**tail, "mant": mant, "inc": guard & (rest | mant[0]), "exp": s7["exp"],
                "zero": s7["zero"]}, s7)

    # 9: the increment (a carry out makes the significand 2**23 of the next binade), the
    # result or z, and the range check.
    rounded = Signal(25, name=f"{name}_rounded")
    m.d.comb += rounded.eq(s8["mant"] + s8["inc"])
    biased = Signal(signed(11), name=f"{name}_biased")
    m.d.comb += biased.eq(s8["exp"] + rounded[24])
    frac = Signal(23, name=f"{name}_frac")
    m.d.comb += frac.eq(Mux(rounded[24], 0, rounded[:23]))
    result = Signal(32, name=f"{name}_result")
    invalid = Signal(name=f"{name}_invalid")
    with m.If(s8["only_z"]):
        m.d.comb += result.eq(s8["z"])
        m.d.comb += invalid.eq(s8["bad"])
    with m.Elif(s8["zero"]):
        m.d.comb += invalid.eq(s8["bad"])
    with m.Else():
        m.d.comb += result.eq(Cat(frac, biased[:8], s8["neg"]))
        m.d.comb += invalid.eq(s8["bad"] | (biased < 1) | (biased > 254))
    s9 = carry({"result": result, "invalid": invalid}, s8)
    assert stage[0] == k + FMA_STAGES
    return s9["result"], s9["invalid"], {key: s9[key] for key in keys}


def to_int8_stages(m, pipe, v, k, extra, name):
    """Add the three stages of ``cvtps2dq`` + saturating packs of ``v`` after stage ``k``.

    Returns ``(value, extra)``; ``value`` is combinational from stage ``k + 2``'s registers
    (the caller registers it as stage ``k + 3``).
    """
    sign, exp, frac = _fields(m, v, name)
    mant = Signal(28, name=f"{name}_m")  # the significand, zeros on top (shifts up to 26)
    m.d.comb += mant.eq(Cat(frac, exp != 0))
    # exp < 150: |v| = mant * 2**(exp - 150) is rounded by a right shift of 150 - exp; any
    # shift of 26 or more gives 0 (|v| < 2**-2), so it is clamped there.
    shift = Signal(range(27), name=f"{name}_shift")
    m.d.comb += shift.eq(Mux(exp >= 150, 0, Mux(exp < 124, 26, 150 - exp)))
    s1 = pipe.carry({**extra, "mant": mant, "shift": shift, "sign": sign, "big": exp >= 150,
                     "huge": exp >= 158}, k + 1)
    q, inc = _shift_parts(m, s1["mant"].as_signed(), s1["shift"], "half_even", name)
    s2 = pipe.carry({**{key: s1[key] for key in extra}, "q": q, "inc": inc,
                     "sign": s1["sign"], "big": s1["big"], "huge": s1["huge"]}, k + 2)
    r = Signal(signed(26), name=f"{name}_int")
    m.d.comb += r.eq(s2["q"] + s2["inc"])
    value = Signal(signed(8), name=f"{name}_value")
    with m.If(s2["huge"]):  # out of int32's range: INT32_MIN, packed to -128
        m.d.comb += value.eq(-128)
    with m.Elif(s2["sign"]):
        m.d.comb += value.eq(Mux(s2["big"] | (r > 128), -128, -r))
    with m.Else():
        m.d.comb += value.eq(Mux(s2["big"] | (r > 127), 127, r))
    return value, {key: s2[key] for key in extra}


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

    With ``mode = 1`` the element is XNNPACK's integer add instead
    (:func:`xnn_stages`; golden model :func:`npugen.sim.models.xnn_add.xnnpack_add_int`),
    with ``mode = 2`` or ``3`` TFLite's integer add, rounded twice or once
    (:func:`tfl_stages`; golden model :func:`npugen.sim.models.tfl_add.tflite_add_int`),
    each computed beside the float path in the same stages; ``invalid`` is then 0. Every
    mode's int8 result is clamped to ``[lo, hi]`` last (a fused activation); ``lo <= hi``
    is required (the instruction decoder refuses others with ``CONST``).

    ``c = int8(fma(a, rac, fma(b, rbc, fixed)))`` (module text); the golden model is
    :func:`npugen.sim.models.qladd.ort_add` with ``kernel="avx2"``, the constants
    :func:`npugen.sim.models.qladd.avx2_constants`.

    Members
    -------
    i : In(stream.Signature(qladd_in_layout()))
        The two elements of each beat.
    c : In(qladd_const_layout())
        The layer's constants. They must be valid when the layer's first beat is offered
        and stay unchanged until its last result has been taken (change them only with the
        pipeline empty): no stage keeps a copy (about 1,000 flip-flops fewer on the ECP5).
    o : Out(stream.Signature(data.StructLayout({"value": signed(8), "invalid": 1})))
        ``invalid``: a constant or an intermediate left the float32 domain the unit handles
        (module text); ``value`` is then undefined.

    Latency :attr:`LATENCY` cycles (an input register, two multiply-adds, the conversion,
    the clamp), one beat per cycle; the stages advance together (``i.ready = ~o.valid |
    o.ready``).
    """

    LATENCY = 1 + 2 * FMA_STAGES + 4

    def __init__(self):
        super().__init__({
            "i": In(stream.Signature(qladd_in_layout())),
            "c": In(qladd_const_layout()),
            "o": Out(stream.Signature(data.StructLayout({"value": signed(8), "invalid": 1}))),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        pipe = LockstepPipeline(m, self.i, self.o, self.LATENCY)
        p = self.i.payload
        k = {name: getattr(self.c, name) for name in qladd_const_layout().members}
        s0 = pipe.carry({"a": p.a, "b": p.b}, 1)
        # mode 1: XNNPACK's integer add, stages 2-7, then carried to the float path's end
        xnn = xnn_stages(m, pipe, s0, k, "xnn")
        for stage in range(8, 1 + FMA_STAGES + 1):
            xnn = pipe.carry(xnn, stage)
        # modes 2, 3: TFLite's integer add, stages 2-14, then carried to stage 21
        tfl = tfl_stages(m, pipe, s0, k, "tfl")
        for stage in range(2 + TFL_STAGES, self.LATENCY - 1):
            tfl = pipe.carry(tfl, stage)
        inner, bad_inner, s1 = fma_stages(m, pipe, s0["b"], k["rbc"], k["fixed"], 1,
                                          {"a": s0["a"]}, "inner")
        stage = 1 + FMA_STAGES
        outer, bad_outer, s2 = fma_stages(m, pipe, s1["a"], k["rac"], inner, stage,
                                          {"flag": bad_inner, "xnn": xnn["value"]}, "outer")
        stage += FMA_STAGES
        value, s3 = to_int8_stages(m, pipe, outer, stage, {"flag": s2["flag"] | bad_outer,
                                                           "xnn": s2["xnn"]}, "cvt")
        mode = k["mode"]
        chosen = Signal(signed(8), name="chosen")
        m.d.comb += chosen.eq(Mux(mode[1], tfl["value"], Mux(mode[0], s3["xnn"], value)))
        stage += 3
        s4 = pipe.carry({"chosen": chosen, "flag": s3["flag"] & (mode == 0)}, stage)
        # The clamp in a stage of its own (after the conversion's carry chain it set Fmax),
        # its two comparisons side by side (lo <= hi).
        chosen, lo, hi = s4["chosen"], k["lo"], k["hi"]
        with m.If(pipe.go):
            m.d.sync += [self.o.payload.value.eq(Mux(chosen < lo, lo,
                                                     Mux(chosen > hi, hi, chosen))),
                         self.o.payload.invalid.eq(s4["flag"])]
        return m
