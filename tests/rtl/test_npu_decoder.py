"""The NPU's instruction decoder in the Amaranth simulator against the ISA simulator.

Every instruction's error code must be the one :meth:`NpuModel.error_of` gives: directed
cases for each code and seeded random words (fields biased towards the edges of the
checks), under random gaps and backpressure; and reset mid-stream.
"""

import random

import numpy as np
import pytest
from amaranth.hdl import Module, ResetInserter, Signal
from amaranth.sim import Simulator

from npugen.rtl.npu.decoder import Decoder, group_divider
from npugen.rtl.npu.isa import ISA_VERSION, OPCODES, ErrorCode, Op, cfg_words
from npugen.rtl.npu.params import NpuParams, params_hash
from npugen.rtl.sparse.params import SparseParams
from npugen.rtl.systolic.params import SystolicParams
from npugen.rtl.winograd.params import WinogradParams
from npugen.sim.flow.pysim import recv, send
from npugen.sim.formats.program import assemble
from npugen.sim.models.npu import NpuModel
from npugen.sim.models.qladd import f32_bits


def small(lanes=3, **kw):
    sizes = {"act_words": 100, "wgt_words": 300, "tab_entries": 20, "imem_words": 8,
             "acc_words": 10, **kw}
    sparse = SparseParams(n_pe=2, rows_max=30, cols_max=20, entries_max=64, act_width=16,
                          act_lanes=lanes)
    return NpuParams(lanes=lanes, systolic=SystolicParams(rows=lanes, cols=lanes),
                     sparse=sparse, **sizes)


#: ADD constants on both sides of the CONST check's edges, and ones well inside.
EDGE_FLOATS = [f32_bits(v) for v in (2.0 ** -64, np.nextafter(np.float32(2.0 ** -64), 0), 2.0 ** 24,
                                 np.nextafter(np.float32(2.0 ** 24), 0), 0.0, -0.0, 1e-40,
                                 np.inf, np.nan, 2.0 ** -100, 2.0 ** -101, 2.0 ** 64,
                                 np.nextafter(np.float32(2.0 ** 64), 0), -(2.0 ** 64), -3.5)]
GOOD_FLOATS = [f32_bits(v) for v in (0.5, 0.0123, 1.75, -3.25, 0.0)]


def random_word(rng, p):
    """Return a random instruction whose fields sit near the decoder's decision edges."""
    if rng.random() < 0.05:
        return rng.getrandbits(256)
    spec = OPCODES[rng.choice([2, 2, 2, 3, 3, 4, 4, 5, 5, 5, 6, 6, 6, 1, 0])]
    fields = {}
    for f in spec.fields:
        lo, hi = f.range
        if f.name == "params_hash":
            value = params_hash(p) if rng.random() < 0.5 else rng.randint(lo, hi)
        elif f.name in ("rac", "rbc", "fixed"):
            if rng.random() < 0.3:  # mode 1 reads them as integers: |m| <= 2**21
                m = rng.choice([1 << 21, (1 << 21) + 1, rng.randint(0, 1 << 21), 0, 1])
                value = (m if rng.random() < 0.5 else -m) & 0xFFFFFFFF
            else:
                value = rng.choice(EDGE_FLOATS) if rng.random() < 0.3 \
                    else rng.choice(GOOD_FLOATS)
        elif f.name == "pixels":
            value = rng.choice([0, 1, 2, rng.randint(0, 40), rng.randint(lo, hi)])
        elif f.name in ("src", "dst", "src_b"):
            value = rng.choice([0, 1, p.act_words - 5, p.act_words, p.act_words + 3,
                                2 * p.act_words - 2, rng.randint(lo, hi), rng.randint(0, 20)])
        elif f.name in ("wgt", "tab"):
            value = rng.choice([0, 1, rng.randint(0, 20), rng.randint(lo, hi)])
        elif f.name == "beats":
            value = rng.choice([0, 1, 2, rng.randint(0, 300), rng.randint(lo, hi)])
        elif f.name in ("cin", "cout") and spec.op is Op.SPFC:
            value = rng.choice([0, 1, 19, 20, 21, 29, 30, 31, rng.randint(lo, hi)])
        elif f.name == "mode":
            value = rng.choice([0, 1, 2, 3])
        elif f.name == "engine":
            value = rng.choice([0, 0, 1])
        elif f.signed:
            value = rng.randint(lo, hi)
        else:
            value = rng.choice([0, 1, 2, 3, rng.randint(0, 5), rng.randint(lo, hi)])
        fields[f.name] = value
    version = ISA_VERSION if rng.random() < 0.95 else rng.randint(0, 15)
    return assemble(spec.op, version=version, **fields)


