"""Winograd transforms in the Amaranth simulator against the numpy stage functions."""

import numpy as np
import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from npugen.rtl.winograd import (
    FilterTransform2D,
    InputTransform2D,
    OutputTransform2D,
    WinogradParams,
)
from npugen.rtl.winograd.ports import filter_transform_cycles
from npugen.rtl.winograd.transforms import filter_1d, input_1d, output_1d
from npugen.sim.models import winograd as wg
from npugen.sim.models.intmath import signed_range

INT8 = range(-128, 128)


class OneD(wiring.Component):
    """Test harness around a 1-D kernel."""

    def __init__(self, kernel, n_in, n_out, width):
        self._kernel = kernel
        super().__init__({"x": In(signed(width)).array(n_in),
                          "y": Out(signed(width + 4)).array(n_out)})

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        m.d.comb += [y.eq(v) for y, v in zip(self.y, self._kernel(list(self.x)), strict=True)]
        return m


def _comb(dut, bench):
    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


def test_input_1d_exhaustive():
    """X = (i, i, j, j) puts every int8 pair on each output's two inputs."""
    dut = OneD(input_1d, 4, 4, 8)

    async def bench(ctx):
        for i in INT8:
            for j in INT8:
                for lane, v in zip(dut.x, (i, i, j, j), strict=True):
                    ctx.set(lane, v)
                got = [ctx.get(y) for y in dut.y]
                assert got == (wg.BT @ np.array([i, i, j, j])).tolist(), (i, j)
    _comb(dut, bench)


def test_filter_1d_all_pairs(seed):
    """Every (g0, g1) pair, with g2 cycling through all values, against G' g."""
    dut = OneD(filter_1d, 3, 4, 8)

    async def bench(ctx):
        for i in INT8:
            for j in INT8:
                g = (i, j, (i * 7 + j * 13 + seed) % 256 - 128)
                for lane, v in zip(dut.x, g, strict=True):
                    ctx.set(lane, v)
                assert [ctx.get(y) for y in dut.y] == (wg.G2 @ np.array(g)).tolist(), g
    _comb(dut, bench)


def test_output_1d_random(seed):
    rng = np.random.default_rng(seed)
    dut = OneD(output_1d, 4, 2, 24)

    async def bench(ctx):
        for _ in range(3000):
            m = rng.integers(-(1 << 23), 1 << 23, 4)
            for lane, v in zip(dut.x, m, strict=True):
                ctx.set(lane, int(v))
            assert [ctx.get(y) for y in dut.y] == (wg.AT @ m).tolist()
    _comb(dut, bench)


def _stack(rng, n, shape, lo, hi):
    vals = rng.integers(lo, hi + 1, (n, *shape))
    vals[0] = lo
    vals[1] = hi
    return vals


@pytest.mark.parametrize("data_width", [8, 4, 12])
def test_2d_transforms_against_stage_functions(data_width, seed):
    rng = np.random.default_rng(seed)
    p = WinogradParams(data_width=data_width)
    lo, hi = signed_range(data_width)
    it, ft = InputTransform2D(p), FilterTransform2D(p)
    m_width = p.m_width
    ot = OutputTransform2D(m_width)
    assert ot.latency == 0
    top = Module()
    top.submodules += [it, ft, ot]

    async def bench(ctx):
        for d in _stack(rng, 1000, (4, 4), lo, hi):
            ctx.set(it.i, [int(v) for v in d.flatten()])
            assert [ctx.get(it.o[n]) for n in range(16)] == \
                wg.input_transform(p, d).flatten().tolist()
        for g in _stack(rng, 1000, (3, 3), lo, hi):
            ctx.set(ft.i, [int(v) for v in g.flatten()])
            assert [ctx.get(ft.o[n]) for n in range(16)] == \
                wg.filter_transform(p, g).flatten().tolist()
        for _ in range(1000):
            # M from real data so that A^T M A = 4Y stays within m_width.
            g = rng.integers(lo, hi + 1, (3, 3))
            d = rng.integers(lo, hi + 1, (4, 4))
            mm = wg.filter_transform(p, g) * wg.input_transform(p, d)
            ctx.set(ot.i, [int(v) for v in mm.flatten()])
            assert [ctx.get(ot.o[n]) for n in range(4)] == \
                (4 * wg.output_transform(mm)).flatten().tolist()
    sim = Simulator(top)
    sim.add_testbench(bench)
    sim.run()


