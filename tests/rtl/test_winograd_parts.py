"""The pieces of the Winograd layer and tile engine, each alone in the Amaranth simulator."""

import random

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring

from npugen.rtl.winograd import WinogradParams
from npugen.rtl.winograd.engine_parts import FilterStore, InputBanks, TileMac
from npugen.rtl.winograd.layer_parts import (
    ROW_SLOTS,
    Collector,
    LayerShape,
    LineBuffer,
    TileFormer,
)
from npugen.sim.flow.pysim import recv, send, simulate
from npugen.sim.formats.winograd import cfg_beat, filter_beats, pixel_beats, tile_beats
from npugen.sim.models.winograd import (
    conv2d_direct,
    filter_transform,
    input_transform,
    output_shape,
    tile_origins,
)


@pytest.mark.parametrize(("h", "w", "padding", "engines"),
                         [(5, 7, "same", 1), (6, 6, "valid", 3), (1, 1, "same", 2)])
def test_layer_shape(h, w, padding, engines):
    p = WinogradParams(c_max=4, k_max=3, h_max=8, w_max=8, engines=engines)
    dut = LayerShape(p)
    seen = {}

    async def bench(ctx):
        await send(ctx, dut.i_cfg, [cfg_beat(p, h, w, 3, 2, padding)])
        assert ctx.get(dut.active) and not ctx.get(dut.i_cfg.ready)
        assert ctx.get(dut.engine_cfg) == (1 << engines) - 1
        ctx.set(dut.engine_cfg_ready, 1)  # engine 0 takes its configuration
        await ctx.tick()
        assert ctx.get(dut.engine_cfg) == ((1 << engines) - 1) & ~1
        ctx.set(dut.engine_cfg_ready, (1 << engines) - 1)
        await ctx.tick()
        seen["engines_ready"] = ctx.get(dut.engines_ready)
        for _ in range(8):
            await ctx.tick()
        s = dut.shape
        seen.update(counted=ctx.get(dut.counted), total=ctx.get(s.total),
                    out=(ctx.get(s.out_h), ctx.get(s.out_w)),
                    tiles=(ctx.get(s.tiles_h), ctx.get(s.tiles_w)))
        ctx.set(dut.finish, 1)
        await ctx.tick()
        ctx.set(dut.finish, 0)
        seen["idle"] = not ctx.get(dut.active) and ctx.get(dut.i_cfg.ready)
        # An impossible shape is consumed, sets error, changes nothing.
        await send(ctx, dut.i_cfg, [cfg_beat(p, 2, 8, 1, 1, "valid")])
        await ctx.tick()
        seen["error"] = ctx.get(dut.error)
        seen["still_idle"] = not ctx.get(dut.active)

    simulate(dut, bench)
    ho, wo = output_shape(h, w, padding)
    th, tw = -(-ho // 2), -(-wo // 2)
    assert seen == {"engines_ready": 1, "counted": 1, "total": th * tw, "out": (ho, wo),
                    "tiles": (th, tw), "idle": True, "error": 1, "still_idle": True}


def test_line_buffer_holds_six_rows_and_reads_columns(seed):
    p = WinogradParams(c_max=2, k_max=1, h_max=9, w_max=5)
    dut = LineBuffer(p)
    x = np.random.default_rng(seed).integers(-128, 128, (9, 5, 2))
    got = {}

    async def bench(ctx):
        ctx.set(dut.height, 9)
        ctx.set(dut.width, 5)
        ctx.set(dut.accept, 1)
        ctx.set(dut.free_limit, ROW_SLOTS)  # the window at row 0
        beats = pixel_beats(p, x)

        async def feed(ctx):
            await send(ctx, dut.i_pixel, beats)

        # With rows below 0 in use, six rows fit: the seventh row waits.
        for beat in beats[:6 * 5]:
            await send(ctx, dut.i_pixel, [beat])
        await ctx.tick().repeat(3)
        got["full"] = (ctx.get(dut.in_row), ctx.get(dut.i_pixel.ready))
        ctx.set(dut.free_limit, 3 + ROW_SLOTS)  # rows 0..2 done: three more rows fit
        await send(ctx, dut.i_pixel, beats[6 * 5:])
        await ctx.tick()
        got["all_in"] = ctx.get(dut.all_in)
        # Rows 3..6 sit in slots 3, 4, 5, 0; read each column.
        ctx.set(dut.rd_base, 3)
        cols = []
        for c in range(5):
            ctx.set(dut.rd_addr, c)
            await ctx.tick()
            cols.append([[int(v) for v in ctx.get(dut.rd_rows[r])] for r in range(4)])
        got["cols"] = cols
        ctx.set(dut.clear, 1)
        await ctx.tick()
        got["cleared"] = ctx.get(dut.in_row)

    simulate(dut, bench)
    assert got["full"] == (ROW_SLOTS, 0)
    assert got["all_in"] == 1 and got["cleared"] == 0
    assert got["cols"] == [[x[3 + r, c].tolist() for r in range(4)] for c in range(5)]


def test_line_buffer_flags_a_misplaced_last():
    p = WinogradParams(c_max=1, k_max=1, h_max=4, w_max=4)
    dut = LineBuffer(p)
    flags = []

    async def bench(ctx):
        ctx.set(dut.height, 4)
        ctx.set(dut.width, 4)
        ctx.set(dut.accept, 1)
        await send(ctx, dut.i_pixel, [{"x": [1], "last": 0}] * 3)
        flags.append(ctx.get(dut.error))
        await send(ctx, dut.i_pixel, [{"x": [1], "last": 1}])
        await ctx.tick()
        flags.append(ctx.get(dut.error))

    simulate(dut, bench)
    assert flags == [0, 1]


@pytest.mark.parametrize("bad", [None, 1, 2])
def test_line_buffer_one_column_rows_back_to_back(bad):
    # Width 1: every pixel ends a row, so the row flags step on every beat (each taken the
    # cycle after the one before); a ``last`` anywhere but on the final pixel is an error.
    p = WinogradParams(c_max=1, k_max=1, h_max=6, w_max=4)
    dut = LineBuffer(p)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.height, 4)
        ctx.set(dut.width, 1)
        await ctx.tick()
        ctx.set(dut.accept, 1)
        beats = [{"x": [k + 1], "last": int(k == (3 if bad is None else bad))}
                 for k in range(4)]
        edges = 0
        for beat in beats:
            ctx.set(dut.i_pixel.payload, beat)
            ctx.set(dut.i_pixel.valid, 1)
            while True:
                edges += 1
                _, _, ready = await ctx.tick().sample(dut.i_pixel.ready)
                if ready:
                    break
        # A fifth pixel right behind the fourth: the map is in, it waits.
        ctx.set(dut.i_pixel.payload, {"x": [9], "last": 1})
        readies = []
        for _ in range(3):
            _, _, ready = await ctx.tick().sample(dut.i_pixel.ready)
            readies.append(ready)
        ctx.set(dut.i_pixel.valid, 0)
        seen["edges"] = edges
        seen["error"] = ctx.get(dut.error)
        seen["all_in"] = ctx.get(dut.all_in)
        seen["fifth_ready"] = readies
        ctx.set(dut.rd_base, 0)
        ctx.set(dut.rd_addr, 0)
        await ctx.tick()
        seen["column"] = [int(ctx.get(dut.rd_rows[r])[0]) for r in range(4)]

    simulate(dut, bench)
    assert seen == {"edges": 4, "error": int(bad is not None), "all_in": 1,
                    "fifth_ready": [0, 0, 0], "column": [1, 2, 3, 4]}


