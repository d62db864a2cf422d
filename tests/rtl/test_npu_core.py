"""The whole NPU in the Amaranth simulator against the instruction-level simulator.

Programs go in through the command port (random gaps on ``i``, random backpressure on
``o``); after the program both activation banks are read back and compared word for word
with :class:`NpuModel`, and so are the status fields. Bad programs, refused host commands,
ABORT and reset mid-program are covered too.
"""

import random

import numpy as np
import pytest
from amaranth.hdl import Module, ResetInserter, Signal
from amaranth.sim import Simulator

from npugen.rtl.npu.core import Npu
from npugen.rtl.npu.isa import INSN_BITS, TABLE_ENTRY, ErrorCode, Op
from npugen.rtl.npu.params import NpuParams, params_hash
from npugen.rtl.npu.protocol import HostError
from npugen.rtl.npu.qladd import QLinearAdder
from npugen.rtl.sparse.params import SparseParams
from npugen.rtl.sparse.ports import CfgOp
from npugen.rtl.systolic.params import SystolicParams
from npugen.sim.compiler.ir import TensorQuant
from npugen.sim.compiler.lower import ADD_KERNELS, add_constants
from npugen.sim.flow.pysim import recv, send
from npugen.sim.formats.compress import encode
from npugen.sim.formats.program import (
    Program,
    assemble,
    cfg_beat_words,
    disassemble,
    header_for,
    table_words,
    tensor_words,
    weight_words,
)
from npugen.sim.formats.sparse import load_program
from npugen.sim.host import npu as host
from npugen.sim.models.npu import ADD_LATENCY, NpuModel, NpuState, insn_cycles
from npugen.sim.models.qladd import f32_bits
from npugen.sim.models.requant import float32_scale, quantize_multiplier

MODES = ("ort", "tflite", "gemmlowp")


def small(lanes=2, **kw):
    sizes = {"act_words": 48, "wgt_words": 160, "tab_entries": 16, "imem_words": 8,
             "acc_words": 20, **kw}
    return NpuParams(lanes=lanes, systolic=SystolicParams(rows=lanes, cols=lanes), **sizes)


def random_table(rng, channels, mode):
    entries = []
    for _ in range(channels):
        scale = float(np.float32(2.0 ** rng.uniform(-13, -6)))
        mult, shift = float32_scale(scale) if mode == "ort" else quantize_multiplier(scale)
        lo = int(rng.integers(-128, 0))
        entries.append({"bias": int(rng.integers(-(1 << 16), 1 << 16)), "multiplier": mult,
                        "shift": shift, "zero_point": int(rng.integers(-20, 20)), "lo": lo,
                        "hi": int(rng.integers(lo, 128))})
    return entries


class Bench:
    """Drives an :class:`Npu` (optionally under a reset input) through its command port."""

    def __init__(self, p, seed, idle=0.2, stall=0.2):
        self.p = p
        self.dut = Npu(p)
        self.rst = Signal()
        self.top = Module()
        self.top.submodules.npu = ResetInserter(self.rst)(self.dut)
        self.rng = random.Random(seed)
        self.idle, self.stall = idle, stall

    async def send(self, ctx, words):
        await send(ctx, self.dut.i, words, self.rng, self.idle)

    async def recv(self, ctx, count):
        return [int(v) for v in await recv(ctx, self.dut.o, count, self.rng, self.stall)]

    async def status(self, ctx):
        await self.send(ctx, host.status())
        return host.status_of(await self.recv(ctx, host.STATUS_WORDS))

    async def read(self, ctx, memory, address, count):
        await self.send(ctx, host.read(memory, address, count))
        replies = await self.recv(ctx, host.read_reply_words(memory, count, self.p.lanes))
        return host.unpack(memory, replies, self.p.lanes)

    async def run(self, ctx, start=0, limit=200):
        await self.send(ctx, host.start(start))
        for _ in range(limit):
            st = await self.status(ctx)
            if st["state"] is not NpuState.RUNNING:
                return st
            await ctx.tick().repeat(20)
        raise AssertionError("the program did not stop")

    def simulate(self, bench):
        sim = Simulator(self.top)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        sim.add_process(self.watch_disjoint)
        sim.run()
        assert not self.collisions, f"a read met a write of its address: {self.collisions[:3]}"

    async def watch_disjoint(self, ctx):
        """Record each cycle in which a ``disjoint_memory`` reads the address it writes.

        The RTL promises this never happens, so that the block RAMs need no
        read-during-write logic.
        """
        self.collisions = []
        pairs = [(mem, rd, wr) for mem in self.dut.disjoint + [
            m for part in self.dut.disjoint_parts for m in part.disjoint]
            for rd in mem.read_ports for wr in mem.write_ports]
        assert pairs
        signals = [s for _, rd, wr in pairs for s in (rd.en, rd.addr, wr.en, wr.addr)]
        async for _, _, *values in ctx.tick().sample(*signals):
            for k, (mem, _, _) in enumerate(pairs):
                r_en, r_addr, w_en, w_addr = values[4 * k:4 * k + 4]
                if r_en and w_en and r_addr == w_addr:
                    self.collisions.append((f"memory of {mem.depth} x {mem.shape}", r_addr))


def check_program(p, program, seed, act=None):
    """Run ``program`` on the RTL and the simulator; compare status and both banks."""
    model = NpuModel(p)
    if act is not None:
        model.write("act", 0, act)
    program.load_into(model)
    expected = model.run(0)
    bench = Bench(p, seed)
    result = {}

    async def testbench(ctx):
        if act is not None:
            await bench.send(ctx, host.write("act", 0, act, p.lanes))
        await bench.send(ctx, host.load_program(program, p.lanes))
        result["status"] = await bench.run(ctx)
        result["act"] = await bench.read(ctx, "act", 0, 2 * p.act_words)

    bench.simulate(testbench)
    # the manifest's per-instruction overhead is the simulator's (serial_setup included)
    overhead = bench.dut.manifest_info()["latency"]["instruction_overhead_cycles"]
    assert overhead == insn_cycles(p)
    st = result["status"]
    assert (st["state"], st["error"], st["pc"]) == (expected.state, expected.error,
                                                    expected.pc)
    assert st["retired"] == expected.retired and st["params_hash"] == params_hash(p)
    assert result["act"] == model.read("act", 0, 2 * p.act_words)
    if st["state"] is NpuState.DONE:  # the cycle model within 5%
        assert abs(expected.cycles - st["cycles"]) <= 0.05 * st["cycles"], \
            (expected.cycles, st["cycles"])
    return st, expected


