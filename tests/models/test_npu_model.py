"""The NPU's instruction-level simulator against straightforward loop references.

Each instruction runs on random shapes and data (seeded); the reference is a per-element
Python loop (padding, windows and int32 wraparound written out); every word of every
memory is compared after every instruction. Every error code is provoked, and a failing
instruction writes nothing.
"""

import numpy as np
import pytest

from npugen.rtl.npu.isa import ISA_VERSION, ErrorCode, Op
from npugen.rtl.npu.params import NpuParams, params_hash
from npugen.rtl.systolic.params import SystolicParams
from npugen.sim.compiler.ir import TensorQuant
from npugen.sim.compiler.lower import add_constants
from npugen.sim.formats.program import Program, ProgramError, assemble, header_for, table_words
from npugen.sim.models.npu import NpuModel, NpuState, cycles_of
from npugen.sim.models.qladd import f32_bits, ort_add
from npugen.sim.models.requant import float32_scale, quantize_multiplier, requantize
from npugen.sim.models.xnn_add import xnnpack_add_params

from .tflite_reference import tflite_add_reference

MODES = ("ort", "tflite", "gemmlowp")


def small(lanes=4, **kw):
    sizes = {"act_words": 256, "wgt_words": 1024, "tab_entries": 64, "imem_words": 16,
             "acc_words": 64, **kw}
    return NpuParams(lanes=lanes, systolic=SystolicParams(rows=lanes, cols=lanes), **sizes)


def wrap32(v):
    return ((v + (1 << 31)) % (1 << 32)) - (1 << 31)


def pack(values):
    """Bytes of one scratchpad word, lane 0 lowest (written out, not the model's code)."""
    return sum((int(v) & 0xFF) << (8 * i) for i, v in enumerate(values))


