"""cocotb bench for the NPU: programs in through the command port, every memory word checked.

The host side streams commands and reads replies cycle by cycle (the stream engine), but
once a program is started the bench waits for ``running`` to fall with no Python work per
cycle: the Verilator model runs on its own. Every check compares whole activation banks
(and the status) with the instruction-level simulator
(:class:`~npugen.sim.models.npu.NpuModel`).

Environment (see :class:`~.bench.Bench`): ``DUT_PARAMS``, ``SEED``, optional
``NPUGEN_RESULT`` (JSON metrics of the demo: cycles, Verilator cycles per second).
"""

import os
import time

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, with_timeout

from npugen.rtl.npu.isa import ErrorCode, Op, decode
from npugen.rtl.npu.params import params_hash

from ..compiler.ir import TensorQuant
from ..compiler.lower import ADD_KERNELS, add_constants
from ..formats.compress import encode
from ..formats.program import (
    Program,
    assemble,
    cfg_beat_words,
    header_for,
    table_words,
    tensor_words,
    weight_words,
)
from ..formats.sparse import load_program
from ..host import npu as host
from ..models.npu import NpuModel, NpuState
from ..models.qladd import f32_bits
from .bench import TRAFFIC, Bench, check_words, write_result


class NpuBench(Bench):
    """An Npu driven through its command stream."""

    def __init__(self, dut, traffic="steady"):
        super().__init__(dut, traffic)
        self.p = self.params

    async def start(self):
        """Start clock and reset, then zero both activation banks.

        Memories keep their contents across reset (and across the tests of one simulation);
        every test starts from zeros, as the simulator does.
        """
        await super().start()
        await self.command(host.write("act", 0, [0] * (2 * self.p.act_words), self.p.lanes))

    async def command(self, words, replies=0, timeout=200_000):
        """Send command ``words``; return the next ``replies`` reply words."""
        before = len(self.o.got)
        self.i.put(*words)
        await self.run(lambda: self.i.idle_now and len(self.o.got) >= before + replies,
                       timeout=timeout)
        return [int(w) for w in self.o.got[before:before + replies]]

    async def status(self):
        """Return the parsed STATUS reply."""
        return host.status_of(await self.command(host.status(), host.STATUS_WORDS))

    async def read(self, memory, address, count):
        """Return ``count`` words of ``memory`` from ``address``."""
        n = host.read_reply_words(memory, count, self.p.lanes)
        return host.unpack(memory, await self.command(host.read(memory, address, count), n),
                           self.p.lanes)

    async def execute(self, start=0, timeout_us=10_000):
        """START, wait for the program to stop on its own, return (status, wall seconds)."""
        await self.command(host.start(start))
        await self.engine.idle(2)
        began = time.perf_counter()
        if int(self.dut.running.value):
            await with_timeout(FallingEdge(self.dut.running), timeout_us, "us")
        seconds = time.perf_counter() - began
        return await self.status(), seconds

    async def check_against(self, model, expected, what):
        """Compare status and both activation banks with the simulator's."""
        st = await self.status()
        assert (st["state"], st["error"], st["pc"], st["retired"]) == \
            (expected.state, expected.error, expected.pc, expected.retired), (what, st)
        got = await self.read("act", 0, 2 * self.p.act_words)
        check_words(self.dut, got, model.read("act", 0, 2 * self.p.act_words), what)
        return st


def _model(p, act, program):
    model = NpuModel(p)
    if act:
        model.write("act", 0, act)
    program.load_into(model)
    return model, model.run(0)


async def _load(h, act, program):
    if act:
        await h.command(host.write("act", 0, act, h.p.lanes))
    await h.command(host.load_program(program, h.p.lanes))


@cocotb.test()
async def test_demo(dut):
    """Conv 3x3 -> max-pool -> fully connected, run autonomously; every word checked."""
    h = NpuBench(dut)
    await h.start()
    program, act = host.demo_program(h.p, h.nrng)
    model, expected = _model(h.p, act, program)
    assert expected.state is NpuState.DONE
    await _load(h, act, program)
    st, seconds = await h.execute()
    await h.check_against(model, expected, "demo")
    rate = st["cycles"] / seconds if seconds > 0 else 0.0
    dut._log.info("demo: %d cycles (model %d), %d instructions, Verilator %.0f cycles/s",
                  st["cycles"], expected.cycles, st["retired"], rate)
    assert abs(st["cycles"] - expected.cycles) <= 0.05 * st["cycles"]
    macs = sum(f["out_h"] * f["out_w"] * f["cout"] * f["cin"] * f["kernel"] ** 2
               for op, f in map(decode, program.insns) if op is Op.CONV)
    write_result({"cycles": st["cycles"], "model_cycles": expected.cycles, "macs": macs,
                  "cycles_per_second": rate})