def conv_program(p, rng, *, k, stride, pad, h, w, cin, cout, mode, engine=0):
    out_h = (h + 2 * pad - k) // stride + 1
    out_w = (w + 2 * pad - k) // stride + 1
    x = rng.integers(-128, 128, size=(h, w, cin))
    weights = rng.integers(-128, 128, size=(cout, cin, k, k))
    table = random_table(rng, cout, mode)
    insn = assemble(Op.CONV, mode=MODES.index(mode), src=3, dst=p.act_words + 1, wgt=5, tab=2,
                    in_h=h, in_w=w, cin=cin, cout=cout, out_h=out_h, out_w=out_w, kernel=k,
                    stride=stride, pad_t=pad, pad_l=pad, zp_in=int(rng.integers(-128, 128)),
                    engine=engine)
    return Program(params_hash=params_hash(p), insns=[header_for(p), insn, assemble(Op.HALT)],
                   segments=[("act", 3, tensor_words(x, p.lanes)),
                             ("wgt", 5, weight_words(weights, p.lanes)),
                             ("tab", 2, table_words(table))])


def _case(k, stride, pad, h, w, cin, cout, mode):
    return {"k": k, "stride": stride, "pad": pad, "h": h, "w": w, "cin": cin, "cout": cout,
            "mode": mode}


CONV_CASES = [
    _case(3, 1, 1, 4, 4, 3, 3, "ort"),
    _case(3, 2, 1, 5, 4, 2, 4, "tflite"),
    _case(1, 1, 0, 3, 3, 4, 1, "gemmlowp"),
    _case(2, 1, 0, 2, 2, 5, 3, "ort"),  # fully connected: one output pixel
]


@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv(seed, case):
    p = small()
    rng = np.random.default_rng([seed, case])
    st, expected = check_program(p, conv_program(p, rng, **CONV_CASES[case]), seed)
    assert st["state"] is NpuState.DONE
    assert st["cycles"] == expected.cycles  # the CONV cycle model is exact
    print(f"cycles: RTL {st['cycles']}, model {expected.cycles}; busy systolic "
          f"{st['busy_systolic']}")


@pytest.mark.parametrize("lanes,requant_lanes,serial", [(4, 0, False), (3, 1, False),
                                                         (4, 2, False), (4, 1, True),
                                                         (3, 3, True), (2, 1, True)])
def test_conv_lanes_and_requant_units(seed, lanes, requant_lanes, serial):
    """Wider words; fewer requantization units than lanes (a word over several cycles).

    Also the small-FPGA options: serial requantizers (a part every
    ``SerialRequantizer.INTERVAL`` cycles), the set-up products on one shift-add
    multiplier (``serial_setup``; lanes 3: a product by ``lanes`` more) and the
    row-broadcast array (``array_broadcast``).
    """
    p = small(lanes=lanes, requant_lanes=requant_lanes, requant_serial=serial,
              serial_setup=serial, array_broadcast=serial, act_words=64, wgt_words=400)
    rng = np.random.default_rng([seed, 9])
    program = conv_program(p, rng, k=3, stride=1, pad=1, h=4, w=3, cin=6, cout=5, mode="ort")
    st, expected = check_program(p, program, seed)
    assert st["state"] is NpuState.DONE
    assert st["cycles"] == expected.cycles


@pytest.mark.parametrize("compact", [False, True], ids=["serial", "compact"])
@pytest.mark.parametrize("lanes,requant_lanes,cin,cout", [(4, 1, 6, 5), (2, 2, 3, 3),
                                                          (4, 1, 4, 12)])
def test_conv_ort_only(seed, lanes, requant_lanes, cin, cout, compact):
    """``requant_ort_only`` with serial units: exact in data and cycles (22 per value).

    The UP5K build's options; the last case's 1x1 layer makes the units the bottleneck
    (the model's ``wait``). A CONV in another mode stops with ENGINE (the directed decoder
    tests check each op and mode). ``compact``: the compact units (34 cycles per value).
    """
    p = small(lanes=lanes, requant_lanes=requant_lanes, requant_serial=True,
              requant_ort_only=True, requant_compact=compact, serial_setup=True,
              array_broadcast=True, pool_on_array=True, act_words=64, wgt_words=400)
    rng = np.random.default_rng([seed, 17, lanes])
    k, pad, h, w = (3, 1, 4, 3) if cout < 12 else (1, 0, 1, 2)
    program = conv_program(p, rng, k=k, stride=1, pad=pad, h=h, w=w, cin=cin, cout=cout,
                           mode="ort")
    st, expected = check_program(p, program, seed)
    assert st["state"] is NpuState.DONE
    assert st["cycles"] == expected.cycles
    other = conv_program(p, rng, k=1, stride=1, pad=0, h=1, w=2, cin=2, cout=2,
                         mode="gemmlowp")
    st, _ = check_program(p, other, seed)
    assert (st["state"], st["error"], st["pc"]) == (NpuState.ERROR, ErrorCode.ENGINE, 1)


@pytest.mark.parametrize("lanes,requant_lanes,cin,cout", [(3, 3, 2, 7), (3, 1, 2, 7),
                                                          (4, 1, 4, 12), (4, 2, 4, 12)])
def test_conv_serial_short_columns(seed, lanes, requant_lanes, cin, cout):
    """1x1 layers of few pixels on serial requantizers, exact in data and cycles.

    Each output-channel group's first part waits for the units, still busy with the group
    before (the cycle model's ``wait``).
    """
    # (with one unit also the row-broadcast array: its shorter drain, the same wait)
    p = small(lanes=lanes, requant_lanes=requant_lanes, requant_serial=True, act_words=64,
              wgt_words=400, array_broadcast=requant_lanes == 1)
    rng = np.random.default_rng([seed, 13, lanes, requant_lanes])
    program = conv_program(p, rng, k=1, stride=1, pad=0, h=1, w=2, cin=cin, cout=cout,
                           mode="gemmlowp")
    st, expected = check_program(p, program, seed)
    assert st["state"] is NpuState.DONE
    assert st["cycles"] == expected.cycles


@pytest.mark.parametrize("lanes,shape", [(4, (2, 1, 0, 2, 3, 6, 5)), (1, (2, 1, 0, 2, 2, 3, 2)),
                                         (3, (1, 1, 0, 1, 2, 4, 4))],
                         ids=["4lanes-P2", "1lane-P1", "3lanes-P2"])
def test_conv_short_tiles(seed, lanes, shape):
    """Output maps shorter than a weight tile's load (``P < ws_min_tile_vectors``).

    Each tile then waits for its weights, and a pixel's next result arrives the fewest
    cycles after its last one (3 at one lane): the accumulate-after-the-array path with the
    least slack, exact in data and in cycles.
    """
    k, stride, pad, h, w, cin, cout = shape
    p = small(lanes=lanes, act_words=64, wgt_words=400)
    rng = np.random.default_rng([seed, 11, lanes])
    program = conv_program(p, rng, k=k, stride=stride, pad=pad, h=h, w=w, cin=cin, cout=cout,
                           mode="ort")
    st, expected = check_program(p, program, seed)
    assert st["state"] is NpuState.DONE
    assert st["cycles"] == expected.cycles


