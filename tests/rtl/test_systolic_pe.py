"""PE and multiplier in the Amaranth simulator, exhaustive over all int8 x int8 pairs."""

import random

import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.sim import Simulator

from npugen.rtl.systolic import InferredMultiplier, OsPE, SystolicParams, WsPE
from npugen.rtl.systolic.mul import FabricMultiplier, attach_multipliers
from npugen.sim.models.intmath import signed_range

PAIRS = [(a, b) for b in range(-128, 128) for a in range(-128, 128)]


def py_wrap(x, bits):
    x &= (1 << bits) - 1
    return x - (1 << bits) if x >> (bits - 1) else x


class _WithMultiplier(Elaboratable):
    """A PE with the multiplier its parameters select attached, as the arrays do."""

    def __init__(self, pe, params):
        self.pe, self.params = pe, params

    def elaborate(self, platform):
        m = Module()
        m.submodules.pe = self.pe
        attach_multipliers(m, self.params, [self.pe])
        return m


def _run(dut, bench, params=None):
    sim = Simulator(_WithMultiplier(dut, params) if params is not None else dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_multiplier_exhaustive():
    dut = InferredMultiplier(8, 8)
    assert dut.latency == 1

    async def bench(ctx):
        for a, b in PAIRS:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            await ctx.tick()
            # One register: the product of the operands present at the edge.
            assert ctx.get(dut.p) == a * b, (a, b)
    _run(dut, bench)


def test_ws_pe_exhaustive_with_wrapping_psum(seed):
    """psum_out = wrap16(psum_in + a*w) for every (a, w); weights swap back to back."""
    rng = random.Random(seed)
    p = SystolicParams(acc_width=16)
    dut = WsPE(p)
    lat = InferredMultiplier.latency
    n = len(PAIRS)
    psums = [rng.randrange(-(1 << 15), 1 << 15) for _ in range(n)]

    async def bench(ctx):
        # Cycle -1: shadow <- w of block 0. Vector i enters a_in in cycle i, its psum in
        # cycle i+1+lat, its sum is on psum_out in cycle i+2+lat.
        ctx.set(dut.w_shift, 1)
        ctx.set(dut.w_in, PAIRS[0][1])
        await ctx.tick()
        for i in range(n + 2 + lat):
            ctx.set(dut.w_shift, 0)
            if i < n:
                a, w = PAIRS[i]
                ctx.set(dut.a_in, a)
                ctx.set(dut.swap_in, i % 256 == 0)
                if i % 256 == 10 and i + 246 < n:
                    # Load the next weight while this one computes (double buffering).
                    ctx.set(dut.w_shift, 1)
                    ctx.set(dut.w_in, PAIRS[i + 246][1])
            else:
                ctx.set(dut.swap_in, 0)
            j = i - 1 - lat
            if 0 <= j < n:
                ctx.set(dut.psum_in, psums[j])
            k = i - 2 - lat
            if 0 <= k < n:
                a, w = PAIRS[k]
                assert ctx.get(dut.psum_out) == py_wrap(psums[k] + a * w, 16), (a, w, psums[k])
            await ctx.tick()
    _run(dut, bench, p)


def test_os_pe_exhaustive_products_and_random_sums(seed):
    """K = 1 tiles give every product; then random-length tiles check accumulation."""
    rng = random.Random(seed)
    p = SystolicParams(acc_width=16, dataflow="os")
    dut = OsPE(p)
    lat = InferredMultiplier.latency
    beats = [(a, b, 1, 1) for a, b in PAIRS]  # (a, b, first, last)
    tiles = []
    for _ in range(300):
        k = rng.randint(1, 40)
        terms = [(rng.randint(-128, 127), rng.randint(-128, 127)) for _ in range(k)]
        tiles.append(terms)
        beats += [(a, b, int(t == 0), int(t == k - 1)) for t, (a, b) in enumerate(terms)]
    expected = [a * b for a, b in PAIRS] + [py_wrap(sum(a * b for a, b in t), 16) for t in tiles]

    async def bench(ctx):
        got = []
        for i in range(len(beats) + 2 + lat):
            if i < len(beats):
                a, b, first, last = beats[i]
                ctx.set(dut.a_in, a)
                ctx.set(dut.b_in, b)
                ctx.set(dut.first_in, first)
                ctx.set(dut.last_in, last)
            else:
                ctx.set(dut.first_in, 0)
                ctx.set(dut.last_in, 0)
            if ctx.get(dut.done):
                got.append(ctx.get(dut.acc))
            await ctx.tick()
        assert got == [py_wrap(e, 16) for e in expected]
    _run(dut, bench, p)


@pytest.mark.parametrize(("a_width", "b_width", "latency"),
                         [(8, 8, 5), (8, 8, 3), (8, 8, 7), (5, 7, 5), (16, 16, 5), (3, 2, 4)])
def test_fabric_multiplier_exact(a_width, b_width, latency, seed):
    """Every int8 pair (a sample for wider operands), products ``latency`` cycles late."""
    dut = FabricMultiplier(a_width, b_width, latency=latency)
    (lo_a, _), (lo_b, _) = signed_range(a_width), signed_range(b_width)
    if a_width + b_width <= 16:
        pairs = [(a, b) for b in range(lo_b, -lo_b) for a in range(lo_a, -lo_a)]
    else:
        rng = random.Random(seed)
        pairs = [(lo_a, lo_b), (lo_a, -lo_b - 1), (-lo_a - 1, lo_b), (-lo_a - 1, -lo_b - 1)]
        pairs += [(rng.randrange(lo_a, -lo_a), rng.randrange(lo_b, -lo_b)) for _ in range(4000)]

    async def bench(ctx):
        for n in range(len(pairs) + latency):
            if n < len(pairs):
                ctx.set(dut.a, pairs[n][0])
                ctx.set(dut.b, pairs[n][1])
            await ctx.tick()
            # After the edge that ends cycle n, p holds the product of cycle n + 1 - latency.
            k = n + 1 - latency
            if 0 <= k < len(pairs):
                a, b = pairs[k]
                assert ctx.get(dut.p) == a * b, (a, b, n)
    _run(dut, bench)


def test_fabric_multiplier_latency_floor():
    with pytest.raises(ValueError, match=r"latency must be in 3\.\.64, not 2"):
        FabricMultiplier(8, 8, latency=2)