class _Windows(wiring.Component):
    """LayerShape, LineBuffer and TileFormer wired as in the layer, engines left out."""

    def __init__(self, p):
        self.p = p
        self.shape = LayerShape(p)
        self.lines = LineBuffer(p)
        self.former = TileFormer(p)
        super().__init__({"i_cfg": wiring.In(self.shape.i_cfg.signature.flip()),
                          "i_pixel": wiring.In(self.lines.i_pixel.signature.flip()),
                          "tile": wiring.Out(self.former.tile.signature),
                          "target": wiring.Out(self.former.target.shape())})

    def elaborate(self, platform):
        m = Module()
        m.submodules.shape, m.submodules.lines = self.shape, self.lines
        m.submodules.former = former = self.former
        shape, lines, s = self.shape, self.lines, self.shape.shape
        wiring.connect(m, wiring.flipped(self.i_cfg), shape.i_cfg)
        wiring.connect(m, wiring.flipped(self.i_pixel), lines.i_pixel)
        wiring.connect(m, former.tile, wiring.flipped(self.tile))
        m.d.comb += [
            shape.engine_cfg_ready.eq(shape.engine_cfg), self.target.eq(former.target),
            lines.height.eq(s.height), lines.width.eq(s.width),
            lines.accept.eq(shape.active & shape.engines_ready),
            lines.free_limit.eq(former.free_limit), lines.rd_addr.eq(former.rd_addr),
            lines.rd_base.eq(former.rd_base), former.shape.eq(s),
            former.in_row.eq(lines.in_row), former.rd_rows.eq(lines.rd_rows),
            former.active.eq(shape.active),
            former.start.eq(shape.active & shape.engines_ready & shape.counted),
        ]
        return m


