"""3x3 convolution layer around the Winograd tile engine: line buffers, tiling, padding."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory

from ..common.params import Validated
from ..common.pipeline import in_range, select
from .engine import WinogradF23
from .params import WinogradParams
from .ports import signature

__all__ = ["WinogradConv"]

#: Row slots in the line buffer: four rows feed the current tile row while two more arrive.
ROW_SLOTS = 6


class WinogradConv(Validated, wiring.Component):
    r"""3x3 stride-1 convolution of an H x W x C feature map with K filters (Winograd F(2x2,3x3)).

    ::

        i_pixel (raster order) -> 6-row line buffer -> 4x4 windows, step 2 (zero outside
        the map: `same` padding and odd edges) -> one channel per beat -> WinogradF23 -> o

    Parameters
    ----------
    params : WinogradParams
        ``h_max``/``w_max`` size the line buffer; ``c_max``/``k_max``/widths as the engine.

    Members
    -------
    i_cfg : In(stream.Signature(StructLayout({height, width, channels, filters, same})))
        Layer shape: H in 1..h_max and W in 1..w_max with H', W' >= 1 (``valid``: H, W >= 3),
        C in 1..c_max, K in 1..k_max; ``same`` selects zero padding (H' = H) instead of
        ``valid`` (H' = H - 2). Accepted when the previous layer has been fully output.
        Invalid shapes set ``error`` and are ignored.
    i_filter : In(stream.Signature(...))
        K*C filters, exactly as :class:`~.engine.WinogradF23` takes them (k outer).
    i_pixel : In(stream.Signature(StructLayout({x, last})))
        The feature map in raster order (row 0 first, column 0 first), one pixel per beat:
        ``x`` has ``c_max`` lanes of signed ``data_width`` (lanes >= C ignored); ``last`` on
        pixel (H-1, W-1) (a mismatch sets ``error``). At most H*W pixels are taken.
    o : Out(stream.Signature(StructLayout({y, mask, last})))
        One beat per (output tile, filter): tiles in raster order over the 2x2 tile grid
        (ceil(H'/2) x ceil(W'/2)), filters 0..K-1 inner. Lane n of ``y`` is output pixel
        (2i + n // 2, 2j + n % 2) of filter k, signed ``acc_width``, wrapped; ``mask`` bit n
        says whether that pixel exists (odd H' or W' cut the last tile row/column);
        ``last`` on the layer's final beat.
    error : Out(1)
        Sticky malformed-input flag (this wrapper's or the engine's); reset clears it.

    With ``engines`` = E > 1, tiles go round-robin to E tile engines (the last round padded
    with all-zero tiles whose outputs are dropped) and the outputs are collected in the same
    order, so ``o`` is identical for every E.

    Throughput: each tile takes max(K*C / E, C + 5) cycles in steady state (window read plus
    one channel per cycle into an engine, overlapped with the engines' K*C cycles); pixels
    are taken one per cycle while the line buffer has room. Synchronous reset at any time
    returns to idle.
    """

    @classmethod
    def validate(cls, params):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        if not isinstance(params, WinogradParams):
            raise TypeError(f"params must be WinogradParams, not {params!r}")

    def __init__(self, params):
        self.params = p = params
        self.engines = [WinogradF23(p) for _ in range(p.engines)]
        self.engine = self.engines[0]
        super().__init__(signature(p))

    def manifest_info(self):
        """Return timing, protocol notes and port roles for the JSON manifest."""
        p = self.params
        return {
            "latency": {"engine_issue_to_o": self.engine.latency},
            "throughput": {
                "cycles_per_tile": f"max(K*C/{p.engines}, C+5) in steady state",
                "tile_engines": p.engines,
                "multipliers": 16 * p.engines,
                "direct_multiplies_equivalent_per_cycle": 36 * p.engines,
            },
            "protocol": [
                ("Send i_cfg (H, W, C, K, same) when idle, then K*C filters on i_filter "
                "(k outer, c inner), and the H x W pixels on i_pixel in raster order."),
                ("o: one beat per (2x2 output tile, filter): tiles in raster order, filters "
                "inner; lane n = output (2i + n//2, 2j + n%2); mask marks existing pixels."),
                "error is sticky: bad i_cfg values or a misplaced i_pixel.last; reset clears.",
            ],
            "roles": {
                "i_cfg": "layer shape: height, width, channels, filters, same padding",
                "i_filter": self.engine.manifest_info()["roles"]["i_filter"],
                "i_pixel": f"x: one pixel, {p.c_max} x signed {p.data_width}-bit channels; "
                           "last: final pixel",
                "o": f"y: 2x2 output tile, 4 x signed {p.acc_width}-bit; mask: existing "
                     "pixels; last: final beat of the layer",
                "error": "sticky malformed-input flag",
            },
        }

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.params
        engines = self.engines
        n_eng = len(engines)
        for e, eng in enumerate(engines):
            m.submodules[f"engine{e}"] = eng
        # Filters go to every engine at once (all engines hold the same K*C words).
        all_ready = Signal()
        m.d.comb += [all_ready.eq(Cat(e.i_filter.ready for e in engines).all()),
                     self.i_filter.ready.eq(all_ready)]
        for eng in engines:
            m.d.comb += [eng.i_filter.valid.eq(self.i_filter.valid & all_ready),
                         eng.i_filter.payload.eq(self.i_filter.payload)]
        error = Signal()
        m.d.comb += self.error.eq(Cat(error, *(e.error for e in engines)).any())

        # --- Layer shape -----------------------------------------------------------------
        height = Signal(range(p.h_max + 1))
        width = Signal(range(p.w_max + 1))
        channels = Signal(range(p.c_max + 1))
        filters = Signal(range(p.k_max + 1))
        same = Signal()
        active = Signal()           # a layer is configured and not yet fully output
        cfg_pending = Signal(n_eng)  # engines still to be configured
        engine_cfg_pending = Signal()
        m.d.comb += engine_cfg_pending.eq(cfg_pending.any())
        # Output size and the 2x2 tile grid.
        out_h = Signal(range(p.h_max + 1))
        out_w = Signal(range(p.w_max + 1))
        tiles_h = Signal(range(p.h_max // 2 + 2))
        tiles_w = Signal(range(p.w_max // 2 + 2))
        max_tiles = (p.h_max // 2 + 1) * (p.w_max // 2 + 1)
        total = Signal(range(max_tiles + 1))
        total_rows = Signal(range(p.h_max // 2 + 2))
        total_busy = Signal()

        cfg = self.i_cfg.payload
        pad = Mux(cfg.same, 0, 2)
        cfg_ok = ((cfg.height > pad) & in_range(cfg.height, 1, p.h_max) & (cfg.width > pad) &
                  in_range(cfg.width, 1, p.w_max) & in_range(cfg.channels, 1, p.c_max) &
                  in_range(cfg.filters, 1, p.k_max))
        m.d.comb += self.i_cfg.ready.eq(~active)
        with m.If(self.i_cfg.valid & ~active):
            with m.If(cfg_ok):
                oh = cfg.height - pad
                ow = cfg.width - pad
                m.d.sync += [
                    height.eq(cfg.height), width.eq(cfg.width), channels.eq(cfg.channels),
                    filters.eq(cfg.filters), same.eq(cfg.same), active.eq(1),
                    cfg_pending.eq((1 << n_eng) - 1), total_busy.eq(1), total.eq(0),
                    total_rows.eq((oh + 1) >> 1),
                    out_h.eq(oh), out_w.eq(ow),
                    tiles_h.eq((oh + 1) >> 1), tiles_w.eq((ow + 1) >> 1),
                ]
            with m.Else():
                m.d.sync += error.eq(1)
        for e, eng in enumerate(engines):
            m.d.comb += [
                eng.i_cfg.valid.eq(cfg_pending[e]),
                eng.i_cfg.payload.channels.eq(channels),
                eng.i_cfg.payload.filters.eq(filters),
            ]
            with m.If(eng.i_cfg.valid & eng.i_cfg.ready):
                m.d.sync += cfg_pending[e].eq(0)
        # Number of output tiles, tiles_h * tiles_w, by repeated addition (no multiplier):
        # one tile row per cycle, done long before the first tile can be formed.
        with m.If(total_busy):
            with m.If(total_rows == 0):
                m.d.sync += total_busy.eq(0)
            with m.Else():
                m.d.sync += [total.eq(total + tiles_w), total_rows.eq(total_rows - 1)]

        # --- Line buffer: six row slots, row r in slot r mod 6 ------------------------------
        pix_row = data.ArrayLayout(signed(p.data_width), p.c_max)
        slots = []
        for s in range(ROW_SLOTS):
            mem = Memory(shape=pix_row, depth=p.w_max, init=[])
            m.submodules[f"row{s}"] = mem
            slots.append((mem.write_port(), mem.read_port(transparent_for=())))

        in_row = Signal(range(p.h_max + 1))
        in_col = Signal(range(p.w_max))
        in_slot = Signal(range(ROW_SLOTS))
        # Rows below `free_below` are no longer needed by the tile former.
        free_below = Signal(signed(len(in_row) + 2))
        room = in_row < free_below + ROW_SLOTS
        px_take = Signal()
        m.d.comb += [
            self.i_pixel.ready.eq(active & ~engine_cfg_pending & (in_row < height) & room),
            px_take.eq(self.i_pixel.valid & self.i_pixel.ready),
        ]
        for s, (wr, _) in enumerate(slots):
            m.d.comb += [wr.en.eq(px_take & (in_slot == s)), wr.addr.eq(in_col),
                         wr.data.eq(self.i_pixel.payload.x)]
        last_col = in_col == width - 1
        last_pixel = last_col & (in_row == height - 1)
        with m.If(px_take):
            with m.If(self.i_pixel.payload.last != last_pixel):
                m.d.sync += error.eq(1)
            m.d.sync += in_col.eq(Mux(last_col, 0, in_col + 1))
            with m.If(last_col):
                m.d.sync += [in_row.eq(in_row + 1),
                             in_slot.eq(Mux(in_slot == ROW_SLOTS - 1, 0, in_slot + 1))]

        # --- Tile former: read a 4x4 window, then one channel per beat to the engine --------
        ti = Signal(range(p.h_max // 2 + 2))
        tj = Signal(range(p.w_max // 2 + 2))
        row0 = Signal(signed(len(in_row) + 2))      # first window row: 2*ti - P
        col0 = Signal(signed(len(in_col) + 2))      # first window column: 2*tj - P
        base_slot = Signal(range(ROW_SLOTS))        # slot of row0 (mod 6)
        rd_col = Signal(range(5))
        cap_col = Signal(range(4))
        cap_en = Signal()
        window = Signal(data.ArrayLayout(pix_row, 16))
        chan = Signal(range(max(2, p.c_max)))
        last_tile = (ti == tiles_h - 1) & (tj == tiles_w - 1)

        # Rows the current tile row needs: row0 .. row0+3, the ones that exist.
        need = Mux(row0 + 4 > height, height, row0 + 4)
        m.d.comb += free_below.eq(row0)

        col_addr = col0 + rd_col
        col_ok = Signal()
        m.d.comb += col_ok.eq((col_addr >= 0) & (col_addr < width))
        for _, rd in slots:
            m.d.comb += rd.addr.eq(Mux(col_ok, col_addr[:len(rd.addr)], 0))
        # One cycle after issuing a column read, capture the four rows of that column.
        cap_ok = Signal()
        m.d.sync += [cap_en.eq(0), cap_ok.eq(col_ok)]
        read_data = [rd.data.as_value() for _, rd in slots]
        for rr in range(4):
            slot = Signal(range(ROW_SLOTS), name=f"slot{rr}")
            m.d.comb += slot.eq(Mux(base_slot + rr >= ROW_SLOTS, base_slot + rr - ROW_SLOTS,
                                    base_slot + rr))
            row_ok = (row0 + rr >= 0) & (row0 + rr < height)
            value = Mux(row_ok & cap_ok, select(read_data, slot), 0)
            with m.If(cap_en):
                for cc in range(4):
                    with m.If(cap_col == cc):
                        m.d.sync += window[rr * 4 + cc].eq(value)

        # Round-robin over the engines. The last round is padded with all-zero tiles so every
        # engine gets the same number of tiles, and every tile of the last round carries
        # `end` (each engine's final tile of the layer).
        tgt = Signal(range(max(2, n_eng)))
        round_base = Signal(range(max_tiles + n_eng + 1))
        final_round = Signal()
        padding = Signal()      # emitting padding tiles after the last real one
        emit = Signal()
        m.d.comb += final_round.eq(total - round_base <= n_eng)
        tile_ready = select([e.i_tile.ready for e in engines], tgt)
        for e, eng in enumerate(engines):
            tile = eng.i_tile.payload
            for n in range(16):
                m.d.comb += tile.d[n].eq(Mux(padding, 0, select(list(window[n]), chan)))
            m.d.comb += [
                eng.i_tile.valid.eq(emit & (tgt == e)),
                tile.last.eq(chan == channels - 1),
                tile.end.eq((chan == channels - 1) & final_round),
            ]
        tgt_wraps = tgt == n_eng - 1
        next_tgt = [tgt.eq(Mux(tgt_wraps, 0, tgt + 1))]
        with m.If(emit & tile_ready & (chan == channels - 1)):
            m.d.sync += next_tgt
            with m.If(tgt_wraps):
                m.d.sync += round_base.eq(round_base + n_eng)

        # Tile former states; DRAIN is the Default arm, so every encoding is covered.
        idle_s, wait_s, read_s, emit_s, drain_s = range(5)
        state = Signal(range(5), name="former_state")
        with m.Switch(state):
            with m.Case(idle_s):
                with m.If(active & ~engine_cfg_pending & ~total_busy):
                    m.d.sync += [ti.eq(0), tj.eq(0), row0.eq(Mux(same, -1, 0)),
                                 tgt.eq(0), round_base.eq(0), padding.eq(0),
                                 col0.eq(Mux(same, -1, 0)),
                                 base_slot.eq(Mux(same, ROW_SLOTS - 1, 0)), state.eq(wait_s)]
            with m.Case(wait_s):
                with m.If(in_row >= need):
                    m.d.sync += [rd_col.eq(0), state.eq(read_s)]
            with m.Case(read_s):
                # Cycles 0..3 issue column reads; captures land one cycle later.
                with m.If(rd_col != 4):
                    m.d.sync += [rd_col.eq(rd_col + 1), cap_en.eq(1), cap_col.eq(rd_col)]
                with m.Else():
                    m.d.sync += [chan.eq(0), state.eq(emit_s)]
            with m.Case(emit_s):
                m.d.comb += emit.eq(1)
                with m.If(tile_ready):
                    m.d.sync += chan.eq(chan + 1)
                    with m.If(chan == channels - 1):
                        with m.If(padding | last_tile):
                            # After the last real tile, pad the round with zero tiles.
                            m.d.sync += [padding.eq(1), chan.eq(0)]
                            with m.If(tgt_wraps):
                                m.d.sync += state.eq(drain_s)
                        with m.Elif(tj == tiles_w - 1):
                            m.d.sync += [
                                tj.eq(0), ti.eq(ti + 1), row0.eq(row0 + 2),
                                col0.eq(Mux(same, -1, 0)),
                                base_slot.eq(Mux(base_slot >= ROW_SLOTS - 2,
                                                 base_slot + 2 - ROW_SLOTS, base_slot + 2)),
                                state.eq(wait_s),
                            ]
                        with m.Else():
                            m.d.sync += [tj.eq(tj + 1), col0.eq(col0 + 2), rd_col.eq(0),
                                         state.eq(read_s)]
            with m.Default():
                # DRAIN: wait until the layer's last output has left.
                with m.If(~active):
                    m.d.sync += state.eq(idle_s)

        # --- Output: collect round-robin, drop padding tiles, add mask and last -----------
        oe = Signal(range(max(2, n_eng)))
        out_n = Signal(range(max_tiles + n_eng + 1))
        oi = Signal.like(ti)
        oj = Signal.like(tj)
        ok = Signal(range(max(2, p.k_max)))
        real_out = out_n < total
        src_valid = select([e.o.valid for e in engines], oe)
        src = select([e.o.payload.as_value() for e in engines], oe)
        m.d.comb += [
            self.o.valid.eq(src_valid & real_out),
            self.o.payload.y.eq(src[:len(self.o.payload.y.as_value())]),
        ]
        for e, eng in enumerate(engines):
            m.d.comb += eng.o.ready.eq((oe == e) & (self.o.ready | ~real_out))
        row1_ok = (oi << 1) + 1 < out_h
        col1_ok = (oj << 1) + 1 < out_w
        m.d.comb += self.o.payload.mask.eq(Cat(Const(1, 1), col1_ok, row1_ok, row1_ok & col1_ok))
        last_k = ok == filters - 1
        out_last = (oi == tiles_h - 1) & (oj == tiles_w - 1) & last_k
        m.d.comb += self.o.payload.last.eq(out_last)
        take = src_valid & (self.o.ready | ~real_out)
        all_in = in_row == height
        layer_done = Signal()
        with m.If(take):
            m.d.sync += ok.eq(Mux(last_k, 0, ok + 1))
            with m.If(last_k):
                m.d.sync += [out_n.eq(out_n + 1), oe.eq(Mux(oe == n_eng - 1, 0, oe + 1)),
                             oj.eq(Mux(oj == tiles_w - 1, 0, oj + 1))]
                with m.If(oj == tiles_w - 1):
                    m.d.sync += oi.eq(oi + 1)
                # The layer ends with the last tile of the (padded) final round.
                with m.If((out_n + 1 >= total) & (oe == n_eng - 1)):
                    m.d.sync += [layer_done.eq(1), out_n.eq(0), oe.eq(0), oi.eq(0), oj.eq(0)]
        with m.If(layer_done & all_in):
            m.d.sync += [layer_done.eq(0), active.eq(0), in_row.eq(0), in_col.eq(0),
                         in_slot.eq(0)]
        return m
