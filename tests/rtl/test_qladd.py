"""The QLinearAdd unit in the Amaranth simulator against the float32 golden models.

:class:`Fma8` against :func:`fma_f32` (exact float32 fused multiply-add by TwoSum and
round-to-odd in float64) on every alignment case, ties, cancellations and the domain
flags; :class:`QLinearAdder` against :func:`ort_add` (the ``avx2`` kernel, which equals
onnxruntime on this machine) on random layers with zero points at their extremes; random
gaps, backpressure and a reset mid-stream; modes 1 (XNNPACK) and 2/3 (TFLite, double and
single rounding, with a fused activation's clamp) against their integer golden models,
interleaved with mode 0. Every output word is compared.
"""

import random

import numpy as np
import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from npugen.rtl.npu.qladd import Fma8, QLinearAdder, qladd_in_layout
from npugen.sim.flow.pysim import recv, reset_mid_stream, send, simulate
from npugen.sim.models.qladd import avx2_constants, f32_bits, fma_f32, ort_add, ort_kernel
from npugen.sim.models.tfl_add import tflite_add_int, tflite_add_params
from npugen.sim.models.xnn_add import MULT_MAX, SHIFT_RANGE, xnnpack_add_int, xnnpack_add_params

MIN_NORMAL = 2.0 ** -126


def _float(bits):
    return np.uint32(bits).view(np.float32)


def _layers(beats):
    """Group a QLinearAdder's beats (elements and constants) into layers of one constant set."""
    layers = []
    for beat in beats:
        beat = {"lo": -128, "hi": 127, **beat}  # no fused activation unless the beat has one
        consts = {k: v for k, v in beat.items() if k not in ("a", "b")}
        pair = {"a": beat["a"], "b": beat["b"]}
        if layers and layers[-1][0] == consts:
            layers[-1][1].append(pair)
        else:
            layers.append((consts, [pair]))
    return layers


def _simulate(dut, beats, seed, idle, stall):
    rng = random.Random(seed)
    got = []
    if not isinstance(dut, QLinearAdder):
        async def producer(ctx):
            await send(ctx, dut.i, beats, rng, idle)

        async def consumer(ctx):
            for payload in await recv(ctx, dut.o, len(beats), rng, stall):
                got.append((int(payload.value), int(payload.invalid)))

        simulate(dut, producer, consumer)
        return got

    # The unit takes a layer's constants on a port of their own, static while its beats are
    # in flight: each layer starts once the previous one has drained.
    async def layer_producer(ctx):
        sent = 0
        for consts, pairs in _layers(beats):
            while len(got) < sent:
                await ctx.tick()
            ctx.set(dut.c, consts)
            await send(ctx, dut.i, pairs, rng, idle)
            sent += len(pairs)

    async def streaming_consumer(ctx):
        for _ in range(100_000):
            if len(got) == len(beats):
                return
            ready = not rng.random() < stall
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                got.append((int(payload.value), int(payload.invalid)))
        raise AssertionError(f"timeout: got {len(got)} of {len(beats)} beats")

    simulate(dut, layer_producer, streaming_consumer)
    return got