@pytest.mark.parametrize("lanes,requant_lanes,serial,on_array",
                         [(2, 0, False, False), (2, 0, True, False), (4, 1, True, False),
                          (4, 1, True, True), (2, 0, True, True)],
                         ids=["pipelined", "serial", "serial-4parts", "on-array",
                              "on-array-2"])
def test_pools(seed, lanes, requant_lanes, serial, on_array):
    """MAXPOOL (padding, stride) and AVGPOOL; MAXPOOL also on the CONV unit."""
    p = small(lanes=lanes, requant_lanes=requant_lanes, requant_serial=serial,
              serial_setup=serial, array_broadcast=serial, pool_on_array=on_array)
    rng = np.random.default_rng([seed, 20])
    x = rng.integers(-128, 128, size=(5, 4, 3))
    table = random_table(rng, 3, "tflite")
    a = p.act_words
    insns = [header_for(p),
             assemble(Op.MAXPOOL, src=0, dst=a, in_h=5, in_w=4, channels=3, out_h=3, out_w=2,
                      kernel=3, stride=2, pad_t=1, pad_l=1),
             assemble(Op.AVGPOOL, mode=1, src=0, dst=a + 20, tab=1, in_h=5, in_w=4,
                      channels=3),
             assemble(Op.HALT)]
    program = Program(params_hash=params_hash(p), insns=insns,
                      segments=[("tab", 1, table_words(table))])
    st, _ = check_program(p, program, seed, act=tensor_words(x, lanes))
    assert st["state"] is NpuState.DONE and st["busy_pool"] > 0


#: MAXPOOL shapes: in_h, in_w, channels, out_h, out_w, kernel, stride, pad_t, pad_l.
POOL_SHAPES = [(5, 4, 3, 3, 2, 3, 2, 1, 1), (6, 6, 8, 3, 3, 2, 2, 0, 0),
               (4, 5, 2, 4, 5, 1, 1, 0, 0), (3, 3, 5, 1, 1, 3, 1, 0, 0),
               (7, 7, 3, 4, 4, 3, 2, 1, 1), (2, 2, 2, 1, 1, 2, 1, 0, 0)]


def maxpool_alone(p, seed, shape, x):
    """Run one MAXPOOL of ``POOL_SHAPES[shape]`` on ``x`` (RTL against the simulator).

    Checks every word, a clean stop and the cycle model exact; returns the status.
    """
    h, w, c, oh, ow, k, stride, pad_t, pad_l = POOL_SHAPES[shape]
    insn = assemble(Op.MAXPOOL, src=0, dst=p.act_words + 3, in_h=h, in_w=w, channels=c,
                    out_h=oh, out_w=ow, kernel=k, stride=stride, pad_t=pad_t, pad_l=pad_l)
    program = Program(params_hash=params_hash(p), insns=[header_for(p), insn,
                                                         assemble(Op.HALT)])
    st, expected = check_program(p, program, seed, act=tensor_words(x, p.lanes))
    assert st["state"] is NpuState.DONE
    assert st["cycles"] == expected.cycles
    return st


@pytest.mark.parametrize("lanes", [4, 2])
@pytest.mark.parametrize("shape", range(len(POOL_SHAPES)))
def test_maxpool_on_array(seed, lanes, shape):
    """MAXPOOL on the CONV unit (``pool_on_array``): every word, and the cycle model exact.

    Shapes with padding, strides, several channel groups and channels beyond a multiple of
    lanes; the third has exactly ``acc_words`` output pixels.
    """
    p = small(lanes=lanes, requant_lanes=1, requant_serial=True, serial_setup=True,
              array_broadcast=True, pool_on_array=True, act_words=160)
    h, w, c = POOL_SHAPES[shape][:3]
    rng = np.random.default_rng([seed, shape])
    # (even shapes: mostly -128, so that windows over the padding show what it holds)
    x = rng.integers(-128, 128 if shape % 2 else -126, size=(h, w, c))
    st = maxpool_alone(p, seed, shape, x)
    assert st["busy_pool"] > 0 and st["busy_systolic"] == 0


@pytest.mark.parametrize("serial", [False, True], ids=["pipelined", "serial-setup"])
@pytest.mark.parametrize("lanes", [4, 2])
@pytest.mark.parametrize("shape", range(len(POOL_SHAPES)))
def test_maxpool_unit_cycles_exact(seed, lanes, shape, serial):
    """MAXPOOL on its own unit: every word, and the cycle model exact.

    (It was a cycle short on every shape until 2026-12-06: the digits CNN's one MAXPOOL was
    the cycle the Verilator runs counted beyond the plan.)
    """
    p = small(lanes=lanes, serial_setup=serial, act_words=160)
    h, w, c = POOL_SHAPES[shape][:3]
    rng = np.random.default_rng([seed, shape, 3])
    x = rng.integers(-128, 128, size=(h, w, c))
    assert maxpool_alone(p, seed, shape, x)["busy_pool"] > 0


#: AVGPOOL unit configurations: lanes, and the requantizer options (``serial``: serial
#: units with the small-FPGA set-up).
_SERIAL = {"requant_serial": True, "serial_setup": True, "array_broadcast": True}
_ORT = {"requant_lanes": 2, "requant_serial": True, "requant_ort_only": True}
AVG_CONFIGS = {
    "pipelined-2": (2, {}),
    "pipelined-4": (4, {}),
    "serial-2": (2, _SERIAL),
    "serial-4parts": (4, {**_SERIAL, "requant_lanes": 1}),
    "ort-only": (4, _ORT),
    "compact": (4, {**_ORT, "requant_compact": True}),
}