def _check_one_cycle_late(dut, inputs, expected):
    """Each input set before an edge shows its ``expected`` output after it, and only then.

    After the check the input is zeroed: ``o`` must not follow ``i`` combinationally.
    """
    assert dut.latency == 1

    async def bench(ctx):
        for x in inputs:
            ctx.set(dut.i, [int(v) for v in x.flatten()])
            await ctx.tick()
            want = expected(x)
            assert [ctx.get(dut.o[n]) for n in range(len(want))] == want
            ctx.set(dut.i, [0] * len(dut.i))
            assert [ctx.get(dut.o[n]) for n in range(len(want))] == want
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_registered_output_transform_one_cycle_late(seed):
    """4Y modulo 2**width, with the column pass wrapped to ``width``.

    The inputs cover the whole signed range, so the intermediate sums really overflow.
    """
    rng = np.random.default_rng(seed)
    width = 20
    lo, hi = signed_range(width)

    def wrap(v):
        return int(((v - lo) % (1 << width)) + lo)

    _check_one_cycle_late(OutputTransform2D(width, registered=True),
                          _stack(rng, 1000, (4, 4), lo, hi),
                          lambda mm: [wrap(v) for v in (wg.AT @ mm @ wg.AT.T).flatten()])


def test_split_output_transform_three_cycles_late(seed):
    """``split``: a new tile every cycle, each one's 4Y modulo 2**width three cycles later.

    Full-range inputs, so every step's partial sums overflow; a different tile in every
    cycle, so an output one cycle early or late would show the wrong tile's result.
    """
    rng = np.random.default_rng(seed)
    width = 20
    lo, hi = signed_range(width)

    def wrap(v):
        return int(((v - lo) % (1 << width)) + lo)

    dut = OutputTransform2D(width, registered=True, split=True)
    assert dut.latency == 3
    tiles = _stack(rng, 500, (4, 4), lo, hi)
    want = [[wrap(v) for v in (wg.AT @ mm @ wg.AT.T).flatten()] for mm in tiles]
    assert _stream_three_late(dut, tiles, 4) == want


def _stream_three_late(dut, inputs, lanes):
    """Drive a new input every cycle; return ``o`` three registers after each input.

    After the edge ending cycle t, ``o`` shows input t - 2 (t - 3 relative to the next
    edge's inputs); three more inputs flush the pipeline.
    """
    seen = []

    async def bench(ctx):
        for x in [*inputs, *inputs[:3]]:
            ctx.set(dut.i, [int(v) for v in x.flatten()])
            await ctx.tick()
            seen.append([ctx.get(dut.o[n]) for n in range(lanes)])
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen[2:2 + len(inputs)]


@pytest.mark.parametrize("data_width", [8, 12])
def test_split_filter_transform_three_cycles_late(data_width, seed):
    """``split``: a new filter every cycle, each one's U' three cycles later, extremes in."""
    rng = np.random.default_rng(seed)
    p = WinogradParams(data_width=data_width)
    lo, hi = signed_range(data_width)
    dut = FilterTransform2D(p, registered=True, split=True)
    assert dut.latency == 3 == filter_transform_cycles(WinogradParams(primitives="ecp5"))
    filters = [np.full((3, 3), lo), np.full((3, 3), hi), *_stack(rng, 500, (3, 3), lo, hi)]
    want = [wg.filter_transform(p, g).flatten().tolist() for g in filters]
    assert _stream_three_late(dut, filters, 16) == want


def test_split_needs_registered():
    with pytest.raises(ValueError, match="split=True needs registered=True"):
        OutputTransform2D(20, split=True)
    with pytest.raises(ValueError, match="split=True needs registered=True"):
        FilterTransform2D(WinogradParams(), split=True)


@pytest.mark.parametrize("data_width", [8, 12])
def test_registered_filter_transform_one_cycle_late(data_width, seed):
    """U' of the previous cycle's g, extremes included."""
    rng = np.random.default_rng(seed)
    p = WinogradParams(data_width=data_width)
    lo, hi = signed_range(data_width)
    _check_one_cycle_late(FilterTransform2D(p, registered=True),
                          _stack(rng, 1000, (3, 3), lo, hi),
                          lambda g: wg.filter_transform(p, g).flatten().tolist())


def test_registered_input_transform_one_cycle_late(seed):
    """V of the previous cycle's d, extremes included."""
    rng = np.random.default_rng(seed)
    p = WinogradParams()
    lo, hi = signed_range(p.data_width)
    _check_one_cycle_late(InputTransform2D(p, registered=True),
                          _stack(rng, 1000, (4, 4), lo, hi),
                          lambda d: wg.input_transform(p, d).flatten().tolist())