def run_decoder(p, words, seed, idle=0.3, stall=0.3):
    dut = Decoder(p)
    rng = random.Random(seed)
    got = []

    async def producer(ctx):
        await send(ctx, dut.i, words, rng, idle)

    async def consumer(ctx):
        for beat in await recv(ctx, dut.o, len(words), rng, stall):
            got.append((beat.op, beat.error))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return got


def check(p, words, got):
    model = NpuModel(p)
    codes = []
    for word, (op, error) in zip(words, got, strict=True):
        assert op == word & 0xF
        assert ErrorCode(error) == model.error_of(word), f"word {word:#x}"
        codes.append(ErrorCode(error))
    return codes


GOOD = {"mode": 0, "src": 0, "dst": 100, "wgt": 0, "tab": 0, "in_h": 4, "in_w": 4, "cin": 3,
        "cout": 2, "out_h": 2, "out_w": 2, "kernel": 3, "stride": 1, "pad_t": 0, "pad_l": 0,
        "zp_in": 0, "engine": 0}


#: A valid ADD for small(): 10 pixels x 4 channels = 20 words each, a and b in bank 0.
ADD = {"mode": 0, "src": 0, "src_b": 40, "dst": 100, "pixels": 10, "channels": 4,
       "rac": f32_bits(0.5), "rbc": f32_bits(0.25), "fixed": f32_bits(-1.5), "shift": 0,
       "zp_out": 0, "shift_b": 0, "shift_out": 0, "zp_a": 0, "zp_b": 0, "lo": -128, "hi": 127}
# mode 1 (XNNPACK): integer multipliers, a bias, a shift
XADD = {**ADD, "mode": 1, "rac": 3 << 18, "rbc": (1 << 32) - 5, "fixed": (1 << 32) - 7,
        "shift": 20, "zp_out": -3}
# modes 2, 3 (TFLite): three multipliers q in [2**30, 2**31), shifts, zero points, a clamp
TADD = {**ADD, "mode": 2, "rac": 1 << 30, "rbc": (1 << 31) - 1, "fixed": 3 << 29, "shift": 31,
        "shift_b": 0, "shift_out": 19, "zp_a": -128, "zp_b": 127, "zp_out": 5, "lo": 0,
        "hi": 100}


#: A valid SPFC for small(): 17 inputs, 7 outputs, 100 configuration beats.
SPFC = {"mode": 2, "src": 0, "dst": 100, "wgt": 0, "beats": 100, "tab": 0, "cin": 17,
        "cout": 7, "zp_in": -128}