class _Fixed(wiring.Component):
    """A QLinearAdder whose constants are tied to one layer's (for the reset test)."""

    def __init__(self, consts):
        self.consts = consts
        super().__init__({"i": In(stream.Signature(qladd_in_layout())),
                          "o": Out(stream.Signature(data.StructLayout(
                              {"value": signed(8), "invalid": 1})))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = unit = QLinearAdder()
        wiring.connect(m, wiring.flipped(self.i), unit.i)
        wiring.connect(m, unit.o, wiring.flipped(self.o))
        m.d.comb += unit.c.eq(unit.c.shape().const(self.consts))
        return m


def _fma_expected(x, y, z):
    """Return ``(result bits or None, invalid)`` that the unit's contract requires."""
    yb, zb = f32_bits(y), f32_bits(z)
    ey, ez, fz = (yb >> 23) & 0xFF, (zb >> 23) & 0xFF, zb & 0x7FFFFF
    bad = ey in (0, 255) or ez == 255 or (ez == 0 and fz)
    if bad:
        return None, 1
    with np.errstate(over="ignore"):
        r = fma_f32(np.int8(x), y, z)
    if not np.isfinite(r) or (r != 0 and abs(float(r)) < MIN_NORMAL):
        return None, 1
    return f32_bits(abs(r) if r == 0 else r), 0


def _check_fma(cases, seed, idle=0.3, stall=0.3):
    beats = [{"x": int(x), "y": f32_bits(y), "z": f32_bits(z)} for x, y, z in cases]
    got = _simulate(Fma8(), beats, seed, idle, stall)
    bad = []
    for (x, y, z), (value, invalid) in zip(cases, got, strict=True):
        want, want_invalid = _fma_expected(x, y, z)
        if want_invalid:
            ok = invalid == 1
        elif invalid:
            # The unit rounds as if the exponent were unbounded, then requires a normal
            # result: just below 2**-126 it may flag what IEEE rounds up to 2**-126.
            ok = abs(float(_float(want))) == MIN_NORMAL
        else:
            ok = value == want or (value & 0x7FFFFFFF) == (want & 0x7FFFFFFF) == 0
        if not ok:
            bad.append((int(x), float(y), float(z), hex(value), invalid,
                        None if want is None else hex(want), want_invalid))
    assert not bad, f"{len(bad)} of {len(cases)} wrong, first: {bad[:5]}"


def _f32(m, e, sign=1):
    """Return ``sign * m * 2**e`` as float32 (``m`` a 24-bit significand)."""
    return np.float32(sign * np.ldexp(float(m), int(e)))


def _mantissa(rng):
    kind = rng.integers(4)
    if kind == 0:
        return int(rng.integers(1 << 23, 1 << 24))
    if kind == 1:
        return (1 << 23) + int(rng.integers(0, 8))
    if kind == 2:
        return (1 << 24) - 1 - int(rng.integers(0, 8))
    return (1 << 23) | (1 << int(rng.integers(0, 23)))


def test_fma_alignment_cases(seed):
    """Every d = ez - ey from -40 to 40, both signs, mantissas with few and many bits."""
    rng = np.random.default_rng(seed)
    cases = []
    for d in range(-40, 41):
        for _ in range(12):
            ey = int(rng.integers(-40, 10))
            x = int(rng.integers(-128, 128)) or 1
            y = _f32(_mantissa(rng), ey - 23, rng.choice([-1, 1]))
            z = _f32(_mantissa(rng), ey + d - 23, rng.choice([-1, 1]))
            cases.append((x, y, z))
    # The edges of the two shortcuts: z alone (d >= 33) next to the largest |x * y| and z a
    # power of two of the other sign; the sticky bit (d = -3, -2) with z's last bit set.
    big = (1 << 24) - 1
    for d in (31, 32, 33, 34):
        for x, zs in ((-128, 1), (127, -1), (-128, -1)):
            cases.append((x, _f32(big, -23), _f32(1 << 23, d - 23, zs)))
    for d in (-4, -3, -2, -1):
        for m in (1 << 23, (1 << 23) + 1, big):
            for x, zs in ((1, -1), (-1, 1), (3, 1), (-128, -1)):
                cases.append((x, _f32(1 << 23, -23), _f32(m, d - 23, zs)))
    _check_fma(cases, seed)


def test_fma_ties_and_cancellation(seed):
    """Sums near zero (z near -x*y): exact zeros, deep cancellation, exact halfway sums."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(300):
        x = int(rng.integers(-128, 128)) or -128
        y = _f32(_mantissa(rng), int(rng.integers(-30, 5)), rng.choice([-1, 1]))
        exact = float(x) * float(y)  # exact in float64 (8 x 24 bits)
        base = float(np.float32(exact))  # x * y rounded
        step = float(np.spacing(np.float32(abs(base))))
        z = rng.choice([-base, -base + step, -base - step, -exact + step / 2,
                        -(exact - base), step / 2 - (exact - base)])
        cases.append((x, y, np.float32(z)))
    # Halfway cases: x * y has more than 24 bits; z = 0 leaves the tie to the rounding.
    for m in ((1 << 23) + 1, (1 << 24) - 1, (1 << 23) + (1 << 22) + 1):
        for x in (3, 5, 127, -128, -3, 96, 65):
            cases.append((x, _f32(m, -23), np.float32(0)))
            cases.append((x, _f32(m, -23), _f32(1 << 23, -30)))
    _check_fma(cases, seed)


def test_fma_special_operands(seed):
    """Zeros (x = 0, z = +-0), the int8 extremes, the float32 range edges and the domain flags."""
    tiny, huge = np.float32(MIN_NORMAL), np.float32(3.0e38)
    sub = np.float32(1e-40)
    inf, nan = np.float32(np.inf), np.float32(np.nan)
    cases = []
    for x in (0, 1, -1, 127, -128):
        for y in (np.float32(1.5), np.float32(-0.1), tiny, huge, np.float32(2.0 ** -100)):
            for z in (np.float32(0), np.float32(-0.0), np.float32(7.25), np.float32(-1e-30),
                      tiny, -huge, np.float32(3.0e37)):
                cases.append((x, y, z))
    for y, z in ((np.float32(0), np.float32(1)), (sub, np.float32(1)), (inf, np.float32(1)),
                 (nan, np.float32(1)), (np.float32(1), sub), (np.float32(1), inf),
                 (np.float32(1), nan), (np.float32(2.0 ** -120), np.float32(2.0 ** -127))):
        cases.append((5, y, z))
    # Results below 2**-126 (flagged), and the smallest normal results (not flagged).
    for x, y, z in ((1, 1.5 * tiny, -tiny), (-1, tiny, np.nextafter(tiny, 1)), (3, tiny, -tiny),
                    (2, tiny, -tiny), (-2, 0.75 * 2 * tiny, tiny), (1, 1.25 * tiny, -tiny)):
        cases.append((x, np.float32(y), np.float32(z)))
    _check_fma(cases, seed, idle=0.0, stall=0.0)


def test_fma_random(seed):
    """Random operands with exponents close enough to interact, under gaps and stalls."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(1500):
        ey = int(rng.integers(-30, 20))
        x = int(rng.integers(-128, 128))
        y = _f32(int(rng.integers(1 << 23, 1 << 24)), ey - 23, rng.choice([-1, 1]))
        z = _f32(int(rng.integers(1 << 23, 1 << 24)), ey + int(rng.integers(-12, 12)) - 23,
                 rng.choice([-1, 1]))
        cases.append((x, y, z))
    _check_fma(cases, seed)


def _layer_beats(rng, n):
    sa, sb, sc = (float(np.float32(rng.choice([rng.uniform(1e-3, 1.0),
                                                2.0 ** int(rng.integers(-8, 3))])))
                  for _ in range(3))
    za, zb, zc = (int(rng.choice([-128, 127, rng.integers(-128, 128)])) for _ in range(3))
    rac, rbc, fixed = avx2_constants(sa, za, sb, zb, sc, zc)
    a = rng.integers(-128, 128, n).astype(np.int8)
    b = rng.integers(-128, 128, n).astype(np.int8)
    want = ort_add("avx2", a, b, sa, za, sb, zb, sc, zc)
    beats = [{"a": int(x), "b": int(y), "rac": f32_bits(rac), "rbc": f32_bits(rbc),
              "fixed": f32_bits(fixed)} for x, y in zip(a, b, strict=True)]
    return beats, [int(v) for v in want], (sa, za, sb, zb, sc, zc)


@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.4)])
def test_qladd_random_layers(seed, idle, stall):
    """Random layers (scales, zero points at -128/127/random), random int8 pairs."""
    rng = np.random.default_rng(seed)
    beats, want, layers = [], [], []
    for _ in range(12):
        b, w, layer = _layer_beats(rng, 120)
        beats += b
        want += w
        layers += [layer] * len(w)
    got = _simulate(QLinearAdder(), beats, seed, idle, stall)
    wrong = [(layers[k], beats[k]["a"], beats[k]["b"], got[k], want[k])
             for k in range(len(want)) if got[k] != (want[k], 0)]
    assert not wrong, f"{len(wrong)} of {len(want)} wrong, first: {wrong[:3]}"