@pytest.mark.parametrize("channels, hw", [(1, (3, 3)), (5, (2, 3)), (9, (1, 1)), (9, (6, 5))])
@pytest.mark.parametrize("config", list(AVG_CONFIGS))
def test_avgpool_cycles_exact(seed, config, channels, hw):
    """AVGPOOL alone: every word, and the cycle model exact (1 to 5 channel groups).

    (The model was a cycle over for one group and under by ``groups - 2`` beyond two until
    2026-12-07; a TFLite network with a global average pool showed it in Verilator.)
    """
    lanes, options = AVG_CONFIGS[config]
    p = small(lanes=lanes, act_words=256, **options)
    rng = np.random.default_rng([seed, channels, 4])
    (h, w), a = hw, p.act_words
    x = rng.integers(-128, 128, size=(h, w, channels))
    mode = "ort" if p.requant_ort_only else "tflite"
    program = Program(params_hash=params_hash(p), insns=[
        header_for(p), assemble(Op.AVGPOOL, mode=MODES.index(mode), src=0, dst=a + 20, tab=1,
                                in_h=h, in_w=w, channels=channels), assemble(Op.HALT)],
        segments=[("tab", 1, table_words(random_table(rng, channels, mode)))])
    st, expected = check_program(p, program, seed, act=tensor_words(x, lanes))
    assert st["state"] is NpuState.DONE and st["busy_pool"] > 0
    assert st["cycles"] == expected.cycles


def test_maxpool_on_array_takes_more_beats_than_the_weights_hold(seed):
    """A MAXPOOL's identity beats do not count against the weight scratchpad.

    An 8 x 8 window over 4 channels at 2 lanes takes 64 * 2 * 2 = 256 identity beats, more
    than the 160 weight words and than a count sized to them holds (which would run out
    and wedge the array).
    """
    p = small(lanes=2, requant_serial=True, serial_setup=True, array_broadcast=True,
              pool_on_array=True, act_words=160)
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(8, 8, 4))
    insn = assemble(Op.MAXPOOL, src=0, dst=p.act_words, in_h=8, in_w=8, channels=4,
                    out_h=1, out_w=1, kernel=8, stride=1, pad_t=0, pad_l=0)
    assert 64 * 2 * p.lanes >= 1 << (p.wgt_words + 1).bit_length()
    program = Program(params_hash=params_hash(p), insns=[header_for(p), insn,
                                                         assemble(Op.HALT)])
    st, expected = check_program(p, program, seed, act=tensor_words(x, p.lanes))
    assert st["state"] is NpuState.DONE and st["cycles"] == expected.cycles


def test_maxpool_on_array_limits(seed):
    """With ``pool_on_array`` a MAXPOOL of more than acc_words output pixels stops (SHAPE)."""
    p = small(lanes=2, requant_serial=True, serial_setup=True, array_broadcast=True,
              pool_on_array=True, act_words=160)
    insn = assemble(Op.MAXPOOL, src=0, dst=p.act_words, in_h=7, in_w=3, channels=2,
                    out_h=7, out_w=3, kernel=1, stride=1, pad_t=0, pad_l=0)
    assert 7 * 3 == p.acc_words + 1
    program = Program(params_hash=params_hash(p), insns=[header_for(p), insn,
                                                         assemble(Op.HALT)])
    st, _ = check_program(p, program, seed)
    assert (st["state"], st["error"], st["pc"]) == (NpuState.ERROR, ErrorCode.SHAPE, 1)


def add_insn(rng, kernel=None, **regions):
    """Return an ``ADD`` of a random layer (zero points at their extremes or random).

    ``kernel``: one of :data:`ADD_KERNELS` (modes 0-3), at random if None; the output clamp
    is random half of the time.
    """
    sa, sb, sc = (float(2.0 ** rng.uniform(-9, -2)) for _ in range(3))
    za, zb, zc = (int(rng.choice([-128, 127, rng.integers(-128, 128)])) for _ in range(3))
    if kernel is None:
        kernel = list(ADD_KERNELS)[rng.integers(len(ADD_KERNELS))]
    if kernel == "xnnpack":
        sc = max(sc, sa / 200, sb / 200)  # ratios in XNNPACK's range
    lo, hi = sorted(int(v) for v in rng.integers(-128, 128, 2)) if rng.integers(2) \
        else (-128, 127)
    return assemble(Op.ADD, **regions, **add_constants(
        kernel, TensorQuant(sa, za), TensorQuant(sb, zb), TensorQuant(sc, zc), lo, hi))


@pytest.mark.parametrize("lanes,add_units", [(2, 1), (4, 2), (3, 3), (4, 1)])
def test_add(seed, lanes, add_units):
    """ADDs in a chain, modes 0 to 3 (one bank; channels not a multiple of lanes)."""
    p = small(lanes=lanes, add_units=add_units)
    rng = np.random.default_rng([seed, 30 + lanes + add_units])
    act = [int(v) for v in rng.integers(0, 1 << (8 * lanes), size=2 * p.act_words)]
    a = p.act_words
    insns = [header_for(p),
             add_insn(rng, "avx2", src=0, src_b=13, dst=a + 1, pixels=6,
                      channels=lanes + 1),
             add_insn(rng, "xnnpack", src=a + 1, src_b=a + 20, dst=30, pixels=3,
                      channels=2 * lanes),
             add_insn(rng, "gemmlowp", src=30, src_b=0, dst=a + 30, pixels=3,
                      channels=2 * lanes),
             add_insn(rng, "tflite", src=a + 30, src_b=a + 1, dst=36, pixels=3,
                      channels=2 * lanes),
             assemble(Op.HALT)]
    program = Program(params_hash=params_hash(p), insns=insns)
    st, expected = check_program(p, program, seed, act=act)
    assert st["state"] is NpuState.DONE and st["busy_pool"] > 0
    assert st["cycles"] == expected.cycles  # the ADD cycle model is exact
    assert ADD_LATENCY == QLinearAdder.LATENCY  # the model's constant is the unit's


#: ADD's fields that modes 0 and 1 do not use, and no clamp.
NO_TFL = {"shift_b": 0, "shift_out": 0, "zp_a": 0, "zp_b": 0, "lo": -128, "hi": 127}

BAD = [
    ("opcode", 0xE, ErrorCode.OPCODE),
    ("version", 0, ErrorCode.VERSION),
    ("params", assemble(Op.HEADER, params_hash=7), ErrorCode.PARAMS),
    ("shape", assemble(Op.MAXPOOL, src=0, dst=60, in_h=2, in_w=2, channels=1, out_h=1,
                       out_w=1, kernel=2, stride=0, pad_t=0, pad_l=0), ErrorCode.SHAPE),
    ("address", assemble(Op.MAXPOOL, src=40, dst=60, in_h=3, in_w=3, channels=1, out_h=1,
                         out_w=1, kernel=2, stride=1, pad_t=0, pad_l=0), ErrorCode.ADDRESS),
    ("bank", assemble(Op.MAXPOOL, src=0, dst=20, in_h=2, in_w=2, channels=1, out_h=1,
                      out_w=1, kernel=2, stride=1, pad_t=0, pad_l=0), ErrorCode.BANK),
    ("const", assemble(Op.ADD, mode=0, shift=0, zp_out=0, src=0, src_b=10, dst=60, pixels=4,
                       channels=2, rac=f32_bits(2.0 ** 24), rbc=f32_bits(0.5), fixed=0, **NO_TFL),
     ErrorCode.CONST),
    ("const_xnn", assemble(Op.ADD, mode=1, shift=20, zp_out=0, src=0, src_b=10, dst=60,
                           pixels=4, channels=2, rac=(1 << 21) + 1, rbc=5, fixed=0, **NO_TFL),
     ErrorCode.CONST),
    ("bank_b", assemble(Op.ADD, mode=0, shift=0, zp_out=0, src=0, src_b=50, dst=60, pixels=4,
                        channels=2, rac=f32_bits(0.5), rbc=f32_bits(0.5), fixed=0, **NO_TFL),
     ErrorCode.BANK),
    ("engine", assemble(Op.SPFC, mode=0, src=0, dst=60, wgt=0, beats=1, tab=0, cin=2, cout=2,
                        zp_in=0), ErrorCode.ENGINE),
]