def directed(p):
    return [
        assemble(Op.HALT), assemble(Op.HEADER, params_hash=params_hash(p)),
        assemble(Op.CONV, **GOOD), 0xF, 0, assemble(Op.CONV, version=3, **GOOD),
        assemble(Op.HEADER, params_hash=params_hash(p) ^ 1),
        assemble(Op.CONV, **{**GOOD, "mode": 3}), assemble(Op.CONV, **{**GOOD, "cout": 0}),
        assemble(Op.CONV, **{**GOOD, "pad_l": 3}), assemble(Op.CONV, **{**GOOD, "out_w": 3}),
        assemble(Op.CONV, **{**GOOD, "out_w": 3, "pad_l": 1}),
        assemble(Op.CONV, **{**GOOD, "src": 90}), assemble(Op.CONV, **{**GOOD, "dst": 199}),
        assemble(Op.CONV, **{**GOOD, "wgt": 300 - 9 * 3 + 1}),
        assemble(Op.CONV, **{**GOOD, "wgt": 300 - 9 * 3}),
        assemble(Op.CONV, **{**GOOD, "in_h": 11, "out_h": 6}),
        assemble(Op.CONV, **{**GOOD, "in_h": 11, "out_h": 5}),
        assemble(Op.CONV, **{**GOOD, "tab": 19}), assemble(Op.CONV, **{**GOOD, "tab": 18}),
        assemble(Op.CONV, **{**GOOD, "dst": 50}),
        assemble(Op.MAXPOOL, src=150, dst=0, in_h=5, in_w=5, channels=4, out_h=2, out_w=2,
                 kernel=2, stride=2, pad_t=1, pad_l=1),
        assemble(Op.AVGPOOL, mode=1, src=150, dst=99, tab=0, in_h=5, in_w=5, channels=4),
        assemble(Op.AVGPOOL, mode=1, src=150, dst=98, tab=0, in_h=5, in_w=5, channels=4),
        assemble(Op.ADD, **ADD), assemble(Op.ADD, **{**ADD, "mode": 1}),
        assemble(Op.ADD, **{**ADD, "mode": 2}), assemble(Op.ADD, **{**ADD, "mode": 3}),
        assemble(Op.ADD, **XADD),
        assemble(Op.ADD, **TADD), assemble(Op.ADD, **{**TADD, "mode": 3}),
        assemble(Op.ADD, **{**TADD, "rac": (1 << 30) - 1}),
        assemble(Op.ADD, **{**TADD, "rbc": 1 << 31}),
        assemble(Op.ADD, **{**TADD, "mode": 3, "fixed": (1 << 32) - 1}),
        assemble(Op.ADD, **{**TADD, "lo": 101}), assemble(Op.ADD, **{**TADD, "lo": 100}),
        assemble(Op.ADD, **{**XADD, "lo": 3, "hi": -3}),
        assemble(Op.ADD, **{**XADD, "rac": 1 << 21}),
        assemble(Op.ADD, **{**XADD, "rac": (1 << 21) + 1}),
        assemble(Op.ADD, **{**XADD, "rbc": (1 << 32) - (1 << 21)}),
        assemble(Op.ADD, **{**XADD, "rbc": (1 << 32) - (1 << 21) - 1}),
        assemble(Op.ADD, **{**XADD, "shift": 11}), assemble(Op.ADD, **{**XADD, "shift": 12}),
        assemble(Op.ADD, **{**XADD, "shift": 30}), assemble(Op.ADD, **{**XADD, "shift": 31}),
        assemble(Op.ADD, **{**ADD, "pixels": 0}), assemble(Op.ADD, **{**ADD, "channels": 0}),
        assemble(Op.ADD, **{**ADD, "rac": f32_bits(2.0 ** 24)}),
        assemble(Op.ADD, **{**ADD, "rbc": f32_bits(2.0 ** -65)}),
        assemble(Op.ADD, **{**ADD, "fixed": f32_bits(-(2.0 ** -101))}),
        assemble(Op.ADD, **{**ADD, "fixed": f32_bits(-0.0)}),
        assemble(Op.ADD, **{**ADD, "src_b": 81}), assemble(Op.ADD, **{**ADD, "src_b": 80}),
        assemble(Op.ADD, **{**ADD, "src_b": 150}), assemble(Op.ADD, **{**ADD, "dst": 60}),
        assemble(Op.ADD, **{**ADD, "dst": 181}),
        assemble(Op.SPFC, **SPFC), assemble(Op.SPFC, **{**SPFC, "mode": 3}),
        assemble(Op.SPFC, **{**SPFC, "beats": 0}), assemble(Op.SPFC, **{**SPFC, "cin": 0}),
        assemble(Op.SPFC, **{**SPFC, "cin": 21}), assemble(Op.SPFC, **{**SPFC, "cout": 31}),
        assemble(Op.SPFC, **{**SPFC, "cin": 20, "cout": 30}),
        assemble(Op.SPFC, **{**SPFC, "wgt": 300 - 100 * cfg_words(p.lanes)}),
        assemble(Op.SPFC, **{**SPFC, "wgt": 301 - 100 * cfg_words(p.lanes)}),
        assemble(Op.SPFC, **{**SPFC, "tab": 20 - 7}), assemble(Op.SPFC, **{**SPFC, "tab": 14}),
        assemble(Op.SPFC, **{**SPFC, "src": 99}), assemble(Op.SPFC, **{**SPFC, "dst": 50}),
        assemble(Op.SPFC, **{**SPFC, "dst": 198}),
        # Starts whose low bits are in range (the checker's narrow sums need the high
        # bits' own check), and sizes far beyond every memory (capped).
        assemble(Op.CONV, **{**GOOD, "src": 1 << p.act_addr_bits}),
        assemble(Op.CONV, **{**GOOD, "dst": (1 << p.act_addr_bits) + 100}),
        assemble(Op.CONV, **{**GOOD, "wgt": 1 << p.wgt_words.bit_length()}),
        assemble(Op.ADD, **{**ADD, "src_b": (1 << p.act_addr_bits) + 40}),
        assemble(Op.SPFC, **{**SPFC, "wgt": 0xFFFF}),
        assemble(Op.ADD, **{**ADD, "pixels": 0xFFFF}),
        assemble(Op.SPFC, **{**SPFC, "beats": 0xFFFF}),
        assemble(Op.MAXPOOL, src=0, dst=100, in_h=255, in_w=255, channels=1023, out_h=1,
                 out_w=1, kernel=1, stride=1, pad_t=0, pad_l=0),
        assemble(Op.CONV, **{**GOOD, "in_h": 255, "in_w": 255, "cin": 1023, "cout": 1023,
                             "out_h": 1, "out_w": 1, "kernel": 15}),
        assemble(Op.CONV, **{**GOOD, "in_h": 255, "in_w": 255, "out_h": 255, "out_w": 255,
                             "kernel": 1}),
    ]