def test_qladd_saturation_and_int32_overflow(seed):
    """Scale ratios that saturate to -128/127, and v beyond int32 (INT32_MIN -> -128)."""
    rng = np.random.default_rng(seed)
    beats, want = [], []
    for sa, sb, sc in ((1.0, 1.0, 1.0 / 64), (2.0 ** 20, 1.0, 1.0 / 4096), (1.0, 1.0, 2.0 ** -30),
                       (3.0, 0.5, 1.0)):
        rac, rbc, fixed = avx2_constants(sa, 0, sb, 0, sc, 0)
        a = np.concatenate([np.arange(-128, 128), rng.integers(-128, 128, 40)]).astype(np.int8)
        b = np.resize(np.arange(127, -129, -1), len(a)).astype(np.int8)
        want += [int(v) for v in ort_add("avx2", a, b, sa, 0, sb, 0, sc, 0)]
        beats += [{"a": int(x), "b": int(y), "rac": f32_bits(rac), "rbc": f32_bits(rbc),
                   "fixed": f32_bits(fixed)} for x, y in zip(a, b, strict=True)]
    got = _simulate(QLinearAdder(), beats, seed, 0.0, 0.0)
    assert [v for v, _ in got] == want
    assert not any(flag for _, flag in got)
    assert -128 in want and 127 in want


