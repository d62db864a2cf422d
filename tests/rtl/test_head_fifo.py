"""HeadFifo against Amaranth's SyncFIFOBuffered(depth=3), cycle by cycle, in the simulator."""

import random

import pytest
from amaranth.hdl import Module, ResetInserter, Signal
from amaranth.lib import fifo

from npugen.rtl.common.head_fifo import HeadFifo
from npugen.sim.flow.pysim import simulate


@pytest.mark.parametrize("p_write, p_read", [(0.9, 0.3), (0.5, 0.5), (0.3, 0.9), (1.0, 1.0)])
def test_head_fifo_matches_sync_fifo_buffered(p_write, p_read, seed):
    """Same ``w_rdy``, ``r_rdy``, ``r_data`` and level in every cycle, with random handshakes.

    ``SyncFIFOBuffered(depth=3)`` is the reference (HeadFifo promises its cycles); the
    stored beat the head loads next (``next_data``) is checked against a list of what is
    inside, and ``to_head`` (here: the beat plus one) is applied on the way into the head.
    Reset mid-stream, then both are empty.
    """
    rng = random.Random(seed)
    m = Module()
    rst = Signal()
    dut = HeadFifo(8, 9, lambda word: word + 1)
    ref = fifo.SyncFIFOBuffered(width=8, depth=3)
    m.submodules.dut = ResetInserter(rst)(dut)
    m.submodules.ref = ResetInserter(rst)(ref)
    cycles = []

    async def bench(ctx):
        inside = []  # beats written and not yet read, oldest first
        for cycle in range(600):
            if cycle == 400:  # reset mid-stream (with a write and a read offered): empty
                ctx.set(rst, 1)
                await ctx.tick()
                ctx.set(rst, 0)
                inside.clear()
                assert ctx.get(dut.w_rdy) and not ctx.get(dut.r_rdy)
                assert not ctx.get(dut.pending) and not ctx.get(dut.next_valid)
                continue
            w_en, r_en = rng.random() < p_write, rng.random() < p_read
            data = rng.randrange(256)
            for f in (dut, ref):
                ctx.set(f.w_en, w_en)
                ctx.set(f.w_data, data)
                ctx.set(f.r_en, r_en)
            got = (ctx.get(dut.w_rdy), ctx.get(dut.r_rdy), ctx.get(dut.pending))
            want = (ctx.get(ref.w_rdy), ctx.get(ref.r_rdy), int(ctx.get(ref.level) != 0))
            assert got == want, (cycle, got, want)
            if want[1]:
                assert ctx.get(dut.r_data) == ctx.get(ref.r_data) + 1, cycle
            held = len(inside) - want[1]  # beats in the slots
            assert ctx.get(dut.next_valid) == (held > 0), cycle
            if held:
                assert ctx.get(dut.next_data) == inside[want[1]], cycle
            if r_en and want[1]:
                inside.pop(0)
            if w_en and want[0]:
                inside.append(data)
            cycles.append((w_en and want[0], r_en and want[1]))
            await ctx.tick()

    simulate(m, bench)
    writes = sum(w for w, _ in cycles)
    reads = sum(r for _, r in cycles)
    assert writes > 50 and reads > 50, (writes, reads)  # the run moved beats both ways