@pytest.mark.parametrize("name,insn,code", BAD, ids=[b[0] for b in BAD])
def test_bad_program_stops_with_code_and_address(seed, name, insn, code):
    p = small()
    rng = np.random.default_rng(seed)
    act = [int(v) for v in rng.integers(0, 1 << 16, size=2 * p.act_words)]
    good = assemble(Op.MAXPOOL, src=0, dst=50, in_h=2, in_w=2, channels=2, out_h=1, out_w=1,
                    kernel=2, stride=1, pad_t=0, pad_l=0)
    program = Program(params_hash=params_hash(p),
                      insns=[header_for(p), good, insn, good, assemble(Op.HALT)])
    st, _ = check_program(p, program, seed, act=act)
    assert (st["state"], st["error"], st["pc"]) == (NpuState.ERROR, code, 2)


def test_running_off_the_end(seed):
    p = small()
    program = Program(params_hash=params_hash(p), insns=[header_for(p)] * p.imem_words)
    st, _ = check_program(p, program, seed)
    assert (st["state"], st["error"], st["pc"]) == (NpuState.ERROR, ErrorCode.PC, 8)


@pytest.mark.parametrize("start", [3, 5])
def test_start_at_an_address(seed, start):
    """START runs from its own address, not the previous command's.

    Instructions 0..start-1 would stop with OPCODE; the program at ``start`` runs a
    MAXPOOL and halts. The last command before START is a WRITE to another address.
    """
    p = small()
    rng = np.random.default_rng(seed)
    act = [int(v) for v in rng.integers(0, 1 << 16, size=8)]
    pool = assemble(Op.MAXPOOL, src=0, dst=p.act_words, in_h=2, in_w=2, channels=2, out_h=1,
                    out_w=1, kernel=2, stride=1, pad_t=0, pad_l=0)
    insns = [0xF] * start + [header_for(p), pool, assemble(Op.HALT)]
    program = Program(params_hash=params_hash(p), insns=insns)
    model = NpuModel(p)
    model.write("act", 0, act)
    program.load_into(model)
    expected = model.run(start)
    bench = Bench(p, seed)
    seen = {}

    async def testbench(ctx):
        await bench.send(ctx, host.load_program(program, p.lanes))
        await bench.send(ctx, host.write("act", 0, act, p.lanes))
        seen["status"] = await bench.run(ctx, start=start)
        seen["out"] = await bench.read(ctx, "act", p.act_words, 1)

    bench.simulate(testbench)
    st = seen["status"]
    assert (expected.state, expected.pc) == (NpuState.DONE, start + 2)
    assert (st["state"], st["error"], st["pc"]) == (NpuState.DONE, ErrorCode.NONE, start + 2)
    assert st["retired"] == 3
    assert seen["out"] == model.read("act", p.act_words, 1)


def test_host_errors_and_abort(seed):
    """Refused commands set host_error and change nothing; ABORT stops a program."""
    p = small()
    bench = Bench(p, seed)
    rng = np.random.default_rng(seed)
    x = [int(v) for v in rng.integers(0, 1 << 16, size=10)]
    spin = [header_for(p)] * (p.imem_words - 1) + [assemble(Op.HALT)]
    seen = {}

    async def testbench(ctx):
        await bench.send(ctx, host.write("act", 0, x, p.lanes))
        await bench.send(ctx, host.write("act", 2 * p.act_words - 2, [1, 2, 3], p.lanes))
        seen["range"] = (await bench.status(ctx))["host_error"]
        seen["kept"] = await bench.read(ctx, "act", 2 * p.act_words - 3, 3)
        await bench.send(ctx, host.read("act", 2 * p.act_words - 1, 2))
        seen["zeros"] = await bench.recv(ctx, 2)
        await bench.send(ctx, [0x0F, 0])
        seen["command"] = (await bench.status(ctx))["host_error"]
        await bench.send(ctx, host.write("imem", 0, spin, p.lanes))
        await bench.send(ctx, host.start(0))
        await bench.send(ctx, host.write("act", 0, [9] * 10, p.lanes))
        seen["busy"] = (await bench.status(ctx))["host_error"]
        await bench.send(ctx, host.write("imem", 0, [assemble(Op.HALT)] * 2, p.lanes))
        seen["busy_imem"] = (await bench.status(ctx))["host_error"]
        await bench.send(ctx, host.abort())
        st = await bench.status(ctx)
        seen["aborted"] = (st["state"], st["host_error"])
        seen["act"] = await bench.read(ctx, "act", 0, 10)
        seen["imem"] = await bench.read(ctx, "imem", 0, p.imem_words)
        seen["after"] = await bench.run(ctx)

    bench.simulate(testbench)
    assert seen["range"] is HostError.RANGE
    assert seen["kept"] == [0, 0, 0]
    assert seen["zeros"] == [0, 0]
    assert seen["command"] is HostError.COMMAND
    assert seen["busy"] is HostError.BUSY
    assert seen["aborted"] == (NpuState.IDLE, HostError.NONE)
    assert seen["act"] == x
    assert seen["busy_imem"] is HostError.BUSY and seen["imem"] == spin
    assert seen["after"]["state"] is NpuState.DONE
    assert seen["after"]["retired"] == p.imem_words


