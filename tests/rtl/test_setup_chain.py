"""The per-instruction product chain (``serial_setup``) in the Amaranth simulator.

Random operands, a step that reads an earlier step's result, ``then`` functions, a constant
and a one-bit narrow operand; every result and the cycle count of ``done`` compared with
Python's products.
"""

import random

import pytest
from amaranth.hdl import Const, Module, Signal
from amaranth.sim import Simulator

from npugen.rtl.npu.setup import PREVIOUS, ProductChain, Step


@pytest.mark.parametrize("trial", range(4))
def test_products_and_cycles(seed, trial):
    rng = random.Random(f"{seed}-{trial}")
    m = Module()
    x, y, z = Signal(10), Signal(8), Signal(4)
    p1, p2, p3 = Signal(18), Signal(22), Signal(24)
    p4, p5, one = Signal(12), Signal(10), Signal(1)
    chain = ProductChain(m, [Step(p1, x, y), Step(p2, p1, z),
                             Step(p3, x, z, lambda prod: p2 - prod + 1),
                             Step(p4, x, Const(3, 2)), Step(p5, x, one)], "t")
    assert chain.cycles == (8 + 1) + (4 + 1) + (4 + 1) + (2 + 1) + (1 + 1)
    vx, vy, vz = rng.randrange(1 << 10), rng.randrange(1 << 8), rng.randrange(1 << 4)
    vo = rng.randrange(2)
    seen = {}

    async def bench(ctx):
        ctx.set(x, vx)
        ctx.set(y, vy)
        ctx.set(z, vz)
        ctx.set(one, vo)
        await ctx.tick()
        ctx.set(chain.start, 1)
        await ctx.tick()
        ctx.set(chain.start, 0)
        for cycle in range(1, 50):
            if ctx.get(chain.done):
                seen.setdefault("done", []).append(cycle)
            await ctx.tick()
        seen["values"] = (ctx.get(p1), ctx.get(p2), ctx.get(p3), ctx.get(p4), ctx.get(p5))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    v1 = vx * vy
    v2 = (v1 * vz) % (1 << 22)
    v3 = (v2 - vx * vz + 1) % (1 << 24)
    assert seen["values"] == (v1, v2, v3, 3 * vx, vo * vx)
    assert seen["done"] == [chain.cycles]  # once, that many cycles after the start cycle


def test_a_result_handed_to_the_next_step(seed):
    """``PREVIOUS``: a step without ``dest`` hands its result to the next one's ``a``."""
    rng = random.Random(seed)
    m = Module()
    x, y, z = Signal(6), Signal(5), Signal(3)
    out, flag = Signal(16), Signal()
    chain = ProductChain(m, [Step(None, x, y, lambda prod: (prod + 1)[:12]),
                             Step(out, PREVIOUS, z, a_bits=12),
                             Step(None, x, z, lambda prod: prod[:9]),
                             Step(flag, PREVIOUS, y, lambda prod: prod > 200, a_bits=9)], "t")
    assert chain.cycles == (5 + 1) + (3 + 1) + (3 + 1) + (5 + 1)
    vx, vy, vz = rng.randrange(1 << 6), rng.randrange(1 << 5), rng.randrange(1 << 3)
    seen = {}

    async def bench(ctx):
        ctx.set(x, vx)
        ctx.set(y, vy)
        ctx.set(z, vz)
        await ctx.tick()
        ctx.set(chain.start, 1)
        await ctx.tick()
        ctx.set(chain.start, 0)
        await ctx.tick().repeat(chain.cycles + 2)
        seen["values"] = (ctx.get(out), ctx.get(flag))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen["values"] == ((vx * vy + 1) * vz, int(vx * vz * vy > 200))
