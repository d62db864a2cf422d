"""Pipeline helpers in the Amaranth simulator: the memory-backed delay line, ``in_range``."""

import random
import re

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from npugen.rtl.common.pipeline import in_range, ram_delay
from npugen.rtl.common.ram import BufferRam
from npugen.rtl.systolic import WsArray
from npugen.rtl.systolic.params import SystolicParams
from npugen.sim.flow.pysim import simulate


@pytest.mark.parametrize("block_ram", [None, BufferRam.INFERRED], ids=["lutram", "blockram"])
@pytest.mark.parametrize("cycles", [1, 2, 3, 4, 17, 18])
def test_ram_delay_is_exactly_cycles_late(cycles, block_ram, seed):
    """Every input value comes out exactly ``cycles`` clock edges later."""
    m = Module()
    value = Signal(signed(13))
    out = ram_delay(m, value, cycles, name="line", block_ram=block_ram)
    rng = random.Random(seed)
    sent = [rng.randrange(-(1 << 12), 1 << 12) for _ in range(3 * cycles + 20)]

    async def bench(ctx):
        history = []
        for step, v in enumerate(sent):
            ctx.set(value, v)
            history.append(v)
            if step >= cycles:
                # the value set ``cycles`` edges ago (the register loaded on those edges)
                assert ctx.get(out) == history[step - cycles], (cycles, step)
            await ctx.tick()

    simulate(m, bench)


def _memories(top):
    """Names of the memories declared in ``top``'s RTLIL."""
    return re.findall(r"^ *memory width \d+ size \d+ \\(\S+)$", rtlil.convert(top), re.M)


def test_ws_partial_sums_wait_in_memory_except_on_ice40():
    """The 8x8 array's partial sums use one memory (DP16KD with result_ram=ecp5).

    The iCE40 build keeps registers.
    """
    assert any(n.endswith("psum_delay") for n in _memories(WsArray(SystolicParams())))
    ecp5 = rtlil.convert(WsArray(SystolicParams(multiplier="ecp5", result_ram="ecp5")))
    modules = {m.split()[0]: m for m in ecp5.split("\nmodule ")[1:]}
    (delay_line,) = [text for name, text in modules.items() if name.endswith(".psum_delay")]
    assert delay_line.count("cell \\DP16KD ") == 8  # 256 bits in 512 x 36 blocks
    ice40 = WsArray(SystolicParams(rows=4, cols=4, multiplier="ice40"))
    assert not any(n.endswith("psum_delay") for n in _memories(ice40))


@pytest.mark.parametrize("table", [False, True], ids=["compare", "table"])
@pytest.mark.parametrize(("width", "lo", "hi"), [(5, 1, 16), (5, 0, 31), (3, 2, 5), (4, 1, 15),
                                                 (6, 7, 7), (7, 1, 64)])
def test_in_range_every_value(width, lo, hi, table):
    """``lo <= v <= hi`` for every value of the field, as comparisons and as a lookup.

    The lookup is for fields of up to 6 bits: a 7-bit one falls back to comparisons.
    """
    m = Module()
    field = Signal(width)
    ok = Signal()
    m.d.comb += ok.eq(in_range(field, lo, hi, table=table))
    got = []

    async def bench(ctx):
        for v in range(1 << width):
            ctx.set(field, v)
            got.append(ctx.get(ok))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert got == [int(lo <= v <= hi) for v in range(1 << width)]