@pytest.mark.parametrize("serial", [False, True], ids=["products", "serial_setup"])
def test_directed_cases_cover_every_code(seed, serial):
    p = small(serial_setup=serial)
    words = directed(p)
    codes = check(p, words, run_decoder(p, words, seed))
    # ENGINE: test_missing_engine; PC and SPARSE are found while running, not decoding.
    assert set(codes) == set(ErrorCode) - {ErrorCode.ENGINE, ErrorCode.PC, ErrorCode.SPARSE}


@pytest.mark.parametrize("avgpool", [True, False])
def test_missing_engine(seed, avgpool):
    p = NpuParams(lanes=4, act_words=100, systolic=None, add_units=0, avgpool=avgpool)
    words = [assemble(Op.CONV, **GOOD), assemble(Op.MAXPOOL, src=150, dst=0, in_h=5, in_w=5,
                                                 channels=4, out_h=2, out_w=2, kernel=2,
                                                 stride=2, pad_t=1, pad_l=1),
             assemble(Op.ADD, **ADD), assemble(Op.SPFC, **SPFC),
             assemble(Op.AVGPOOL, mode=0, src=0, dst=100, tab=0, in_h=3, in_w=3, channels=4)]
    codes = check(p, words, run_decoder(p, words, seed))
    assert codes == [ErrorCode.ENGINE, ErrorCode.NONE, ErrorCode.ENGINE, ErrorCode.ENGINE,
                     ErrorCode.NONE if avgpool else ErrorCode.ENGINE]


@pytest.mark.parametrize("serial", [False, True], ids=["products", "serial_setup"])
def test_winograd_rules(seed, serial):
    """CONV with engine 1: ENGINE without the engine; SHAPE unless 3x3, stride 1, channels fit."""
    wg = {"engine": 1, "kernel": 3, "stride": 1, "in_h": 4, "in_w": 4, "out_h": 2,
          "out_w": 2}
    words = [assemble(Op.CONV, **{**GOOD, **wg, **bad}) for bad in (
        {}, {"kernel": 2, "out_h": 3, "out_w": 3}, {"stride": 2, "out_h": 1, "out_w": 1},
        {"cin": 4}, {"cout": 6}, {"cin": 3, "cout": 5}, {"mode": 3}, {"src": 90},
        # more output pixels than acc_words (10): only the array's limit
        {"in_h": 4, "in_w": 4, "out_h": 4, "out_w": 4, "pad_t": 1, "pad_l": 1, "dst": 180,
         "cout": 1})]
    for p, expect in (
            (small(serial_setup=serial), [ErrorCode.ENGINE] * 9),
            (small(serial_setup=serial, winograd=WinogradParams(c_max=3, k_max=5)),
             [ErrorCode.NONE] + [ErrorCode.SHAPE] * 4 + [ErrorCode.NONE, ErrorCode.SHAPE,
                                                         ErrorCode.ADDRESS, ErrorCode.NONE])):
        assert check(p, words, run_decoder(p, words, seed)) == expect


