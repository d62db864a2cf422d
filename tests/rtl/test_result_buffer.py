"""Credit-counted result buffer in the Amaranth simulator: order, credits, backpressure."""

import random

import pytest
from amaranth.lib import data
from amaranth.sim import Simulator

from npugen.rtl.common.result_buffer import ResultBuffer


# can_reserve needs depth >= 3 * max_reserve to ever be set.
@pytest.mark.parametrize(("depth", "gate"), [(d, "free") for d in (1, 2, 3, 16, 23)]
                         + [(d, "can_reserve") for d in (3, 4, 16, 23)])
def test_order_and_credits_under_random_traffic(depth, gate, seed):
    """Credits hold under random reservations, fixed-latency writes and backpressure.

    Nothing is lost, reordered or duplicated, ``free`` always equals depth - reserved -
    held, and ``can_reserve`` never promises a slot that is not free.
    """
    rng = random.Random(seed)
    latency = 5
    dut = ResultBuffer(data.ArrayLayout(16, 2), depth=depth, max_reserve=1)
    n = 400
    got = []

    async def bench(ctx):
        pending = []  # (write cycle, word)
        sent = 0
        held = 0  # reserved and not yet popped
        for cycle in range(20 * n):
            free = ctx.get(dut.free)
            assert free == depth - held, (cycle, free, held)
            can = ctx.get(dut.can_reserve)
            assert not can or free >= 1, (cycle, free)
            reserve = (sent < n and (free > 0 if gate == "free" else can)
                       and rng.random() < 0.7)
            ctx.set(dut.reserve, reserve)
            if reserve:
                pending.append((cycle + latency, [sent & 0xFFFF, (sent * 7) & 0xFFFF]))
                sent += 1
                held += 1
            if pending and pending[0][0] == cycle:
                ctx.set(dut.w_en, 1)
                ctx.set(dut.w_data, pending.pop(0)[1])
            else:
                ctx.set(dut.w_en, 0)
            ready = rng.random() < 0.5
            ctx.set(dut.o.ready, ready)
            if ready and ctx.get(dut.o.valid):
                got.append(list(ctx.get(dut.o.payload)))
                held -= 1
            await ctx.tick()
            if len(got) == n:
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == [[i & 0xFFFF, (i * 7) & 0xFFFF] for i in range(n)]


def test_read_latency():
    dut = ResultBuffer(data.ArrayLayout(8, 1), depth=4, max_reserve=1)

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.reserve, 1)
        await ctx.tick()
        ctx.set(dut.reserve, 0)
        ctx.set(dut.w_en, 1)
        ctx.set(dut.w_data, [42])
        await ctx.tick()
        ctx.set(dut.w_en, 0)
        for _ in range(ResultBuffer.read_latency - 1):
            assert not ctx.get(dut.o.valid)
            await ctx.tick()
        assert ctx.get(dut.o.valid) and list(ctx.get(dut.o.payload)) == [42]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_wrong_ram():
    with pytest.raises(ValueError, match="ram must be one of inferred, ecp5, not 'lut'"):
        ResultBuffer(data.ArrayLayout(8, 1), depth=4, max_reserve=1, ram="lut")


def test_ecp5_ram_depth_limit():
    ResultBuffer.validate(data.ArrayLayout(8, 1), depth=512, max_reserve=1, ram="ecp5")
    with pytest.raises(ValueError, match="depth must be at most 512 with ram=ecp5, not 513"):
        ResultBuffer(data.ArrayLayout(8, 1), depth=513, max_reserve=1, ram="ecp5")