def _conv_case(p, nrng, k, stride, pad, size, cin, cout, mode, engine=0):
    out = (size + 2 * pad - k) // stride + 1
    x = nrng.integers(-128, 128, size=(size, size, cin))
    w = nrng.integers(-128, 128, size=(cout, cin, k, k))
    table = [{"bias": int(nrng.integers(-5000, 5000)), "multiplier": (1 << 30) + 12345,
              "shift": int(nrng.integers(-14, -8)), "zero_point": int(nrng.integers(-9, 9)),
              "lo": -128, "hi": 127} for _ in range(cout)]
    if mode == 0:  # ort: a float32 scale's mantissa and exponent
        for e in table:
            e["multiplier"], e["shift"] = 12345678, -33
    insn = assemble(Op.CONV, mode=mode, src=2, dst=p.act_words + 3, wgt=1, tab=1,
                    in_h=size, in_w=size, cin=cin, cout=cout, out_h=out, out_w=out, kernel=k,
                    stride=stride, pad_t=pad, pad_l=pad, zp_in=int(nrng.integers(-128, 128)),
                    engine=engine)
    program = Program(params_hash=params_hash(p), insns=[header_for(p), insn, assemble(Op.HALT)],
                      segments=[("act", 2, tensor_words(x, p.lanes)),
                                ("wgt", 1, weight_words(w, p.lanes)),
                                ("tab", 1, table_words(table))])
    return program