@pytest.mark.parametrize("serial", [False, True], ids=["products", "serial_setup"])
def test_ort_only_modes(seed, serial):
    """``requant_ort_only``: CONV, AVGPOOL and SPFC in mode 1 or 2 stop with ENGINE."""
    p = small(serial_setup=serial, requant_ort_only=True)
    avg = {"src": 150, "dst": 98, "tab": 0, "in_h": 5, "in_w": 5, "channels": 4}
    words = [assemble(Op.CONV, **{**GOOD, "mode": mode}) for mode in range(4)] + \
        [assemble(Op.AVGPOOL, mode=mode, **avg) for mode in range(4)] + \
        [assemble(Op.SPFC, **{**SPFC, "mode": mode}) for mode in range(4)] + \
        [assemble(Op.CONV, **{**GOOD, "mode": 1, "cout": 0}), assemble(Op.ADD, **TADD)]
    codes = check(p, words, run_decoder(p, words, seed))
    lack = [ErrorCode.NONE, ErrorCode.ENGINE, ErrorCode.ENGINE, ErrorCode.SHAPE]
    assert codes == lack * 3 + [ErrorCode.ENGINE, ErrorCode.NONE]


SMALL_FPGA = {"pool_on_array": True, "array_broadcast": True, "requant_ort_only": True}
#: A Winograd engine that holds fewer channels than the random words ask for, often.
WINOGRAD = {"winograd": WinogradParams(c_max=3, k_max=5)}


@pytest.mark.parametrize(("lanes", "serial", "extra"),
                         [(1, False, {}), (3, False, {}), (8, False, {}), (2, True, {}),
                          (3, True, {}), (4, True, {}), (4, True, SMALL_FPGA),
                          (4, False, WINOGRAD), (2, True, WINOGRAD)],
                         ids=["1", "3", "8", "2-serial", "3-serial", "4-serial", "4-small",
                              "4-winograd", "2-serial-winograd"])
def test_random_words_match_the_simulator(seed, lanes, serial, extra):
    """Random words against the simulator's checks, every word's code compared.

    Also with ``serial_setup`` (at 3 lanes the product by ``lanes`` is a serial step too,
    at 2 lanes the one by the sparse engine's words per beat), and with the small-FPGA
    options that change the checks (MAXPOOL's pixels, the rounding modes).
    """
    p = small(lanes=lanes, act_words=64 * lanes, serial_setup=serial, **extra)
    rng = random.Random(f"{seed}-{lanes}")
    words = [random_word(rng, p) for _ in range(300)]
    codes = check(p, words, run_decoder(p, words, seed))
    counts = {code.name: codes.count(code) for code in set(codes)}
    print(f"seed {seed} lanes {lanes}: {counts}")
    # About 9.5% of random words are valid: at least 5 of 300 fails about once in 10^9.
    assert len(counts) >= 6 and counts.get("NONE", 0) >= 5


@pytest.mark.parametrize("lanes", range(1, 65))
def test_group_divider_is_exact(lanes):
    multiplier, shift = group_divider(lanes, 10)
    for c in range(1024):
        assert ((c + lanes - 1) * multiplier) >> shift == -(-c // lanes)


def test_reset_mid_stream(seed):
    """Words in flight when reset rises are dropped; the words after it decode correctly."""
    p = small()
    dut = Decoder(p)
    rst = Signal()
    top = Module()
    top.submodules.dut = ResetInserter(rst)(dut)
    words = directed(p)
    rng = random.Random(seed)
    got = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        for word in words[:3]:  # fill the pipeline, nothing taken
            ctx.set(dut.i.payload, word)
            ctx.set(dut.i.valid, 1)
            await ctx.tick()
        ctx.set(dut.i.valid, 0)
        ctx.set(rst, 1)
        await ctx.tick()
        ctx.set(rst, 0)
        assert not ctx.get(dut.o.valid)
        rest = words[3:]

        async def producer():
            await send(ctx, dut.i, rest, rng, 0.2)
        await producer()

    async def consumer(ctx):
        await ctx.tick().repeat(6)
        for beat in await recv(ctx, dut.o, len(words) - 3, rng, 0.2):
            got.append((beat.op, beat.error))

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_testbench(consumer)
    sim.run()
    check(p, words[3:], got)
