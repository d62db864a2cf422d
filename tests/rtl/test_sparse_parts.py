"""The pieces of the sparse engine and its PE, each alone in the Amaranth simulator."""

import random

import numpy as np
import pytest
from amaranth.hdl import Module, Signal

from npugen.rtl.sparse import CfgOp, SparseParams
from npugen.rtl.sparse.engine_parts import ActivationInput, ConfigWriter, Readout
from npugen.rtl.sparse.pe_parts import Accumulator, ColumnFetch, EntryWalker, difference_is
from npugen.sim.flow.pysim import recv, send, simulate
from npugen.sim.formats.sparse import act_beats
from npugen.sim.models.intmath import wrap


def _cfg(op, pe, addr, value):
    return {"op": op, "pe": pe, "addr": addr, "data": value}


def test_config_writer_routes_writes_and_rejects_fields():
    p = SparseParams(n_pe=3, rows_max=20, cols_max=10, entries_max=100)
    dut = ConfigWriter(p)
    log = []
    beats = [
        (_cfg(CfgOp.SHAPE, 0, 12, 7), "shape"),
        (_cfg(CfgOp.POINTER, 2, 10, 100), "ptr"),
        (_cfg(CfgOp.ENTRY, 1, 99, 255), "entry"),
        (_cfg(CfgOp.CODEBOOK, 0, 15, 0xFFFF), "codebook"),
        (_cfg(CfgOp.CODEBOOK, 0, 16, 1), "bad"),
        (_cfg(CfgOp.POINTER, 3, 0, 0), "bad"),
        (_cfg(CfgOp.POINTER, 0, 11, 0), "bad"),
        (_cfg(CfgOp.POINTER, 0, 0, 101), "bad"),
        (_cfg(CfgOp.ENTRY, 0, 100, 0), "bad"),
        (_cfg(CfgOp.ENTRY, 0, 0, 256), "bad"),
        (_cfg(CfgOp.SHAPE, 0, 21, 1), "bad"),
        (_cfg(CfgOp.SHAPE, 0, 1, 0), "bad"),
    ]

    def flags(ctx):
        f = dut.col_flags
        return tuple(ctx.get(getattr(f, f"{b}_{k}")) for b in ("first", "second", "third")
                     for k in ("mask", "last"))

    async def bench(ctx):
        # Lane flags of the maximum, 10 columns in beats of 4: lanes 0-3 | 4-7 | 8-9, last.
        assert flags(ctx) == (0b1111, 0, 0b1111, 0, 0b0011, 1)
        for beat, kind in beats:
            ctx.set(dut.cfg, beat)
            ctx.set(dut.fire, 1)
            await ctx.tick()
            ctx.set(dut.fire, 0)
            for _ in range(dut.LATENCY - 1):
                await ctx.tick()
            # The write strobes come LATENCY cycles after the beat, with the beat's address
            # and data.
            strobes = (ctx.get(dut.ptr_en), ctx.get(dut.entry_en), ctx.get(dut.codebook.valid))
            assert (ctx.get(dut.addr), ctx.get(dut.data)) == (beat["addr"], beat["data"])
            await ctx.tick()
            assert (ctx.get(dut.ptr_en), ctx.get(dut.entry_en),
                    ctx.get(dut.codebook.valid)) == (0, 0, 0)
            log.append((kind, strobes, ctx.get(dut.error), ctx.get(dut.rows), ctx.get(dut.cols)))
            # 7 columns: lanes 0-3 | 4-6, last | none (past the end); kept by bad beats.
            assert flags(ctx) == (0b1111, 0, 0b0111, 1, 0, 1), kind

    simulate(dut, bench)
    assert log[0] == ("shape", (0, 0, 0), 0, 12, 7)
    assert log[1][1] == (0b100, 0, 0) and log[2][1] == (0, 0b010, 0)
    assert log[3][1] == (0, 0, 1) and log[3][2] == 0
    for kind, strobes, error, rows, cols in log[4:]:
        assert strobes == (0, 0, 0) and error == 1 and (rows, cols) == (12, 7), kind