def test_qladd_flags_constants_outside_the_domain(seed):
    """A subnormal or infinite constant raises ``invalid``; the stream keeps flowing."""
    good = avx2_constants(0.02, 3, 0.03, -5, 0.04, 1)
    beats = []
    for rac, rbc, fixed in ((good[0], good[1], good[2]), (np.float32(1e-40), *good[1:]),
                            (good[0], np.float32(np.inf), good[2]),
                            (good[0], good[1], np.float32(np.nan)), good):
        beats.append({"a": 17, "b": -9, "rac": f32_bits(rac), "rbc": f32_bits(rbc),
                      "fixed": f32_bits(fixed)})
    got = _simulate(QLinearAdder(), beats, seed, 0.0, 0.0)
    want = int(ort_add("avx2", np.int8(17), np.int8(-9), 0.02, 3, 0.03, -5, 0.04, 1))
    assert [flag for _, flag in got] == [0, 1, 1, 1, 0]
    assert got[0][0] == got[4][0] == want


@pytest.mark.parametrize("mode", [0, 2, 3])
def test_reset_mid_stream(seed, mode):
    """A reset with beats in the pipeline drops them all; the next stream is exact.

    One layer (the constants are tied), mode 0 from random scales or modes 2/3 with edge
    constants (right shifts up to 31: the rounding's registered mask is reset too).
    """
    rng = np.random.default_rng([seed, mode])
    n = QLinearAdder.LATENCY - 1 + 8
    beats, want = _layer_beats(rng, n)[:2] if mode == 0 else _tfl_beats(rng, n, mode, True)
    ((consts, pairs),) = _layers(beats)
    before, after = pairs[:QLinearAdder.LATENCY - 1], pairs[QLinearAdder.LATENCY - 1:]
    got = reset_mid_stream(_Fixed(consts), before, after, QLinearAdder.LATENCY)
    assert [(int(v.value), int(v.invalid)) for v in got] == \
        [(w, 0) for w in want[QLinearAdder.LATENCY - 1:]]


def _onnxruntime_qladd(layer, a, b):
    """Run this machine's onnxruntime ``QLinearAdd`` on int8 vectors ``a``, ``b``."""
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    init = [numpy_helper.from_array(np.array(v, dtype=t), n) for n, v, t in zip(
        ("sa", "za", "sb", "zb", "sc", "zc"), layer,
        (np.float32, np.int8, np.float32, np.int8, np.float32, np.int8), strict=True)]
    node = helper.make_node("QLinearAdd", ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"],
                            ["c"], domain="com.microsoft")
    io = [helper.make_tensor_value_info(n, TensorProto.INT8, [a.size]) for n in "abc"]
    model = helper.make_model(helper.make_graph([node], "qladd", io[:2], io[2:], init),
                              opset_imports=[helper.make_opsetid("", 17),
                                             helper.make_opsetid("com.microsoft", 1)])
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    return session.run(None, {"a": a, "b": b})[0]