@pytest.mark.parametrize(("h", "w", "padding", "engines"),
                         [(7, 6, "same", 2), (6, 5, "valid", 1), (2, 3, "same", 3)])
def test_tile_former_emits_every_window_round_robin(h, w, padding, engines, seed):
    p = WinogradParams(c_max=3, k_max=1, h_max=8, w_max=8, engines=engines)
    dut = _Windows(p)
    rng = random.Random(seed)
    x = np.random.default_rng(seed).integers(-128, 128, (h, w, 3))
    ho, wo = output_shape(h, w, padding)
    tiles = tile_origins(ho, wo)
    rounds = -(-len(tiles) // engines)
    got = []

    async def config(ctx):
        await send(ctx, dut.i_cfg, [cfg_beat(p, h, w, 3, 1, padding)])
        await send(ctx, dut.i_pixel, pixel_beats(p, x), rng, 0.3)

    async def collect(ctx):
        beats = rounds * engines * 3
        for _ in range(beats):
            target = None
            while True:
                ctx.set(dut.tile.ready, rng.random() < 0.7)
                _, _, valid, ready, payload, target = await ctx.tick().sample(
                    dut.tile.valid, dut.tile.ready, dut.tile.payload, dut.target)
                if valid and ready:
                    break
            got.append((target, [int(v) for v in payload.d], int(payload.last),
                        int(payload.end)))

    simulate(dut, collect, background=[config])
    pad = 1 if padding == "same" else 0
    xp = np.zeros((h + 4, w + 4, 3), dtype=np.int64)
    xp[pad:pad + h, pad:pad + w] = x
    want = []
    for n in range(rounds * engines):
        i, j = tiles[n] if n < len(tiles) else (None, None)
        for c in range(3):
            d = [0] * 16 if i is None else xp[i:i + 4, j:j + 4, c].flatten().tolist()
            want.append((n % engines, d, int(c == 2), int(c == 2 and n >= (rounds - 1) * engines)))
    assert got == want


def test_collector_drops_padding_and_adds_mask_and_last():
    p = WinogradParams(c_max=1, k_max=2, h_max=8, w_max=8, engines=2)
    dut = Collector(p)
    got = []
    # A 3x5 'same' layer: 2 x 3 = 6 output tiles, K = 2: engine 0 gets tiles 0, 2, 4 and
    # engine 1 tiles 1, 3, 5; then a 1x1 layer: 1 tile plus engine 1's padding tile.
    layers = [(3, 5, 6), (1, 1, 1)]

    def feeder(e):
        async def feed(ctx):
            for _, _, total in layers:
                own = [n for n in range(-(-total // 2) * 2) if n % 2 == e]
                beats = [{"y": [n * 10 + k] * 4, "last": int(k == 1)}
                         for n in own for k in range(2)]
                await send(ctx, getattr(dut, f"i_{e}"), beats)
        return feed

    async def bench(ctx):
        ctx.set(dut.counted, 1)
        for h, w, total in layers:
            s = dut.shape
            th, tw = -(-h // 2), -(-w // 2)
            for name, value in (("out_h", h), ("out_w", w), ("tiles_h", th), ("tiles_w", tw),
                                ("total", total), ("filters", 2)):
                ctx.set(getattr(s, name), value)
            beats = await recv(ctx, dut.o, total * 2)
            ctx.set(dut.o.ready, 0)  # the next layer's shape comes first
            got.append([([int(v) for v in b.y], int(b.mask), int(b.last)) for b in beats])
            await ctx.tick().until(dut.done)
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)

    simulate(dut, bench, background=[feeder(0), feeder(1)])
    masks = {(0, 0): 0xF, (0, 1): 0xF, (0, 2): 0b0101, (1, 0): 0b0011, (1, 1): 0b0011,
             (1, 2): 0b0001}
    want0 = [([n * 10 + k] * 4, masks[divmod(n, 3)], int(n == 5 and k == 1))
             for n in range(6) for k in range(2)]
    assert got[0] == want0
    assert got[1] == [([k] * 4, 0b0001, int(k == 1)) for k in range(2)]


@pytest.mark.parametrize("filter_input", ["raw", "transformed"])
def test_filter_store_transforms_and_stops_at_kc(filter_input, seed):
    p = WinogradParams(c_max=3, k_max=2, filter_input=filter_input)
    dut = FilterStore(p)
    g = np.random.default_rng(seed).integers(-128, 128, (2, 3, 3, 3))
    words = []

    async def bench(ctx):
        ctx.set(dut.chan_last, 2)
        ctx.set(dut.filt_last, 1)
        ctx.set(dut.enable, 1)
        beats = filter_beats(p, g)
        await send(ctx, dut.i_filter, beats)
        assert not ctx.get(dut.i_filter.ready), "K*C words taken: no more"
        # Raw filters: the transform's column pass adds a cycle before the write.
        for _ in range(1 if filter_input == "raw" else 0):
            assert not ctx.get(dut.loaded)
            await ctx.tick()
        assert not ctx.get(dut.loaded)
        await ctx.tick()
        assert ctx.get(dut.loaded), "loaded the cycle after the last write"
        for a in range(6):
            ctx.set(dut.rd_addr, a)
            await ctx.tick()
            words.append([int(v) for v in ctx.get(dut.rd_data)])
        ctx.set(dut.restart, 1)
        await ctx.tick()
        assert not ctx.get(dut.loaded) and ctx.get(dut.i_filter.ready)

    simulate(dut, bench)
    assert words == [filter_transform(p, g[k, c]).flatten().tolist()
                     for k in range(2) for c in range(3)]


def test_input_banks_transform_alternate_and_flag_errors(seed):
    p = WinogradParams(c_max=3, k_max=1)
    dut = InputBanks(p)
    tiles = np.random.default_rng(seed).integers(-128, 128, (3, 4, 4, 3))
    seen = {}

    async def bench(ctx):
        ctx.set(dut.chan_last, 2)
        ctx.set(dut.restart, 1)
        await ctx.tick()
        ctx.set(dut.restart, 0)
        beats = tile_beats(p, tiles)
        await send(ctx, dut.i_tile, beats[:6])  # two tiles: both banks full
        await ctx.tick()
        seen["full"] = ctx.get(dut.full)
        seen["blocked"] = not ctx.get(dut.i_tile.ready)
        banks = []
        for bank in (0, 1):
            ctx.set(dut.rd_bank, bank)
            for c in range(3):
                ctx.set(dut.rd_chan, c)
                await ctx.tick()
                banks.append([int(v) for v in ctx.get(dut.rd_data)])
        seen["banks"] = banks
        ctx.set(dut.release, 0b01)
        await ctx.tick()
        ctx.set(dut.release, 0)
        seen["after_release"] = ctx.get(dut.full)
        bad = [dict(b) for b in beats[6:]]
        bad[0]["last"] = 1  # channel 0 claims to end the tile
        await send(ctx, dut.i_tile, bad)
        await ctx.tick()
        seen["error"] = ctx.get(dut.error)
        seen["closed"] = not ctx.get(dut.i_tile.ready) and ctx.get(dut.busy)

    simulate(dut, bench)
    want = [input_transform(p, tiles[t][:, :, c]).flatten().tolist()
            for t in range(2) for c in range(3)]
    assert seen == {"full": 0b11, "blocked": True, "banks": want, "after_release": 0b10,
                    "error": 1, "closed": True}


def test_tile_mac_against_registered_memories(seed):
    """TileMac alone: the test plays the filter store and input banks (one-cycle reads)."""
    p = WinogradParams(c_max=3, k_max=2)
    dut = TileMac(p)
    nrng = np.random.default_rng(seed)
    g = nrng.integers(-128, 128, (2, 3, 3, 3))
    tiles = nrng.integers(-128, 128, (2, 4, 4, 3))
    u = filter_transform(p, g).reshape(6, 16)
    v = [input_transform(p, np.moveaxis(t, 2, 0)).reshape(3, 16) for t in tiles]
    out = []

    async def environment(ctx):
        # Registered reads and the bank flags, updated on each clock edge as the real
        # filter store and input banks do.
        full = 0b11
        ctx.set(dut.full, full)
        async for _, _, ua, vb, vc, rel, wen, y, last in ctx.tick().sample(
                dut.u_addr, dut.v_bank, dut.v_chan, dut.release, dut.w_en, dut.w_data.y,
                dut.w_data.last):
            ctx.set(dut.u_data, [int(w) for w in u[ua % 6]])
            ctx.set(dut.v_data, [int(w) for w in v[vb][vc % 3]])
            full &= ~rel
            ctx.set(dut.full, full)
            if wen:
                out.append(([int(w) for w in y], int(last)))

    async def bench(ctx):
        ctx.set(dut.chan_last, 2)
        ctx.set(dut.filt_last, 1)
        ctx.set(dut.can_start, 1)
        ctx.set(dut.start_layer, 1)
        await ctx.tick()
        ctx.set(dut.start_layer, 0)
        ctx.set(dut.filters_loaded, 1)
        await ctx.tick().repeat(40)

    simulate(dut, bench, background=[environment])
    want = [(conv2d_direct(p, t, g)[:, :, k].flatten().tolist(), int(k == 1))
            for t in tiles for k in range(2)]
    assert out == want