@pytest.mark.parametrize("lanes", [2, 5, 33])
def test_host_memories_read_back(seed, lanes):
    """Every memory, written with random words at an offset, reads back word for word.

    The instruction memory holds 32-bit chunks (eight per instruction) and the other
    memories whole words; a read that starts inside and runs past the end is refused and
    answers zeros.
    """
    # 33 lanes: an activation word of 9 chunks, more than an instruction's 8 (no array, one
    # requantizer and no ADD unit keep it small).
    p = small(lanes=lanes) if lanes < 33 else NpuParams(
        lanes=lanes, systolic=None, requant_lanes=1, add_units=0, act_words=48, wgt_words=160,
        tab_entries=16, imem_words=8, acc_words=20)
    rng = random.Random(seed)
    bits = {"act": 8 * lanes, "wgt": 8 * lanes, "tab": TABLE_ENTRY.size, "imem": INSN_BITS}
    size = {"act": 2 * p.act_words, "wgt": p.wgt_words, "tab": p.tab_entries,
            "imem": p.imem_words}
    data = {name: (rng.randrange(size[name] - 3), [rng.getrandbits(b) for _ in range(3)])
            for name, b in bits.items()}
    got = {}

    async def testbench(ctx):
        for name, (at, words) in data.items():
            await top.send(ctx, host.write(name, at, words, p.lanes))
        for name, (at, words) in data.items():
            got[name] = await top.read(ctx, name, at, len(words))
        got["past"] = await top.read(ctx, "imem", p.imem_words - 1, 2)
        got["error"] = (await top.status(ctx))["host_error"]
        # a refused instruction write (past the end) changes nothing
        last = data["imem"][0] + 2
        await top.send(ctx, host.write("imem", last, [rng.getrandbits(INSN_BITS)] * 9,
                                       p.lanes))
        got["refused"] = (await top.status(ctx))["host_error"]
        got["kept"] = await top.read(ctx, "imem", data["imem"][0], 3)

    top = Bench(p, seed)
    top.simulate(testbench)
    for name, (_, words) in data.items():
        assert got[name] == words, name
    assert got["past"] == [0, 0] and got["error"] is HostError.RANGE
    assert got["refused"] is HostError.RANGE and got["kept"] == data["imem"][1]


def test_host_range_edges(seed):
    """WRITE, READ and START at the edges of the host's range check.

    A region that ends at a memory's end is taken; one word more, a start whose low bits
    are in range but not its high ones, or a count beyond every memory is refused with
    RANGE and changes nothing.
    """
    p = small()
    bench = Bench(p, seed)
    rng = random.Random(seed)
    top = 2 * p.act_words
    high = 1 << (max(top, p.wgt_words, p.tab_entries, p.imem_words).bit_length())
    words = [rng.getrandbits(8 * p.lanes) for _ in range(3)]
    seen = {}

    async def error(ctx):
        return (await bench.status(ctx))["host_error"]

    async def testbench(ctx):
        await bench.send(ctx, host.write("act", top - 3, words, p.lanes))
        seen["end"] = (await error(ctx), await bench.read(ctx, "act", top - 3, 3))
        for name, at in (("past", top - 2), ("high", high + top - 3), ("top", (1 << 32) - 1)):
            await bench.send(ctx, host.abort())  # (clears host_error)
            await bench.send(ctx, host.write("act", at, [0, 0, 0], p.lanes))
            seen[name] = (await error(ctx), await bench.read(ctx, "act", top - 3, 3))
        await bench.send(ctx, host.abort())
        await bench.send(ctx, host.read("act", 0, high))  # refused: zeros, then on
        seen["long"] = (await bench.recv(ctx, high * 1), await error(ctx))
        for name, at in (("start_high", high), ("start_end", p.imem_words)):
            await bench.send(ctx, host.abort())
            await bench.send(ctx, host.start(at))
            st = await bench.status(ctx)
            seen[name] = (st["host_error"], st["state"])

    bench.simulate(testbench)
    assert seen["end"] == (HostError.NONE, words)
    for name in ("past", "high", "top"):
        assert seen[name] == (HostError.RANGE, words), name
    assert seen["long"] == ([0] * high, HostError.RANGE)
    for name in ("start_high", "start_end"):
        assert seen[name] == (HostError.RANGE, NpuState.IDLE), name


@pytest.mark.parametrize("gap", [0, 3, 7])
def test_abort_during_the_fetch_then_a_good_program(seed, gap):
    """ABORT while the controller reads an instruction's chunks, then a good program.

    ABORT's words follow START's after ``gap`` idle cycles, so it lands inside the first
    fetch: the NPU goes idle, and the program started next runs exactly.
    """
    p = small()
    rng = np.random.default_rng([seed, 12])
    program = conv_program(p, rng, **CONV_CASES[1])
    model = NpuModel(p)
    program.load_into(model)
    expected = model.run(0)
    bench = Bench(p, seed)
    seen = {}

    async def testbench(ctx):
        await bench.send(ctx, host.load_program(program, p.lanes))
        await send(ctx, bench.dut.i, host.start(0))  # back to back: no random gaps
        if gap:
            await ctx.tick().repeat(gap)
        await send(ctx, bench.dut.i, host.abort())
        seen["aborted"] = await bench.status(ctx)
        seen["after"] = await bench.run(ctx)
        seen["act"] = await bench.read(ctx, "act", 0, 2 * p.act_words)

    bench.simulate(testbench)
    assert seen["aborted"]["state"] is NpuState.IDLE
    assert seen["aborted"]["retired"] == 0  # stopped inside the first fetch
    st = seen["after"]
    assert (st["state"], st["retired"], st["cycles"]) == (expected.state, expected.retired,
                                                           expected.cycles)
    assert seen["act"] == model.read("act", 0, 2 * p.act_words)


#: The small-FPGA options (NPU_UP5K's), and the cycle their reset lands mid-CONV.
SMALL_FPGA = {"requant_serial": True, "requant_lanes": 1, "serial_setup": True,
              "array_broadcast": True}


@pytest.mark.parametrize("options,reset_at", [({}, 40), (SMALL_FPGA, 330)],
                         ids=["default", "small-fpga"])
def test_reset_mid_program_then_a_good_program(seed, options, reset_at):
    p = small(**options)
    rng = np.random.default_rng([seed, 3])
    program = conv_program(p, rng, **CONV_CASES[0])
    model = NpuModel(p)
    program.load_into(model)
    model.run(0)
    bench = Bench(p, seed)
    seen = {}

    async def testbench(ctx):
        await bench.send(ctx, host.load_program(program, p.lanes))
        await bench.send(ctx, host.start(0))
        await ctx.tick().repeat(reset_at)  # mid-CONV
        seen["conv_busy"] = ctx.get(bench.dut.disjoint_parts[0].busy)
        ctx.set(bench.rst, 1)
        await ctx.tick()
        ctx.set(bench.rst, 0)
        seen["after_reset"] = await bench.status(ctx)
        # Memories keep their contents across reset; run the program again from scratch.
        seen["status"] = await bench.run(ctx)
        seen["act"] = await bench.read(ctx, "act", 0, 2 * p.act_words)

    bench.simulate(testbench)
    assert seen["conv_busy"] == 1  # the reset lands mid-CONV
    assert seen["after_reset"]["state"] is NpuState.IDLE
    assert seen["status"]["state"] is NpuState.DONE
    assert seen["act"] == model.read("act", 0, 2 * p.act_words)