@pytest.mark.parametrize("lanes", [1, 3, 4])
def test_activation_input_sends_each_nonzero_once_in_order(lanes, seed):
    p = SparseParams(cols_max=20, act_lanes=lanes)
    dut = ActivationInput(p)
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    vectors = [np.where(nrng.random(17) < 0.4, nrng.integers(-128, 128, 17), 0),
               np.zeros(17, dtype=int), nrng.integers(1, 128, 17)]
    got = []

    async def bench(ctx):
        ctx.set(dut.cols, 17)
        # The configuration writer's flags for 17 columns, from the definition.
        for b, name in enumerate(("first", "second", "third")):
            ctx.set(getattr(dut.col_flags, f"{name}_mask"),
                    sum(1 << k for k in range(lanes) if 17 > k + b * lanes))
            ctx.set(getattr(dut.col_flags, f"{name}_last"), int(17 <= (b + 1) * lanes))
        await ctx.tick()  # cols settles a cycle before a vector (the engine sees to it)
        ctx.set(dut.enable, 1)
        ctx.set(dut.accept, 1)
        for x in vectors:
            await send(ctx, dut.i_act, act_beats(p, x), rng, 0.3)
            # The beats pass a three-beat input FIFO: done once the last one has left it.
            await ctx.tick().until(dut.done & dut.empty)
            ctx.set(dut.restart, 1)
            await ctx.tick()
            ctx.set(dut.restart, 0)
            assert not ctx.get(dut.done)
        beats = act_beats(p, vectors[0])  # 17 columns: more than one beat
        beats[0] = {**beats[0], "last": 1}
        await send(ctx, dut.i_act, beats)
        await ctx.tick().until(dut.done & dut.empty)
        got.append(("error", ctx.get(dut.error)))

    async def queues(ctx):
        async for _, _, valid, col, act in ctx.tick().sample(
                dut.item.valid, dut.item.payload.col, dut.item.payload.act):
            ctx.set(dut.queues_ready, rng.random() < 0.7)
            if valid:
                got.append((col, act))

    simulate(dut, bench, background=[queues])
    want = [(j, int(v)) for x in [*vectors, vectors[0]] for j, v in enumerate(x) if v]
    want.append(("error", 1))
    assert got == want