@pytest.mark.slow
def test_every_input_pair_against_onnxruntime(seed):
    """All 65,536 (a, b) pairs of a random layer, back to back, against onnxruntime itself."""
    assert ort_kernel() == "avx2", "this machine's onnxruntime runs another QLinearAdd kernel"
    rng = np.random.default_rng(seed)
    layer = (*(v for _ in range(3) for v in (np.float32(10 ** rng.uniform(-3, -1)),
                                              int(rng.integers(-128, 128)))),)
    a = np.repeat(np.arange(-128, 128), 256).astype(np.int8)
    b = np.tile(np.arange(-128, 128), 256).astype(np.int8)
    want = _onnxruntime_qladd(layer, a, b)
    rac, rbc, fixed = avx2_constants(*layer)
    dut = QLinearAdder()
    got = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.c, {"rac": f32_bits(rac), "rbc": f32_bits(rbc), "fixed": f32_bits(fixed),
                        "lo": -128, "hi": 127})
        n = 0
        while len(got) < a.size:
            ctx.set(dut.i.valid, n < a.size)
            if n < a.size:
                ctx.set(dut.i.payload.a, int(a[n]))
                ctx.set(dut.i.payload.b, int(b[n]))
            _, _, valid, value, flag = await ctx.tick().sample(
                dut.o.valid, dut.o.payload.value, dut.o.payload.invalid)
            n += 1
            if valid:
                assert not flag
                got.append(value)

    simulate(dut, bench)
    bad = np.flatnonzero(np.array(got) != want.astype(np.int64))
    assert bad.size == 0, (f"layer {layer}: {bad.size} pairs differ, first (a, b) = "
                           f"{(int(a[bad[0]]), int(b[bad[0]]))}")


def _xnn_beats(rng, n, edge=False):
    """Return a random mode-1 layer: from random scales, or (``edge``) extreme constants."""
    if edge:
        ma, mb = (int(rng.choice([-MULT_MAX, MULT_MAX, rng.integers(-MULT_MAX, MULT_MAX + 1)]))
                  for _ in range(2))
        bias = int(rng.choice([-(1 << 31), (1 << 31) - 1, rng.integers(-(1 << 31), 1 << 31)]))
        shift = int(rng.choice([0, 31, SHIFT_RANGE[0], SHIFT_RANGE[1], rng.integers(0, 32)]))
        zc = int(rng.integers(-128, 128))
    else:
        sa, sb, sc = (np.float32(v) for v in rng.uniform(0.005, 0.1, 3))
        za, zb, zc = (int(rng.choice([-128, 127, rng.integers(-128, 128)])) for _ in range(3))
        ma, mb, bias, shift = xnnpack_add_params(sa, za, sb, zb, sc, zc)
    a = rng.integers(-128, 128, n).astype(np.int8)
    b = rng.integers(-128, 128, n).astype(np.int8)
    want = xnnpack_add_int(a, b, ma, mb, bias, shift, zc)
    u32 = (1 << 32) - 1
    beats = [{"a": int(x), "b": int(y), "rac": ma & u32, "rbc": mb & u32, "fixed": bias & u32,
              "mode": 1, "shift": shift, "zc": zc} for x, y in zip(a, b, strict=True)]
    return beats, [int(v) for v in want]


@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.4)])
def test_xnnpack_mode_interleaved_with_ort(seed, idle, stall):
    """Mode 1 (XNNPACK's integer add) layers, edge constants, and mode-0 layers in between."""
    rng = np.random.default_rng([seed, 1])
    beats, want = [], []
    for k in range(12):
        if k % 3 == 2:
            b, w, _ = _layer_beats(rng, 40)
        else:
            b, w = _xnn_beats(rng, 60, edge=k % 3 == 1)
        beats += b
        want += w
    got = _simulate(QLinearAdder(), beats, seed, idle, stall)
    wrong = [(beats[k], got[k], want[k]) for k in range(len(want)) if got[k] != (want[k], 0)]
    assert not wrong, f"{len(wrong)} of {len(want)} wrong, first: {wrong[:3]}"