def tensor_words(x, lanes):
    """(h, w, c) int8 tensor -> words, channel groups of ``lanes`` (zeros beyond c)."""
    h, w, c = x.shape
    g = -(-c // lanes)
    words = []
    for y in range(h):
        for xx in range(w):
            for gi in range(g):
                words.append(pack([x[y, xx, ch] if ch < c else 0
                                   for ch in range(gi * lanes, gi * lanes + lanes)]))
    return words


def weight_words(w, lanes):
    """(cout, cin, k, k) weights -> tiles (j, ky, kx, g) of ``lanes`` words.

    Word r of a tile is input lane r; its lane l is output channel j * lanes + l, input
    channel g * lanes + r.
    """
    cout, cin, k, _ = w.shape
    g_in, g_out = -(-cin // lanes), -(-cout // lanes)
    words = []
    for j in range(g_out):
        for ky in range(k):
            for kx in range(k):
                for g in range(g_in):
                    for r in range(lanes):
                        ci = g * lanes + r
                        words.append(pack([w[co, ci, ky, kx] if ci < cin and co < cout else 0
                                           for co in range(j * lanes, j * lanes + lanes)]))
    return words


def random_table(rng, channels, mode):
    entries = []
    for _ in range(channels):
        scale = float(np.float32(2.0 ** rng.uniform(-13, -7)))
        if mode == "ort":
            mult, shift = float32_scale(scale)
        else:
            mult, shift = quantize_multiplier(scale)
        lo = int(rng.integers(-128, 0))
        entries.append({"bias": int(rng.integers(-(1 << 20), 1 << 20)), "multiplier": mult,
                        "shift": shift, "zero_point": int(rng.integers(-20, 20)),
                        "lo": lo, "hi": int(rng.integers(lo, 128))})
    return entries


def requant_ref(mode, acc, e):
    return int(requantize(mode, [wrap32(acc + e["bias"])], e["multiplier"], e["shift"],
                          e["zero_point"], e["lo"], e["hi"])[0])


def conv_ref(x, w, zp, stride, pad_t, pad_l, out_h, out_w, table, mode):
    h, wd, cin = x.shape
    cout, _, k, _ = w.shape
    out = np.zeros((out_h, out_w, cout), dtype=np.int64)
    for oy in range(out_h):
        for ox in range(out_w):
            for co in range(cout):
                acc = 0
                for ky in range(k):
                    for kx in range(k):
                        iy, ix = oy * stride - pad_t + ky, ox * stride - pad_l + kx
                        for ci in range(cin):
                            v = x[iy, ix, ci] if 0 <= iy < h and 0 <= ix < wd else zp
                            acc += int(v) * int(w[co, ci, ky, kx])
                out[oy, ox, co] = requant_ref(mode, wrap32(acc), table[co])
    return out


def out_size(size, k, stride, pad_t, pad_b):
    return (size + pad_t + pad_b - k) // stride + 1


def run_one(model, insn):
    """Run ``HEADER, insn, HALT`` from word 0; return the status."""
    model.write("imem", 0, [header_for(model.p), insn, assemble(Op.HALT)])
    return model.run(0)


@pytest.mark.parametrize("case", range(12))
def test_conv_random(seed, case):
    rng = np.random.default_rng([seed, case])
    lanes = int(rng.choice([1, 2, 4, 8]))
    p = small(lanes=lanes, act_words=1024, wgt_words=4096)
    model = NpuModel(p)
    k = int(rng.integers(1, 4))
    stride = int(rng.integers(1, 3))
    pad_t, pad_l = int(rng.integers(0, k)), int(rng.integers(0, k))
    h, wd = int(rng.integers(k, 7)), int(rng.integers(k, 7))
    cin, cout = int(rng.integers(1, 11)), int(rng.integers(1, 11))
    out_h = out_size(h, k, stride, pad_t, int(rng.integers(0, k)))
    out_w = out_size(wd, k, stride, pad_l, int(rng.integers(0, k)))
    mode = MODES[case % 3]
    x = rng.integers(-128, 128, size=(h, wd, cin))
    w = rng.integers(-128, 128, size=(cout, cin, k, k))
    zp = int(rng.integers(-128, 128))
    table = random_table(rng, cout, mode)
    src, dst, wgt, tab = int(rng.integers(0, 40)), p.act_words + int(rng.integers(0, 40)), \
        int(rng.integers(0, 50)), int(rng.integers(0, 10))
    garbage = rng.integers(-128, 128, size=model.act.shape)
    model.act[:] = garbage
    model.write("act", src, tensor_words(x, lanes))
    model.write("wgt", wgt, weight_words(w, lanes))
    model.write("tab", tab, table_words(table))
    before = model.read("act", 0, 2 * p.act_words)
    status = run_one(model, assemble(
        Op.CONV, engine=0, mode=MODES.index(mode), src=src, dst=dst, wgt=wgt, tab=tab, in_h=h,
        in_w=wd, cin=cin, cout=cout, out_h=out_h, out_w=out_w, kernel=k, stride=stride, pad_t=pad_t,
        pad_l=pad_l, zp_in=zp))
    assert (status.state, status.error) == (NpuState.DONE, ErrorCode.NONE)
    expected = list(before)
    out = tensor_words(conv_ref(x, w, zp, stride, pad_t, pad_l, out_h, out_w, table, mode),
                       lanes)
    expected[dst:dst + len(out)] = out
    assert model.read("act", 0, 2 * p.act_words) == expected
    assert status.retired == 3


def test_fully_connected_is_a_whole_input_kernel(seed):
    """A fully connected layer: kernel = input size, one output pixel, cout outputs."""
    rng = np.random.default_rng(seed)
    p = small(lanes=4)
    model = NpuModel(p)
    x = rng.integers(-128, 128, size=(3, 3, 5))
    w = rng.integers(-128, 128, size=(7, 5, 3, 3))
    table = random_table(rng, 7, "ort")
    model.write("act", 0, tensor_words(x, 4))
    model.write("wgt", 0, weight_words(w, 4))
    model.write("tab", 0, table_words(table))
    run_one(model, assemble(Op.CONV, engine=0, mode=0, src=0, dst=p.act_words, wgt=0, tab=0, in_h=3,
                            in_w=3, cin=5, cout=7, out_h=1, out_w=1, kernel=3, stride=1,
                            pad_t=0, pad_l=0, zp_in=3))
    # No zero-point subtraction in the NPU (the compiler folds it into the bias).
    flat = x.reshape(-1) @ w.transpose(0, 2, 3, 1).reshape(7, -1).T
    expected = [requant_ref("ort", int(a), e) for a, e in zip(flat, table, strict=True)]
    expected = tensor_words(np.array(expected).reshape(1, 1, 7), 4)
    assert model.read("act", p.act_words, 2) == expected


def maxpool_ref(x, k, stride, pad_t, pad_l, out_h, out_w):
    h, wd, c = x.shape
    out = np.zeros((out_h, out_w, c), dtype=np.int64)
    for oy in range(out_h):
        for ox in range(out_w):
            for ch in range(c):
                values = [x[oy * stride - pad_t + ky, ox * stride - pad_l + kx, ch]
                          for ky in range(k) for kx in range(k)
                          if 0 <= oy * stride - pad_t + ky < h
                          and 0 <= ox * stride - pad_l + kx < wd]
                out[oy, ox, ch] = max(values)
    return out


@pytest.mark.parametrize("case", range(8))
def test_maxpool_random(seed, case):
    rng = np.random.default_rng([seed, case, 1])
    lanes = int(rng.choice([1, 3, 4, 8]))
    p = small(lanes=lanes, act_words=1024)
    model = NpuModel(p)
    k, stride = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    pad_t, pad_l = int(rng.integers(0, k)), int(rng.integers(0, k))
    h, wd, c = int(rng.integers(k, 9)), int(rng.integers(k, 9)), int(rng.integers(1, 12))
    out_h = out_size(h, k, stride, pad_t, int(rng.integers(0, k)))
    out_w = out_size(wd, k, stride, pad_l, int(rng.integers(0, k)))
    x = rng.integers(-128, 128, size=(h, wd, c))
    src, dst = p.act_words + 5, 17
    model.write("act", src, tensor_words(x, lanes))
    before = model.read("act", 0, 2 * p.act_words)
    status = run_one(model, assemble(Op.MAXPOOL, src=src, dst=dst, in_h=h, in_w=wd,
                                     channels=c, out_h=out_h, out_w=out_w, kernel=k,
                                     stride=stride, pad_t=pad_t, pad_l=pad_l))
    assert status.state is NpuState.DONE
    out = tensor_words(maxpool_ref(x, k, stride, pad_t, pad_l, out_h, out_w), lanes)
    before[dst:dst + len(out)] = out
    assert model.read("act", 0, 2 * p.act_words) == before


@pytest.mark.parametrize("mode", MODES)
def test_avgpool_random(seed, mode):
    rng = np.random.default_rng([seed, MODES.index(mode), 2])
    p = small(lanes=4)
    model = NpuModel(p)
    h, wd, c = int(rng.integers(1, 8)), int(rng.integers(1, 8)), int(rng.integers(1, 10))
    x = rng.integers(-128, 128, size=(h, wd, c))
    table = random_table(rng, c, mode)
    model.write("act", 3, tensor_words(x, 4))
    model.write("tab", 7, table_words(table))
    status = run_one(model, assemble(Op.AVGPOOL, mode=MODES.index(mode), src=3,
                                     dst=p.act_words, tab=7, in_h=h, in_w=wd, channels=c))
    assert status.state is NpuState.DONE
    sums = [sum(int(x[y, xx, ch]) for y in range(h) for xx in range(wd)) for ch in range(c)]
    expected = np.array([requant_ref(mode, s, e) for s, e in zip(sums, table, strict=True)])
    g = -(-c // 4)
    assert model.read("act", p.act_words, g) == tensor_words(expected.reshape(1, 1, c), 4)


def test_network_conv_pool_fc(seed):
    """Conv 3x3 -> max-pool 2x2 -> fully connected, chained through both banks."""
    rng = np.random.default_rng([seed, 3])
    p = small(lanes=4)
    model = NpuModel(p)
    x = rng.integers(-128, 128, size=(6, 6, 1))
    w1 = rng.integers(-128, 128, size=(6, 1, 3, 3))
    w2 = rng.integers(-128, 128, size=(10, 6, 2, 2))
    t1, t2 = random_table(rng, 6, "ort"), random_table(rng, 10, "ort")
    a = p.act_words
    words1 = weight_words(w1, 4)
    insns = [header_for(p),
             assemble(Op.CONV, engine=0, mode=0, src=0, dst=a, wgt=0, tab=0, in_h=6, in_w=6, cin=1,
                      cout=6, out_h=4, out_w=4, kernel=3, stride=1, pad_t=0, pad_l=0,
                      zp_in=-5),
             assemble(Op.MAXPOOL, src=a, dst=0, in_h=4, in_w=4, channels=6, out_h=2, out_w=2,
                      kernel=2, stride=2, pad_t=0, pad_l=0),
             assemble(Op.CONV, engine=0, mode=0, src=0, dst=a, wgt=len(words1), tab=6, in_h=2,
                      in_w=2, cin=6, cout=10, out_h=1, out_w=1, kernel=2, stride=1, pad_t=0,
                      pad_l=0, zp_in=7),
             assemble(Op.HALT)]
    program = Program(params_hash=params_hash(p), insns=insns, segments=[
        ("act", 0, tensor_words(x, 4)), ("wgt", 0, words1 + weight_words(w2, 4)),
        ("tab", 0, table_words(t1 + t2))])
    program.load_into(model)
    status = model.run(0)
    assert status.state is NpuState.DONE and status.retired == 5
    y1 = conv_ref(x, w1, -5, 1, 0, 0, 4, 4, t1, "ort")
    y2 = maxpool_ref(y1, 2, 1 * 2, 0, 0, 2, 2)
    y3 = conv_ref(y2, w2, 7, 1, 0, 0, 1, 1, t2, "ort")
    assert model.read("act", a, 3) == tensor_words(y3, 4)
    assert model.read("act", 0, 8) == tensor_words(y2, 4)
    assert status.cycles == sum(cycles_of(p, *step) for step in [
        (Op.HEADER, {}), (Op.CONV, {"cout": 6, "cin": 1, "kernel": 3, "out_h": 4, "out_w": 4}),
        (Op.MAXPOOL, {"channels": 6, "out_h": 2, "out_w": 2, "kernel": 2}),
        (Op.CONV, {"cout": 10, "cin": 6, "kernel": 2, "out_h": 1, "out_w": 1}),
        (Op.HALT, {})])
    assert status.busy["systolic"] > 0 and status.busy["pool"] > 0


@pytest.mark.parametrize("kernel", ["avx2", "xnnpack", "gemmlowp", "tflite"])
@pytest.mark.parametrize("lanes", [1, 3, 4])
def test_add_random(seed, lanes, kernel):
    """ADD against each kernel's model (modes 0-3), element by element, random clamps."""
    rng = np.random.default_rng([seed, lanes, 4, len(kernel)])
    # 512 words a bank: a and b (up to 4 x 4 x 8 words each with one lane) and the gap
    # between them must fit one bank (with 256, one draw in 128 ran past it).
    p = small(lanes=lanes, act_words=512)
    model = NpuModel(p)
    model.act[:] = rng.integers(-128, 128, size=model.act.shape)
    h, wd, c = int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 9))
    a = rng.integers(-128, 128, size=(h, wd, c))
    b = rng.integers(-128, 128, size=(h, wd, c))
    sa, sb, sc = (float(np.float32(2.0 ** rng.uniform(-9, 0))) for _ in range(3))
    za, zb, zc = (int(rng.choice([-128, 127, rng.integers(-128, 128)])) for _ in range(3))
    lo, hi = sorted(int(v) for v in rng.integers(-128, 128, 2)) if rng.integers(2) \
        else (-128, 127)
    g = -(-c // lanes)
    src_b = 5 + h * wd * g + int(rng.integers(0, 4))
    model.write("act", 5, tensor_words(a, lanes))
    model.write("act", src_b, tensor_words(b, lanes))
    before = model.read("act", 0, 2 * p.act_words)
    dst = p.act_words + 2
    regions = {"src": 5, "src_b": src_b, "dst": dst, "pixels": h * wd, "channels": c}
    if kernel == "xnnpack":
        sc = max(sc, sa / 200, sb / 200)  # ratios in XNNPACK's range
    insn = assemble(Op.ADD, **regions, **add_constants(
        kernel, TensorQuant(sa, za), TensorQuant(sb, zb), TensorQuant(sc, zc), lo, hi))
    status = run_one(model, insn)
    assert status.state is NpuState.DONE
    expected = np.zeros((h, wd, c), dtype=np.int64)
    for y in range(h):
        for x in range(wd):
            for ch in range(c):
                pair = (a[y, x, ch], b[y, x, ch])
                if kernel == "xnnpack":  # Python ints, XNNPACK's scalar kernel line by line
                    ma, mb, bias, shift = xnnpack_add_params(sa, za, sb, zb, sc, zc)
                    acc = bias + int(pair[0]) * ma + int(pair[1]) * mb
                    v = min(max((acc >> shift) + zc, -128), 127)
                elif kernel == "avx2":
                    v = ort_add("avx2", *pair, sa, za, sb, zb, sc, zc)
                else:  # TFLite's C++ transcribed with Python ints
                    v = tflite_add_reference(int(pair[0]), int(pair[1]), sa, za, sb, zb, sc,
                                             zc, kernel == "tflite")
                expected[y, x, ch] = min(max(int(v), lo), hi)
    out = tensor_words(expected, lanes)
    before[dst:dst + len(out)] = out
    assert model.read("act", 0, 2 * p.act_words) == before


ADD = {"mode": 0, "src": 0, "src_b": 100, "dst": 256, "pixels": 8, "channels": 5,
       "rac": f32_bits(0.75), "rbc": f32_bits(0.5), "fixed": f32_bits(3.0), "shift": 0,
       "zp_out": 0, "shift_b": 0, "shift_out": 0, "zp_a": 0, "zp_b": 0, "lo": -128, "hi": 127}
#: A valid mode-2 ADD (TFLite's reference add): three multipliers in [2**30, 2**31).
TADD = {**ADD, "mode": 2, "rac": 1 << 30, "rbc": (1 << 31) - 1, "fixed": 3 << 29,
        "shift": 31, "shift_b": 0, "shift_out": 17, "zp_a": -128, "zp_b": 127}

GOOD = {"mode": 0, "src": 0, "dst": 256, "wgt": 0, "tab": 0, "in_h": 4, "in_w": 4, "cin": 3,
        "cout": 2, "out_h": 2, "out_w": 2, "kernel": 3, "stride": 1, "pad_t": 0, "pad_l": 0,
        "zp_in": 0, "engine": 0}

BAD = [
    ("opcode", 0xF, ErrorCode.OPCODE),
    ("version", assemble(Op.CONV, version=ISA_VERSION + 1, **GOOD), ErrorCode.VERSION),
    ("halt_version_0", 0, ErrorCode.VERSION),
    ("header_hash", assemble(Op.HEADER, params_hash=1), ErrorCode.PARAMS),
    ("mode", assemble(Op.CONV, **{**GOOD, "mode": 3}), ErrorCode.SHAPE),
    ("zero_cin", assemble(Op.CONV, **{**GOOD, "cin": 0}), ErrorCode.SHAPE),
    ("zero_stride", assemble(Op.CONV, **{**GOOD, "stride": 0}), ErrorCode.SHAPE),
    ("pad_ge_kernel", assemble(Op.CONV, **{**GOOD, "pad_t": 3}), ErrorCode.SHAPE),
    ("window_outside", assemble(Op.CONV, **{**GOOD, "out_h": 5}), ErrorCode.SHAPE),
    ("src_crosses_bank", assemble(Op.CONV, **{**GOOD, "src": 250}), ErrorCode.ADDRESS),
    ("dst_past_end", assemble(Op.CONV, **{**GOOD, "dst": 510}), ErrorCode.ADDRESS),
    ("wgt_past_end", assemble(Op.CONV, **{**GOOD, "wgt": 1024 - 36 + 1}), ErrorCode.ADDRESS),
    ("too_many_pixels", assemble(Op.CONV, **{**GOOD, "in_h": 66, "out_h": 33}),
     ErrorCode.SHAPE),
    ("tab_past_end", assemble(Op.CONV, **{**GOOD, "tab": 63}), ErrorCode.ADDRESS),
    ("same_bank", assemble(Op.CONV, **{**GOOD, "dst": 100}), ErrorCode.BANK),
    ("pool_same_bank", assemble(Op.MAXPOOL, src=0, dst=64, in_h=2, in_w=2, channels=1,
                                out_h=1, out_w=1, kernel=2, stride=1, pad_t=0, pad_l=0),
     ErrorCode.BANK),
    ("avg_zero", assemble(Op.AVGPOOL, mode=0, src=0, dst=256, tab=0, in_h=0, in_w=2,
                          channels=1), ErrorCode.SHAPE),
    ("add_float_as_tflite", assemble(Op.ADD, **{**ADD, "mode": 2}), ErrorCode.CONST),
    ("add_tfl_small_q", assemble(Op.ADD, **{**TADD, "rbc": (1 << 30) - 1}), ErrorCode.CONST),
    ("add_tfl_big_q", assemble(Op.ADD, **{**TADD, "mode": 3, "fixed": 1 << 31}),
     ErrorCode.CONST),
    ("add_clamp_inverted", assemble(Op.ADD, **{**TADD, "lo": 5, "hi": 4}), ErrorCode.CONST),
    ("add_clamp_inverted_ort", assemble(Op.ADD, **{**ADD, "lo": 0, "hi": -1}),
     ErrorCode.CONST),
    ("add_float_as_xnn", assemble(Op.ADD, **{**ADD, "mode": 1}), ErrorCode.CONST),
    ("add_xnn_mult", assemble(Op.ADD, **{**ADD, "mode": 1, "rac": (1 << 21) + 1, "rbc": 5,
                                         "fixed": 0, "shift": 20}), ErrorCode.CONST),
    ("add_xnn_mult_b", assemble(Op.ADD, **{**ADD, "mode": 1, "rac": 5,
                                           "rbc": (1 << 32) - (1 << 21) - 1, "fixed": 0,
                                           "shift": 20}), ErrorCode.CONST),
    ("add_zero", assemble(Op.ADD, **{**ADD, "pixels": 0}), ErrorCode.SHAPE),
    ("add_rac_big", assemble(Op.ADD, **{**ADD, "rac": f32_bits(2.0 ** 24)}), ErrorCode.CONST),
    ("add_rbc_small", assemble(Op.ADD, **{**ADD, "rbc": f32_bits(2.0 ** -65)}), ErrorCode.CONST),
    ("add_fixed_nan", assemble(Op.ADD, **{**ADD, "fixed": f32_bits(np.nan)}), ErrorCode.CONST),
    ("add_fixed_tiny", assemble(Op.ADD, **{**ADD, "fixed": f32_bits(2.0 ** -101)}),
     ErrorCode.CONST),
    ("add_b_past_bank", assemble(Op.ADD, **{**ADD, "src_b": 250}), ErrorCode.ADDRESS),
    ("add_b_other_bank", assemble(Op.ADD, **{**ADD, "src_b": 300, "dst": 150}),
     ErrorCode.BANK),
    ("add_same_bank", assemble(Op.ADD, **{**ADD, "dst": 200}), ErrorCode.BANK),
]


@pytest.mark.parametrize("name,insn,code", BAD, ids=[b[0] for b in BAD])
def test_bad_instruction_stops_and_writes_nothing(seed, name, insn, code):
    rng = np.random.default_rng(seed)
    p = small(lanes=4)
    model = NpuModel(p)
    model.act[:] = rng.integers(-128, 128, size=model.act.shape)
    before = model.read("act", 0, 2 * p.act_words)
    model.write("imem", 0, [header_for(p), assemble(Op.HALT), insn, assemble(Op.HALT)])
    status = model.run(2)
    assert (status.state, status.error, status.pc) == (NpuState.ERROR, code, 2)
    assert model.read("act", 0, 2 * p.act_words) == before
    with pytest.raises(RuntimeError, match="ERROR"):
        model.step()  # sticky: nothing runs until the next start
    status = model.run(0)  # a good program after the error
    assert (status.state, status.error) == (NpuState.DONE, ErrorCode.NONE)


AVG = {"mode": 0, "src": 0, "dst": 256, "tab": 0, "in_h": 3, "in_w": 3, "channels": 4}


@pytest.mark.parametrize("op,fields", [(Op.CONV, GOOD), (Op.ADD, ADD), (Op.AVGPOOL, AVG)],
                         ids=["conv", "add", "avgpool"])
def test_missing_engine(op, fields):
    p = NpuParams(lanes=4, act_words=256, systolic=None, add_units=0, avgpool=False)
    model = NpuModel(p)
    model.write("imem", 0, [header_for(p), assemble(op, **fields)])
    status = model.run(0)
    assert (status.state, status.error, status.pc) == (NpuState.ERROR, ErrorCode.ENGINE, 1)


def test_running_off_the_end():
    p = small()
    model = NpuModel(p)
    model.write("imem", 0, [header_for(p)] * p.imem_words)
    status = model.run(0)
    assert (status.state, status.error, status.pc) == (NpuState.ERROR, ErrorCode.PC,
                                                       p.imem_words)


def test_program_for_another_npu_is_refused_before_anything_runs():
    p, q = small(lanes=4), small(lanes=8)
    program = Program(params_hash=params_hash(q), insns=[header_for(q), assemble(Op.HALT)])
    model = NpuModel(p)
    with pytest.raises(ProgramError, match="params hash"):
        program.load_into(model)
    assert model.read("imem", 0, 2) == [0, 0]
    old = Program(params_hash=params_hash(p), insns=[assemble(Op.HALT)], version=0)
    with pytest.raises(ProgramError, match="ISA version 0"):
        old.load_into(model)
    big = Program(params_hash=params_hash(p), insns=[assemble(Op.HALT)] * (p.imem_words + 1))
    with pytest.raises(ProgramError, match="holds 16"):
        big.load_into(model)


def test_host_access_bounds():
    model = NpuModel(small())
    with pytest.raises(ValueError, match="act words 511..512 outside 0..511"):
        model.write("act", 511, [0, 0])
    with pytest.raises(ValueError, match="memory must be one of"):
        model.read("rom", 0, 1)