@pytest.mark.parametrize("relu", [False, True])
def test_readout_reads_every_row_in_order_and_clears(relu, seed):
    p = SparseParams(n_pe=3, rows_max=11, acc_width=16, relu=relu)
    dut = Readout(p)
    rng = random.Random(seed)
    acc = np.random.default_rng(seed).integers(-(1 << 15), 1 << 15, (3, 4))
    cleared = []

    async def accumulators(ctx):
        # Each PE's accumulator RAM: the word at acc_addr two clock edges later.
        addr_d = 0
        async for _, _, addr, en, to, last in ctx.tick().sample(
                dut.acc_addr, dut.clear_en, dut.clear_to, dut.last_issued):
            if last:
                ctx.set(dut.read, 0)  # as the engine leaves its readout phase
            for n in range(3):
                ctx.set(dut.acc_data[n], int(acc[n][addr_d]))
                if (en >> n) & 1:
                    cleared.append((n, to))
            addr_d = addr

    async def bench(ctx):
        ctx.set(dut.rows, 10)
        await ctx.tick()  # the readout phase follows another phase of the engine
        ctx.set(dut.read, 1)
        words = await recv(ctx, dut.o, 10, rng, 0.4)
        got = [(int(w.y), int(w.last)) for w in words]
        want = [(int(acc[i % 3][i // 3]), int(i == 9)) for i in range(10)]
        if relu:
            want = [(max(y, 0), last) for y, last in want]
        assert got == want

    simulate(dut, bench, background=[accumulators])
    assert sorted(cleared) == sorted((i % 3, i // 3) for i in range(10))


def test_column_fetch_reads_pointers_and_checks_them(seed):
    p = SparseParams(cols_max=6, entries_max=20, queue_depth=2)
    dut = ColumnFetch(p)
    rng = random.Random(seed)
    ptr = [0, 3, 3, 9, 8, 20, 21]  # column 3 decreases, column 5 passes entries_max
    items = [(j, 10 + j) for j in (0, 3, 1, 5, 2, 4)]
    got = []

    async def bench(ctx):
        for j, v in enumerate(ptr):
            ctx.set(dut.ptr_w, {"en": 1, "addr": j, "data": v})
            await ctx.tick()
        ctx.set(dut.ptr_w.en, 0)
        await send(ctx, dut.q, [{"col": j, "act": a} for j, a in items], rng, 0.3)

    async def walker(ctx):
        beats = await recv(ctx, dut.column, len(items), rng, 0.5)
        got.extend((int(b.start), int(b.act), int(b.ok), int(b.count),
                    int(b.size0), int(b.size1), int(b.size2)) for b in beats)

    simulate(dut, walker, background=[bench])
    want = [(ptr[j], a, int(ptr[j] <= ptr[j + 1] <= 20),
             (ptr[j + 1] - ptr[j]) % (1 << p.ptr_width), *(int(ptr[j + 1] - ptr[j] == n)
                                                           for n in range(3)))
            for j, a in items]
    assert got == want


def test_difference_is_matches_a_subtraction_for_every_pair():
    width = 5
    end, start = Signal(width), Signal(width)
    m = Module()
    flags = [Signal(name=f"is{k}") for k in range(4)]
    m.d.comb += [f.eq(difference_is(end, start, k, width)) for k, f in enumerate(flags)]
    m.d.sync += Signal().eq(1)  # a clock domain for the shared simulate()
    wrong = []

    async def bench(ctx):
        for e in range(1 << width):
            for s in range(1 << width):
                ctx.set(end, e)
                ctx.set(start, s)
                got = [ctx.get(f) for f in flags]
                want = [int((e - s) % (1 << width) == k) for k in range(4)]
                if got != want:
                    wrong.append((e, s, got, want))

    simulate(m, bench)
    assert wrong == []


@pytest.mark.parametrize("depth", [1, 2, 3, 8])
def test_column_fetch_predicts_its_queue_ready(depth, seed):
    """``room_next`` is the next cycle's ``q.ready`` in every cycle (the engine registers it).

    Offers and takes at random, also offers while the queue is full (no write then).
    """
    p = SparseParams(cols_max=6, entries_max=20, queue_depth=depth)
    dut = ColumnFetch(p)
    rng = random.Random(seed)
    seen = []

    async def bench(ctx):
        for _ in range(400):
            ctx.set(dut.q.valid, rng.random() < 0.7)
            ctx.set(dut.q.payload, {"col": rng.randrange(6), "act": rng.randrange(-128, 128)})
            ctx.set(dut.column.ready, rng.random() < 0.3)
            _, _, room_next = await ctx.tick().sample(dut.room_next)
            seen.append((room_next, ctx.get(dut.q.ready)))

    simulate(dut, bench)
    assert [a for a, b in seen if a != b] == [], "room_next must equal the next q.ready"
    assert {b for _, b in seen} == {0, 1}, "the queue must both fill and have room"


def test_entry_walker_reads_every_entry_without_bubbles(seed):
    p = SparseParams(entries_max=32)
    dut = EntryWalker(p)
    entries = list(np.random.default_rng(seed).integers(0, 256, 32))
    columns = [(0, 3, 5), (3, 3, 6), (3, 4, -7), (4, 9, 8), (9, 2, 1), (9, 12, -1),
               (12, 14, 4), (20, 22, 3), (22, 23, 2)]  # sizes 0, 1 and 2 after busy and idle
    got, cycles = [], []

    async def bench(ctx):
        for a, e in enumerate(entries):
            ctx.set(dut.entry_w, {"en": 1, "addr": a, "data": int(e)})
            await ctx.tick()
        ctx.set(dut.entry_w.en, 0)
        # As the fetch sends them: the entry count and its size flags worked out.
        beats = [{"start": s, "count": (e - s) % (1 << p.ptr_width),
                  "size0": int(e == s), "size1": int(e - s == 1), "size2": int(e - s == 2),
                  "act": a, "ok": int(s <= e)} for s, e, a in columns]
        await send(ctx, dut.column, beats)
        await ctx.tick().repeat(6)
        got.append(("error", ctx.get(dut.error)))

    async def monitor(ctx):
        n = 0
        async for _, _, valid, entry, first, act, active in ctx.tick().sample(
                dut.o.valid, dut.o.payload.entry, dut.o.payload.first, dut.o.payload.act,
                dut.active):
            n += 1
            if active:
                cycles.append(n)
            if valid:
                got.append((int(entry), int(first), int(act)))

    simulate(dut, bench, background=[monitor])
    want = [(int(entries[k]), int(k == s), a) for s, e, a in columns if s <= e
            for k in range(s, e)]
    assert got == want + [("error", 1)]
    # Consecutive columns follow each other with no idle cycle between their entries.
    runs = np.diff(cycles)
    assert (runs == 1).sum() >= len(cycles) - 3, cycles


def test_accumulator_adds_products_exactly_and_wraps(seed):
    p = SparseParams(n_pe=1, rows_max=6, acc_width=16)
    dut = Accumulator(p)
    nrng = np.random.default_rng(seed)
    pairs = [(int(r), int(w), int(a)) for r, w, a in zip(
        nrng.integers(0, 6, 40), nrng.integers(-32768, 32768, 40), nrng.integers(-128, 128, 40),
        strict=True)]
    pairs += [(2, -32768, -128)] * 3  # back-to-back hits on one row, wrapping
    pairs += [(3, 1000, 7), (4, -5, 9), (3, -2000, 100)]  # a hit two pairs apart
    gapped = [(int(r), int(w), int(a)) for r, w, a in zip(
        nrng.integers(0, 3, 30), nrng.integers(-32768, 32768, 30), nrng.integers(-128, 128, 30),
        strict=True)]
    rng = random.Random(seed)
    got = []

    async def bench(ctx):
        for n in range(6):
            ctx.set(dut.clear, {"en": 1, "addr": n})
            await ctx.tick()
        ctx.set(dut.clear.en, 0)
        await send(ctx, dut.i, [{"row": r, "weight": w, "act": a} for r, w, a in pairs])
        # Hits across idle cycles (the forwarding counts cycles, not pairs).
        await send(ctx, dut.i, [{"row": r, "weight": w, "act": a} for r, w, a in gapped],
                   rng, 0.4)
        ctx.set(dut.i.valid, 0)
        await ctx.tick().repeat(dut.LATENCY)
        assert not ctx.get(dut.busy)
        ctx.set(dut.readout, 1)
        for n in range(7):  # the word at an address comes two clock edges later
            ctx.set(dut.acc_addr, min(n, 5))
            await ctx.tick()
            if n >= 1:
                got.append(ctx.get(dut.acc_data))

    simulate(dut, bench)
    want = np.zeros(6, dtype=np.int64)
    for r, w, a in pairs + gapped:
        want[r] += w * a
    assert got == wrap(want, 16).tolist()
