"""UART transmitter into receiver in the Amaranth simulator, and the receiver's error cases."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from npugen.rtl.link import UartRx, UartTx
from npugen.sim.flow.pysim import recv, send


class Loop(wiring.Component):
    """UartTx wired to UartRx."""

    def __init__(self, divisor):
        self.tx = UartTx(divisor)
        self.rx = UartRx(divisor)
        super().__init__({})

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        m.submodules.tx, m.submodules.rx = self.tx, self.rx
        m.d.comb += self.rx.rx.eq(self.tx.tx)
        return m


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_loopback(divisor, seed):
    rng = random.Random(seed)
    data = [0x00, 0xFF, 0xA5, 0x5A] + [rng.randrange(256) for _ in range(40)]
    dut = Loop(divisor)
    got = []

    async def producer(ctx):
        await send(ctx, dut.tx.i, data, rng, 0.3)

    async def consumer(ctx):
        got.extend(int(b) for b in await recv(ctx, dut.rx.o, len(data), rng, 0.0))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert got == data


def test_framing_error_drops_the_byte():
    divisor = 8
    dut = UartRx(divisor)
    seen = {"bytes": [], "framing": 0}

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for byte, stop in ((0x3C, 0), (0x81, 1)):
            for bit in [0, *((byte >> k) & 1 for k in range(8)), stop, 1, 1]:
                ctx.set(dut.rx, bit)
                for _ in range(divisor):
                    _, _, valid, payload, framing = await ctx.tick().sample(
                        dut.o.valid, dut.o.payload, dut.framing_error)
                    seen["framing"] += framing
                    if valid:
                        seen["bytes"].append(int(payload))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == {"bytes": [0x81], "framing": 1}


def test_wrong_divisor():
    with pytest.raises(ValueError, match="divisor must be in 4..65535, not 2"):
        UartTx(2)


def test_wrong_buffer():
    from amaranth.hdl import Fragment

    from npugen.rtl.link import HostLink
    from npugen.rtl.sparse import SparseMatVec, SparseParams

    block = SparseMatVec(SparseParams())
    with pytest.raises(ValueError, match=r"buffer_bytes must be in 5\.\.65535, not 4"):
        HostLink(block, divisor=8, buffer_bytes=4)
    with pytest.raises(TypeError, match="counters must be a bool, not int"):
        HostLink(block, divisor=8, counters=1)
    Fragment.get(block, None)  # used: no "unused elaboratable" warning