def _tfl_beats(rng, n, mode, edge=False):
    """Return a random mode-2/3 layer: from random scales, or (``edge``) extreme constants.

    ``n`` random ``(a, b)`` pairs; the clamp ``[lo, hi]`` is random.
    """
    rounding = {2: "gemmlowp", 3: "tflite"}[mode]
    if edge:
        ma, mb, mo = ((int(rng.choice([1 << 30, (1 << 31) - 1, rng.integers(1 << 30, 1 << 31)])),
                       int(rng.choice([0, 31, rng.integers(0, 32)]))) for _ in range(3))
    else:
        sa, sb, sc = (np.float32(rng.uniform(0.005, 0.1)) for _ in range(3))
        sb = np.float32(sb * rng.choice([1.0, 1e-3, 1e-6]))  # input shifts up to ~20
        ma, mb, mo = tflite_add_params(sa, sb, sc)
    za, zb, zc = (int(rng.choice([-128, 127, rng.integers(-128, 128)])) for _ in range(3))
    lo = int(rng.choice([-128, zc, rng.integers(-128, 128)]))
    hi = int(rng.choice([127, max(lo, min(127, zc + int(rng.integers(0, 40)))), lo]))
    a, b = rng.integers(-128, 128, (2, n))
    want = tflite_add_int(a, b, za, zb, ma, mb, mo, zc, rounding, lo, hi)
    beats = [{"a": int(x), "b": int(y), "rac": ma[0], "rbc": mb[0], "fixed": mo[0],
              "mode": mode, "shift": ma[1], "shift_b": mb[1], "shift_out": mo[1], "za": za,
              "zb": zb, "zc": zc, "lo": lo, "hi": hi} for x, y in zip(a, b, strict=True)]
    return beats, [int(v) for v in want]


@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.4)])
def test_tflite_modes_interleaved(seed, idle, stall):
    """Modes 2 and 3 (random and edge constants, clamps) among mode-0 and mode-1 layers."""
    rng = np.random.default_rng([seed, 2])
    beats, want = [], []
    for k in range(16):
        if k % 4 == 3:
            b, w = _xnn_beats(rng, 30) if k % 8 == 3 else _layer_beats(rng, 30)[:2]
        else:
            edge = k % 4 == 2  # k = 2, 6, 10, 14: modes 2, 3, 2, 3
            b, w = _tfl_beats(rng, 50, 2 + ((k // 4) % 2 if edge else k % 2), edge=edge)
        beats += b
        want += w
    got = _simulate(QLinearAdder(), beats, seed, idle, stall)
    wrong = [(beats[k], got[k], want[k]) for k in range(len(want)) if got[k] != (want[k], 0)]
    assert not wrong, f"{len(wrong)} of {len(want)} wrong, first: {wrong[:3]}"


def test_tflite_modes_on_rounding_ties(seed):
    """Input pairs on which double and single rounding differ: each mode gives its own."""
    rng = np.random.default_rng([seed, 3])
    a, b = (v.ravel() for v in np.meshgrid(np.arange(-128, 128), np.arange(-128, 128)))
    beats, want, found = [], [], 0
    for _ in range(2000):
        sa, sb, sc = (np.float32(v) for v in rng.uniform(0.005, 0.1, 3))
        za, zb, zc = (int(v) for v in rng.integers(-128, 128, 3))
        params = tflite_add_params(sa, sb, sc)
        double, single = (tflite_add_int(a, b, za, zb, *params, zc, r)
                          for r in ("gemmlowp", "tflite"))
        differ = np.flatnonzero(double != single)
        if not len(differ):
            continue
        found += 1
        for mode, result in ((2, double), (3, single)):
            for k in differ[:4]:
                beats.append({"a": int(a[k]), "b": int(b[k]), "rac": params[0][0],
                              "rbc": params[1][0], "fixed": params[2][0], "mode": mode,
                              "shift": params[0][1], "shift_b": params[1][1],
                              "shift_out": params[2][1], "za": za, "zb": zb, "zc": zc})
                want.append(int(result[k]))
        if found == 6:
            break
    print(f"seed {seed}: {found} layers with pairs that the two roundings tell apart")
    assert found >= 2, "too few layers separate the roundings to test them"
    got = _simulate(QLinearAdder(), beats, seed, 0.2, 0.2)
    assert [v for v, _ in got] == want