def sparse_small(lanes=4, n_pe=2, **kw):
    sp = SparseParams(n_pe=n_pe, rows_max=24, cols_max=20, entries_max=96, act_width=16,
                      act_lanes=lanes, queue_depth=4)
    return small(lanes=lanes, sparse=sp, wgt_words=640, tab_entries=32, act_words=64, **kw)


def sparse_layer(rng, p, cin, cout, density=0.3, distinct=6):
    """Return the beats and the dense form of a random pruned, weight-shared int8 matrix."""
    values = rng.choice([v for v in range(-128, 128) if v], size=distinct, replace=False)
    codebook = [0] + [int(v) for v in values] + [0] * (15 - distinct)
    w_idx = np.where(rng.random((cout, cin)) < density,
                     rng.integers(1, distinct + 1, size=(cout, cin)), 0)
    enc = encode(w_idx, p.sparse.n_pe, codebook=codebook)
    return load_program(enc), np.asarray(codebook)[w_idx]


def spfc_program(p, rng, *, cin, cout, mode, zp_in=None, **kw):
    beats, _ = sparse_layer(rng, p, cin, cout, **kw)
    x = rng.integers(-128, 128, size=(1, 1, cin))
    if zp_in is None:
        zp_in = int(rng.integers(-128, 128))
    # Many inputs at the zero point: the engine skips them.
    x = np.where(rng.random(x.shape) < 0.4, zp_in, x)
    table = random_table(rng, cout, mode)
    insn = assemble(Op.SPFC, mode=MODES.index(mode), src=3, dst=p.act_words + 1, wgt=5,
                    beats=len(beats), tab=2, cin=cin, cout=cout, zp_in=zp_in)
    return insn, [("act", 3, tensor_words(x, p.lanes)),
                  ("wgt", 5, cfg_beat_words(beats, p.lanes)),
                  ("tab", 2, table_words(table))]


@pytest.mark.parametrize("lanes,n_pe,cin,cout,mode,rq", [
    (4, 2, 20, 24, "ort", 0), (4, 1, 7, 5, "tflite", 0), (8, 3, 17, 9, "gemmlowp", 0),
    (3, 2, 14, 16, "ort", 1), (4, 2, 20, 24, "ort", -1), (3, 2, 14, 16, "gemmlowp", -3)])
def test_spfc(seed, lanes, n_pe, cin, cout, mode, rq):
    """SPFC twice: the first loads the matrix, the second finds it loaded (cycles drop).

    ``rq``: requantization units; negative: that many serial units.
    """
    p = sparse_small(lanes=lanes, n_pe=n_pe, requant_lanes=abs(rq), requant_serial=rq < 0)
    rng = np.random.default_rng([seed, cin])
    insn, segments = spfc_program(p, rng, cin=cin, cout=cout, mode=mode)
    again = assemble(Op.SPFC, **{**disassemble(insn)[1], "dst": p.act_words + 10})
    program = Program(params_hash=params_hash(p),
                      insns=[header_for(p), insn, again, assemble(Op.HALT)],
                      segments=segments)
    st, expected = check_program(p, program, seed)
    assert st["state"] is NpuState.DONE
    # The unit's busy counter: the two SPFC less the controller's cycles and the PostUnit's
    # tail, both exact, so the model misses it by exactly what it misses the total by (the
    # walk's queue model; check_program holds that within 5%).
    print(f"cycles: RTL {st['cycles']}, model {expected.cycles}; busy sparse: RTL "
          f"{st['busy_sparse']}, model {expected.busy['sparse']}")
    assert st["busy_sparse"] - expected.busy["sparse"] == st["cycles"] - expected.cycles


SPFC_BAD = {
    # field checks in the decoder
    "zero_beats": lambda insn, beats, p: (dict(insn, beats=0), beats, ErrorCode.SHAPE),
    "too_many_cols": lambda insn, beats, p: (dict(insn, cin=p.sparse.cols_max + 1), beats,
                                             ErrorCode.SHAPE),
    "wgt_region": lambda insn, beats, p: (dict(insn, wgt=p.wgt_words - 1), beats,
                                          ErrorCode.ADDRESS),
    # the engine: a refused beat, a shape that is not the instruction's, a bad column, a row
    # past the matrix
    "refused": lambda insn, beats, p: (insn, beats + [
        {"op": 2, "pe": 0, "addr": 0, "data": p.sparse.entries_max + 1}], ErrorCode.SPARSE),
    "shape": lambda insn, beats, p: (dict(insn, cout=insn["cout"] - 1), beats,
                                     ErrorCode.SPARSE),
    "pointers": lambda insn, beats, p: (insn, beats + [
        {"op": 2, "pe": 0, "addr": 1, "data": p.sparse.entries_max}], ErrorCode.SPARSE),
    "row": lambda insn, beats, p: (insn, beats + [
        {"op": 3, "pe": 0, "addr": 0, "data": 0xF1}, {"op": 3, "pe": 0, "addr": 1,
                                                     "data": 0xF1}], ErrorCode.SPARSE),
}