def _add_case(p, nrng, kernel):
    """Return an ``ADD`` of two random tensors in bank 0 (random layer) into bank 1.

    ``kernel``: one of :data:`~npugen.sim.compiler.lower.ADD_KERNELS` (modes 0-3); the
    output clamp is random (a fused activation) half of the time.
    """
    h, w, c = (int(v) for v in nrng.integers(1, 5, size=3))
    c += p.lanes  # at least two channel groups, usually a partial one
    words = h * w * -(-c // p.lanes)
    a, b = (nrng.integers(-128, 128, size=(h, w, c)) for _ in range(2))
    sa, sb, sc = (float(np.float32(2.0 ** nrng.uniform(-9, 0))) for _ in range(3))
    za, zb, zc = (int(nrng.choice([-128, 127, nrng.integers(-128, 128)])) for _ in range(3))
    src_b = 1 + words + int(nrng.integers(0, 3))
    regions = {"src": 1, "src_b": src_b, "dst": p.act_words + 2, "pixels": h * w,
               "channels": c}
    if kernel == "xnnpack":
        sc = max(sc, sa / 200, sb / 200)  # scale ratios in XNNPACK's range
    lo, hi = sorted(int(v) for v in nrng.integers(-128, 128, 2)) if nrng.integers(2) \
        else (-128, 127)
    insn = assemble(Op.ADD, **regions, **add_constants(
        kernel, TensorQuant(sa, za), TensorQuant(sb, zb), TensorQuant(sc, zc), lo, hi))
    return Program(params_hash=params_hash(p), insns=[header_for(p), insn, assemble(Op.HALT)],
                   segments=[("act", 1, tensor_words(a, p.lanes)),
                             ("act", src_b, tensor_words(b, p.lanes))])


def _spfc_case(p, nrng, mode, cout_delta=0):
    """Return a program of two ``SPFC`` of one random pruned, weight-shared matrix.

    The second finds the matrix loaded; both read bank 0 and write bank 1. ``cout_delta``
    != 0 makes the shape wrong (error SPARSE).
    """
    sp = p.sparse
    cin = int(nrng.integers(p.lanes + 1, sp.cols_max + 1))
    cout = int(nrng.integers(2, min(sp.rows_max, p.tab_entries - 1) + 1))
    values = nrng.choice([v for v in range(-128, 128) if v], size=int(nrng.integers(1, 16)),
                         replace=False)
    codebook = [0] + [int(v) for v in values] + [0] * (15 - len(values))
    w_idx = np.where(nrng.random((cout, cin)) < 0.3,
                     nrng.integers(1, len(values) + 1, size=(cout, cin)), 0)
    beats = load_program(encode(w_idx, sp.n_pe, codebook=codebook))
    zp_in = int(nrng.choice([-128, 127, nrng.integers(-128, 128)]))
    x = nrng.integers(-128, 128, size=(1, 1, cin))
    x = np.where(nrng.random(x.shape) < 0.4, zp_in, x)  # inputs the engine skips
    table = [{"bias": int(nrng.integers(-5000, 5000)), "multiplier": (1 << 30) + 12345,
              "shift": int(nrng.integers(-14, -8)), "zero_point": int(nrng.integers(-9, 9)),
              "lo": -128, "hi": 127} for _ in range(cout)]
    if mode == 0:
        for e in table:
            e["multiplier"], e["shift"] = 12345678, -33
    fields = {"mode": mode, "src": 2, "wgt": 1, "beats": len(beats), "tab": 1, "cin": cin,
              "cout": cout + cout_delta, "zp_in": zp_in}
    insns = [header_for(p), assemble(Op.SPFC, dst=p.act_words + 3, **fields),
             assemble(Op.SPFC, dst=p.act_words + 3 + -(-cout // p.lanes), **fields),
             assemble(Op.HALT)]
    return Program(params_hash=params_hash(p), insns=insns,
                   segments=[("act", 2, tensor_words(x, p.lanes)),
                             ("wgt", 1, cfg_beat_words(beats, p.lanes)),
                             ("tab", 1, table_words(table))])


@cocotb.test()
@cocotb.parametrize(traffic=list(TRAFFIC))
async def test_programs(dut, traffic):
    """Single-layer programs (each mode, strides, padding, 1x1, FC; ADD) under the traffic."""
    h = NpuBench(dut, traffic)
    p, nrng = h.p, h.nrng
    await h.start()
    cases = [(3, 1, 1, 5, 3, 5, 0), (3, 2, 1, 6, 2, 3, 1), (1, 1, 0, 4, 5, 2, 2),
             (3, 1, 0, 3, 4, 6, 0)]
    model = NpuModel(p)  # one model for the whole test: the memories carry over
    # (a build that rounds only as ort runs every case in ort)
    programs = [_conv_case(p, nrng, *case[:-1], 0 if p.requant_ort_only else case[-1])
                for case in cases]
    if p.add_units:
        programs += [_add_case(p, nrng, kernel) for kernel in ADD_KERNELS]
    if p.sparse is not None:
        programs += [_spfc_case(p, nrng, mode) for mode in range(3)]
    winograd_from = len(programs)
    if p.winograd is not None:  # 3x3 stride 1 on the Winograd engine, random shapes
        wg = p.winograd
        for mode in range(3):
            size, cin, cout = (int(v) for v in nrng.integers(
                (3, 1, 1), (9, wg.c_max + 1, min(wg.k_max, p.tab_entries - 1) + 1)))
            programs.append(_conv_case(p, nrng, 3, 1, int(nrng.integers(2)), size, cin, cout,
                                       mode, engine=1))
    for n, program in enumerate(programs):
        program.load_into(model)
        expected = model.run(0)
        assert expected.state is NpuState.DONE, f"case {n} does not fit {p.slug}"
        await _load(h, None, program)
        st, _ = await h.execute()
        await h.check_against(model, expected, f"case {n} ({traffic})")
        # every instruction's cycle count within 5% of the model; the Winograd unit's exact
        assert abs(st["cycles"] - expected.cycles) <= 0.05 * st["cycles"], (n, st, expected)
        if n >= winograd_from:
            assert (st["cycles"], st["busy_winograd"]) == (
                expected.cycles, expected.busy["winograd"]), (n, st, expected)


@cocotb.test()
async def test_bad_programs(dut):
    """Each error code stops the program at its instruction and writes nothing."""
    h = NpuBench(dut)
    p, nrng = h.p, h.nrng
    await h.start()
    a = p.act_words
    act = [int(v) for v in nrng.integers(0, 1 << 16, size=2 * a)]
    await h.command(host.write("act", 0, act, p.lanes))
    good = assemble(Op.MAXPOOL, src=0, dst=a, in_h=2, in_w=2, channels=1, out_h=1, out_w=1,
                    kernel=2, stride=1, pad_t=0, pad_l=0)
    pool = {"in_h": 2, "in_w": 2, "channels": 1, "out_h": 1, "out_w": 1, "kernel": 2,
            "stride": 1, "pad_t": 0, "pad_l": 0}
    cases = {
        ErrorCode.OPCODE: 0xD,
        ErrorCode.VERSION: 0,
        ErrorCode.PARAMS: assemble(Op.HEADER, params_hash=1),
        ErrorCode.SHAPE: assemble(Op.MAXPOOL, src=0, dst=a, **{**pool, "stride": 0}),
        ErrorCode.ADDRESS: assemble(Op.MAXPOOL, src=a - 2, dst=a, **pool),
        ErrorCode.BANK: assemble(Op.MAXPOOL, src=0, dst=10, **pool),
    }
    if p.add_units:
        cases[ErrorCode.CONST] = assemble(Op.ADD, mode=0, shift=0, zp_out=0, src=0, src_b=4,
                                          dst=a, pixels=2, channels=1,
                                          rac=f32_bits(2.0 ** 30), rbc=f32_bits(0.5), fixed=0,
                                          shift_b=0, shift_out=0, zp_a=0, zp_b=0, lo=-128,
                                          hi=127)
    # a CONV for the Winograd engine: without one ENGINE, with one a 2x2 kernel is SHAPE
    wconv = assemble(Op.CONV, mode=0, src=0, dst=a, wgt=0, tab=0, in_h=2, in_w=2, cin=1,
                     cout=1, out_h=1, out_w=1, kernel=2, stride=1, pad_t=0, pad_l=0, zp_in=0,
                     engine=1)
    cases = list(cases.items()) + [(ErrorCode.SHAPE if p.winograd else ErrorCode.ENGINE,
                                    wconv)]
    model = NpuModel(p)
    model.write("act", 0, act)
    for code, insn in cases:
        program = Program(params_hash=params_hash(p),
                          insns=[header_for(p), good, insn, assemble(Op.HALT)])
        await h.command(host.load_program(program, p.lanes))
        model.write("imem", 0, program.insns)
        expected = model.run(0)
        st, _ = await h.execute()
        assert (st["state"], st["error"], st["pc"]) == (NpuState.ERROR, code, 2), st
        await h.check_against(model, expected, f"bad program {code.name}")
        assert int(dut.error.value) == 1
    if p.sparse is not None:  # the matrix is not cout x cin: the first SPFC stops
        program = _spfc_case(p, nrng, 0, cout_delta=-1)
        program.load_into(model)
        expected = model.run(0)
        await _load(h, None, program)
        st, _ = await h.execute()
        assert (st["state"], st["error"], st["pc"]) == (NpuState.ERROR, ErrorCode.SPARSE, 1)
        await h.check_against(model, expected, "bad program SPARSE")


@cocotb.test()
@cocotb.parametrize(when=[30, 300])
async def test_reset_mid_program(dut, when):
    """Reset while a program runs: idle after it, and the same program then runs exactly."""
    h = NpuBench(dut)
    await h.start()
    program, act = host.demo_program(h.p, h.nrng)
    model, expected = _model(h.p, act, program)
    await _load(h, act, program)
    await h.command(host.start(0))
    await h.engine.idle(when)
    assert int(dut.running.value) == 1
    await h.engine.reset(2)
    assert int(dut.running.value) == 0
    st = await h.status()
    assert st["state"] is NpuState.IDLE
    # (the memories keep their contents across reset; the program's MAXPOOL may already
    # have overwritten its input in bank 0: load it again)
    await _load(h, act, program)
    await h.execute()
    await h.check_against(model, expected, f"after reset at {when}")


@cocotb.test()
async def test_benchmark_layer(dut):
    """Run one CONV layer named by ``NPUGEN_LAYER`` (``k,size,cin,cout[,engine]``), checked.

    Default ``3,5,6,6``; same padding for odd k, none for even k (a kernel as large as the
    input is a fully connected layer); ``engine`` 1 runs it on the Winograd engine. Runs
    autonomously; metrics go to ``NPUGEN_RESULT``: cycles of the whole program and of the
    CONV's unit, useful MACs, the engine's peak MACs per cycle (the Winograd engine: 36).
    """
    k, size, cin, cout, *rest = (int(v) for v in os.environ.get(
        "NPUGEN_LAYER", "3,5,6,6").split(","))
    engine = rest[0] if rest else 0
    h = NpuBench(dut)
    p, nrng = h.p, h.nrng
    await h.start()
    pad = k // 2 if k % 2 else 0  # same padding for odd kernels, none for even ones
    program = _conv_case(p, nrng, k, 1, pad, size, cin, cout, 0, engine=engine)
    model = NpuModel(p)
    program.load_into(model)
    expected = model.run(0)
    await _load(h, None, program)
    st, seconds = await h.execute(timeout_us=1_000_000)
    assert expected.state is NpuState.DONE, f"the layer does not fit {p.slug}: {expected}"
    await h.check_against(model, expected, f"layer {k},{size},{cin},{cout},{engine}")
    out = size + 2 * pad - k + 1
    macs = out * out * cout * cin * k * k
    busy = st["busy_winograd" if engine else "busy_systolic"]
    if engine:  # the engine's busy is modelled exactly
        assert busy == expected.busy["winograd"], (busy, expected.busy["winograd"])
    peak = p.winograd.macs if engine else p.macs
    dut._log.info("layer k=%d %dx%dx%d -> %d (%s): %d cycles (model %d), unit busy %d, "
                  "%.1f%% of %d MACs/cycle, Verilator %.0f cycles/s", k, size, size, cin, cout,
                  "winograd" if engine else "array", st["cycles"], expected.cycles, busy,
                  100 * macs / (peak * busy), peak, st["cycles"] / seconds if seconds else 0)
    write_result({"cycles": st["cycles"], "model_cycles": expected.cycles,
                  "busy": busy, "macs": macs, "peak": peak,
                  "cycles_per_second": st["cycles"] / seconds if seconds else 0.0})


@cocotb.test()
async def test_benchmark_spfc(dut):
    """Run one SPFC layer named by ``NPUGEN_SPFC`` (``cin,cout,weight_density,act_density``).

    A random pruned, weight-shared ``cout x cin`` matrix (<= 15 values) and an input whose
    ``act_density`` fraction differs from the zero point. The program (HEADER, SPFC, HALT)
    runs twice: the first run loads the matrix, the second (nothing rewritten) finds it
    loaded. Both checked; metrics to ``NPUGEN_RESULT``. Default: the largest matrix up to
    40 x 30 the NPU takes, 20% weights, 50% inputs. Needs a sparse engine.
    """
    h = NpuBench(dut)
    p, nrng = h.p, h.nrng
    assert p.sparse is not None, f"{p.slug} has no sparse engine"
    default = f"{min(40, p.sparse.cols_max)},{min(30, p.sparse.rows_max, p.tab_entries)},0.2,0.5"
    cin, cout, wd, ad = os.environ.get("NPUGEN_SPFC", default).split(",")
    cin, cout, wd, ad = int(cin), int(cout), float(wd), float(ad)
    await h.start()
    values = nrng.choice([v for v in range(-128, 128) if v], size=15, replace=False)
    w_idx = np.where(nrng.random((cout, cin)) < wd, nrng.integers(1, 16, size=(cout, cin)), 0)
    beats = load_program(encode(w_idx, p.sparse.n_pe, codebook=[0, *map(int, values)]))
    zp_in = -128
    x = np.where(nrng.random((1, 1, cin)) < ad, nrng.integers(-127, 128, size=(1, 1, cin)),
                 zp_in)
    table = [{"bias": int(nrng.integers(-5000, 5000)), "multiplier": 12345678, "shift": -33,
              "zero_point": 0, "lo": -128, "hi": 127} for _ in range(cout)]
    insn = assemble(Op.SPFC, mode=0, src=0, dst=p.act_words, wgt=0, beats=len(beats), tab=0,
                    cin=cin, cout=cout, zp_in=zp_in)
    program = Program(params_hash=params_hash(p), insns=[header_for(p), insn, assemble(Op.HALT)],
                      segments=[("act", 0, tensor_words(x, p.lanes)),
                                ("wgt", 0, cfg_beat_words(beats, p.lanes)),
                                ("tab", 0, table_words(table))])
    model = NpuModel(p)
    program.load_into(model)
    await _load(h, None, program)
    runs = []
    for what in ("load", "loaded"):
        expected = model.run(0)
        assert expected.state is NpuState.DONE, f"the layer does not fit {p.slug}: {expected}"
        st, seconds = await h.execute(timeout_us=1_000_000)
        await h.check_against(model, expected, f"SPFC {cin}x{cout} ({what})")
        assert abs(st["cycles"] - expected.cycles) <= 0.05 * st["cycles"], (st, expected)
        runs.append((st, expected.cycles))
    useful = int(((w_idx != 0) & (x.reshape(1, -1) != zp_in)).sum())
    (first, first_model), (st, model_cycles) = runs
    dut._log.info("SPFC %d -> %d, weights %.0f%%, inputs %.0f%%: %d cycles with the load "
                  "(model %d), %d loaded (model %d), engine busy %d, %d useful MACs",
                  cin, cout, 100 * wd, 100 * ad, first["cycles"], first_model, st["cycles"],
                  model_cycles, st["busy_sparse"], useful)
    write_result({"cycles_load": first["cycles"], "model_load": first_model,
                  "cycles": st["cycles"], "model_cycles": model_cycles,
                  "busy": st["busy_sparse"], "macs": useful, "stored": len(beats),
                  "peak": p.sparse.n_pe})