@pytest.mark.parametrize("case", sorted(SPFC_BAD))
def test_spfc_bad_matrix_then_a_good_program(seed, case):
    """A bad SPFC stops with its code and writes nothing; the same NPU then runs a good one.

    The bad program's matrix differs from the good one's only where the case says; every
    activation differs from the zero point, so every column is walked.
    """
    p = sparse_small(lanes=4, n_pe=2)
    rng = np.random.default_rng([seed, 31])
    cin, cout = 9, 11
    beats, _ = sparse_layer(rng, p, cin, cout, density=0.4)
    zp_in = int(rng.integers(-128, 128))
    x = rng.integers(-128, 128, size=(1, 1, cin))
    x = np.where(x == zp_in, zp_in ^ 1, x)
    table = random_table(rng, cout, "ort")
    fields = {"mode": 0, "src": 3, "dst": p.act_words + 1, "wgt": 5, "tab": 2, "cin": cin,
              "cout": cout, "zp_in": zp_in}

    def program(insn, beats):
        insn = dict(insn, beats=insn.get("beats", len(beats)))
        return Program(params_hash=params_hash(p),
                       insns=[header_for(p), assemble(Op.SPFC, **insn), assemble(Op.HALT)],
                       segments=[("act", 3, tensor_words(x, p.lanes)),
                                 ("wgt", 5, cfg_beat_words(beats, p.lanes)),
                                 ("tab", 2, table_words(table))])

    bad_insn, bad_beats, code = SPFC_BAD[case](fields, beats, p)
    # The bad program twice (the second start rewrites nothing: the engine's error must not
    # leave a stale matrix marked loaded), a program without SPFC (the failure must not
    # stop it), then the good one.
    pool = Program(params_hash=params_hash(p), insns=[
        header_for(p), assemble(Op.MAXPOOL, src=3, dst=p.act_words + 20, in_h=1, in_w=1,
                                channels=cin, out_h=1, out_w=1, kernel=1, stride=1,
                                pad_t=0, pad_l=0), assemble(Op.HALT)])
    bad = program(bad_insn, bad_beats)
    steps = [bad, None, pool, program(fields, beats)]  # None: start again, nothing loaded
    if case == "pointers":
        # The bad columns (0 and 1) at the zero point are not walked: after a reload the
        # same matrix runs (an engine error left marked "loaded" would still stop it).
        skip = np.where(np.arange(cin) < 2, zp_in, x)
        steps.insert(2, Program(params_hash=params_hash(p), insns=bad.insns,
                                segments=[("act", 3, tensor_words(skip, p.lanes))]))
    st_act = run_steps(p, steps, seed)
    if case == "pointers":
        assert st_act.pop(2)[0]["state"] is NpuState.DONE
    assert [st["state"] for st, _ in st_act] == [NpuState.ERROR, NpuState.ERROR,
                                                 NpuState.DONE, NpuState.DONE]
    assert (st_act[0][0]["error"], st_act[0][0]["pc"]) == (code, 1)
    assert st_act[1][0]["error"] == code
    # nothing written by the bad SPFC: bank 1 still zero
    assert st_act[0][1][p.act_words:] == [0] * p.act_words


def run_steps(p, steps, seed, abort_at=None):
    """Run ``steps`` (a Program: load and run it; None: start again) on the RTL and the model.

    Every step's status and both banks must agree; returns ``[(status, act words)]``.
    ``abort_at``: ``(step, cycles)``: ABORT that step's run after ``cycles`` cycles, then
    run it again (the model runs it once).
    """
    model = NpuModel(p)
    bench = Bench(p, seed)
    seen = []

    async def testbench(ctx):
        for k, prog in enumerate(steps):
            if prog is not None:
                await bench.send(ctx, host.load_program(prog, p.lanes))
            if abort_at is not None and abort_at[0] == k:
                await bench.send(ctx, host.start(0))
                await ctx.tick().repeat(abort_at[1])
                assert (await bench.status(ctx))["state"] is NpuState.RUNNING
                await bench.send(ctx, host.abort())
            st = await bench.run(ctx)
            seen.append((st, await bench.read(ctx, "act", 0, 2 * p.act_words)))

    bench.simulate(testbench)
    for k, prog in enumerate(steps):
        if prog is not None:
            prog.load_into(model)
        expected = model.run(0)
        st, act = seen[k]
        assert (st["state"], st["error"], st["pc"], st["retired"]) == (
            expected.state, expected.error, expected.pc, expected.retired), k
        assert act == model.read("act", 0, 2 * p.act_words), k
    return seen


def test_spfc_reloads_after_a_weight_write_and_an_abort(seed):
    """The engine's load tag: a host write of the weights forgets it, ABORT forgets it.

    Matrices A and B have the same beat count at the same address (only the codebook
    differs): running B's program after A's must give B's result. An ABORT in the middle of
    a load, then the same program: a full, correct load.
    """
    p = sparse_small(lanes=4, n_pe=2)
    rng = np.random.default_rng([seed, 41])
    cin, cout = 13, 10
    beats_a, _ = sparse_layer(rng, p, cin, cout, density=0.5)
    codebook = CfgOp.CODEBOOK.value
    beats_b = [dict(b, data=(b["data"] * 3 + 1) & 0x7F) if b["op"] == codebook and b["addr"]
               else b
               for b in beats_a]
    x = rng.integers(-128, 128, size=(1, 1, cin))
    # Full output range and no bias: a narrow random clamp could saturate every output
    # under both codebooks alike (about 2 seeds in 1000), and the test could not tell them
    # apart.
    table = [dict(t, lo=-128, hi=127, bias=0) for t in random_table(rng, cout, "tflite")]

    def program(beats):
        insn = assemble(Op.SPFC, mode=1, src=3, dst=p.act_words + 1, wgt=5, beats=len(beats),
                        tab=2, cin=cin, cout=cout, zp_in=int(x[0, 0, 0]))
        return Program(params_hash=params_hash(p),
                       insns=[header_for(p), insn, assemble(Op.HALT)],
                       segments=[("act", 3, tensor_words(x, p.lanes)),
                                 ("wgt", 5, cfg_beat_words(beats, p.lanes)),
                                 ("tab", 2, table_words(table))])

    seen = run_steps(p, [program(beats_a), program(beats_b), None], seed)
    assert all(st["state"] is NpuState.DONE for st, _ in seen)
    assert seen[0][1] != seen[1][1]  # B's codebook gives other outputs
    assert seen[2][0]["cycles"] < seen[1][0]["cycles"]  # loaded: no reload
    run_steps(p, [program(beats_a), program(beats_b)], seed, abort_at=(1, 60))


def winograd_build(lanes=4, **kw):
    from npugen.rtl.winograd.params import WinogradParams

    return small(lanes=lanes, act_words=96, wgt_words=400, acc_words=64,
                 winograd=WinogradParams(c_max=8, k_max=8), **kw)


@pytest.mark.parametrize(("h", "w", "pad", "cin", "cout"), [
    (4, 4, 1, 3, 5), (5, 6, 0, 4, 2), (3, 5, 1, 8, 8), (6, 3, 2, 1, 1), (9, 9, 1, 2, 3)])
def test_conv_on_winograd(seed, h, w, pad, cin, cout):
    """CONV with engine 1: the same words as the systolic array's, every output word.

    The last case has 81 output pixels, more than the build's 64 accumulator words: the
    array could not take it in one CONV, the Winograd engine keeps no accumulators.
    """
    p = winograd_build()
    rng = np.random.default_rng([seed, h, w, pad, cin, cout])
    mode = MODES[int(rng.integers(3))]
    kw = {"k": 3, "stride": 1, "pad": pad, "h": h, "w": w, "cin": cin, "cout": cout,
          "mode": mode}
    st, expected = check_program(p, conv_program(p, rng, engine=1, **kw), seed)
    assert st["state"] is NpuState.DONE
    print(f"cycles: RTL {st['cycles']}, model {expected.cycles}; busy winograd "
          f"{st['busy_winograd']}")
    # the Winograd unit's schedule model is exact
    assert (st["cycles"], st["busy_winograd"]) == (expected.cycles, expected.busy["winograd"])
