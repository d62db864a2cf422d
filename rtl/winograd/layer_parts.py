"""The pieces of :class:`~.layer.WinogradConv`: layer shape, line buffer, tile former, collector.

::

    i_cfg ---> LayerShape --(shape, engine configuration)---------------------------+
    i_pixel -> LineBuffer (6 row slots) <--(column reads)-- TileFormer --(tiles)--> engines
    engines' o ---------------------------------------------------------> Collector -> o

All four share :func:`shape_layout`, the registered layer shape. Their control decides from
registers; no piece waits for ``ready`` before raising ``valid``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..common.pipeline import in_range, next_wrapping, select
from .ports import cfg_layout, engine_out_layout, out_layout, pixel_layout, tile_layout

__all__ = ["ROW_SLOTS", "Collector", "LayerShape", "LineBuffer", "TileFormer", "shape_layout"]

#: Row slots in the line buffer: four rows feed the current tile row while two more arrive.
ROW_SLOTS = 6


def _max_tiles(p):
    return (p.h_max // 2 + 1) * (p.w_max // 2 + 1)


def shape_layout(p):
    """Return the configured layer: input and output shape, padding, tile grid, tile count."""
    return data.StructLayout({
        "height": range(p.h_max + 1), "width": range(p.w_max + 1),
        "channels": range(p.c_max + 1), "filters": range(p.k_max + 1), "same": 1,
        "out_h": range(p.h_max + 1), "out_w": range(p.w_max + 1),
        "tiles_h": range(p.h_max // 2 + 2), "tiles_w": range(p.w_max // 2 + 2),
        "total": range(_max_tiles(p) + 1),
    })


def _row_layout(p):
    return data.ArrayLayout(signed(p.data_width), p.c_max)


class LayerShape(wiring.Component):
    """Takes ``i_cfg``, holds the layer's shape, configures the tile engines, counts tiles.

    Members
    -------
    i_cfg : In(stream.Signature(cfg_layout))
        Accepted while no layer is active and no engine output waits (the second holds
        whenever the first does; it keeps a waiting output's shape fixed, which the formal
        stream proof relies on). A shape out of range (H or W outside 1..max or
        below 3 with ``valid`` padding, C or K outside 1..max) is consumed, sets ``error`` and
        changes nothing.
    shape : Out(shape_layout)
        The active layer's shape; ``total`` (tiles_h x tiles_w, by repeated addition: one
        tile row per cycle, no multiplier) is valid once ``counted``.
    active : Out(1)
        A layer is configured and not yet finished.
    engines_ready : Out(1)
        Every tile engine has taken its configuration.
    counted : Out(1)
        ``shape.total`` is complete (``ceil(H'/2)`` cycles after the configuration).
    engine_cfg : Out(engines)
        Bit e: engine e's ``i_cfg.valid`` (channels and filters are in ``shape``).
    engine_cfg_ready : In(engines)
        Bit e: engine e's ``i_cfg.ready``.
    finish : In(1)
        The layer's last output has left and every pixel arrived: no layer is active.
    outputs_waiting : In(1)
        An engine offers an output.
    error : Out(1)
        Sticky: a shape out of range arrived.
    """

    def __init__(self, params):
        self.params = p = params
        super().__init__({
            "i_cfg": In(stream.Signature(cfg_layout(p))),
            "shape": Out(shape_layout(p)),
            "active": Out(1), "engines_ready": Out(1), "counted": Out(1),
            "engine_cfg": Out(p.engines), "engine_cfg_ready": In(p.engines),
            "finish": In(1), "outputs_waiting": In(1), "error": Out(1),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.params
        s = self.shape
        pending = Signal(p.engines)  # engines still to be configured
        total_rows = Signal(range(p.h_max // 2 + 2))
        busy = Signal()  # counting tiles
        m.d.comb += [self.engines_ready.eq(~pending.any()), self.counted.eq(~busy),
                     self.engine_cfg.eq(pending),
                     self.i_cfg.ready.eq(~self.active & ~self.outputs_waiting)]
        cfg = self.i_cfg.payload
        pad = Mux(cfg.same, 0, 2)
        cfg_ok = ((cfg.height > pad) & in_range(cfg.height, 1, p.h_max) & (cfg.width > pad) &
                  in_range(cfg.width, 1, p.w_max) & in_range(cfg.channels, 1, p.c_max) &
                  in_range(cfg.filters, 1, p.k_max))
        with m.If(self.i_cfg.valid & self.i_cfg.ready):
            with m.If(cfg_ok):
                oh = cfg.height - pad
                ow = cfg.width - pad
                m.d.sync += [
                    s.height.eq(cfg.height), s.width.eq(cfg.width), s.channels.eq(cfg.channels),
                    s.filters.eq(cfg.filters), s.same.eq(cfg.same), self.active.eq(1),
                    pending.eq((1 << p.engines) - 1), busy.eq(1), s.total.eq(0),
                    total_rows.eq((oh + 1) >> 1), s.out_h.eq(oh), s.out_w.eq(ow),
                    s.tiles_h.eq((oh + 1) >> 1), s.tiles_w.eq((ow + 1) >> 1),
                ]
            with m.Else():
                m.d.sync += self.error.eq(1)
        for e in range(p.engines):
            with m.If(pending[e] & self.engine_cfg_ready[e]):
                m.d.sync += pending[e].eq(0)
        with m.If(self.finish):
            m.d.sync += self.active.eq(0)
        with m.If(busy):
            with m.If(total_rows == 0):
                m.d.sync += busy.eq(0)
            with m.Else():
                m.d.sync += [s.total.eq(s.total + s.tiles_w), total_rows.eq(total_rows - 1)]
        return m


class LineBuffer(wiring.Component):
    """Six rows of the feature map, row r in slot r mod 6; the tile former reads columns.

    Members
    -------
    i_pixel : In(stream.Signature(pixel_layout))
        Pixels in raster order. Taken (one per cycle) while ``accept``, fewer than ``height``
        rows have arrived, and the slot of the next row is free (its row is below
        ``free_limit``). A ``last`` that disagrees with the pixel's place sets ``error``.
        A pixel is written into its slot the cycle after it is taken (from registers: the
        handshake drives no LUT RAM write enable): a read of its row issued from the cycle
        after ``in_row`` counts the row sees it (the tile former's first read comes then at
        the earliest).
    height, width : In
        The layer's input shape. Set a cycle or more before ``accept`` rises.
    accept : In(1)
        A layer is active and its engines are configured.
    free_limit : In(signed)
        Rows below this may be written: the first row still needed (the current window's)
        plus the 6 slots.
    in_row : Out
        Rows received completely.
    all_in : Out(1)
        ``in_row == height``.
    clear : In(1)
        The layer is finished: back to row 0.
    rd_addr, rd_base : In
        Column to read, and the slot of the window's first row.
    rd_rows : Out(ArrayLayout(row, 4))
        One cycle after ``rd_addr``: that column of the four rows in slots ``rd_base`` ..
        ``rd_base + 3`` (mod 6).
    error : Out(1)
        Sticky: a misplaced ``last``.
    """

    def __init__(self, params):
        self.params = p = params
        row = range(p.h_max + 1)
        super().__init__({
            "i_pixel": In(stream.Signature(pixel_layout(p))),
            "height": In(range(p.h_max + 1)), "width": In(range(p.w_max + 1)),
            "accept": In(1), "free_limit": In(signed(len(Signal(row)) + 3), init=ROW_SLOTS),
            "in_row": Out(row), "all_in": Out(1), "clear": In(1),
            "rd_addr": In(range(p.w_max)), "rd_base": In(range(ROW_SLOTS)),
            "rd_rows": Out(data.ArrayLayout(_row_layout(p), 4)),
            "error": Out(1),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.params
        slots = []
        for s in range(ROW_SLOTS):
            mem = Memory(shape=_row_layout(p), depth=p.w_max, init=[])
            m.submodules[f"row{s}"] = mem
            slots.append((mem.write_port(), mem.read_port(transparent_for=())))
        in_col = Signal(range(p.w_max))
        in_slot = Signal(range(ROW_SLOTS))
        room = self.in_row < self.free_limit
        take = Signal()
        # Flags of the place the next pixel goes to, in registers: worked out for the next
        # place when a pixel is taken, else again for the current one (so a new ``height``
        # or ``width`` shows a cycle after it is set; the layer sets them a cycle or more
        # before ``accept`` rises, as LayerShape configures the engines first). The compares
        # were between the pixel handshake and the write side (the error flag, the column
        # counter), 9.7 ns on the ECP5-85F.
        more = Signal()      # in_row < height
        last_col = Signal()  # in_col == width - 1
        last_row = Signal()  # in_row == height - 1
        m.d.comb += [
            self.i_pixel.ready.eq(self.accept & more & room),
            take.eq(self.i_pixel.valid & self.i_pixel.ready),
            self.all_in.eq(self.in_row == self.height),
        ]
        w_en = Signal(ROW_SLOTS)
        w_addr = Signal.like(in_col)
        w_data = Signal(_row_layout(p), reset_less=True)
        m.d.sync += [w_en.eq(Cat(take & (in_slot == s) for s in range(ROW_SLOTS))),
                     w_addr.eq(in_col), w_data.eq(self.i_pixel.payload.x)]
        for s, (wr, rd) in enumerate(slots):
            m.d.comb += [wr.en.eq(w_en[s]), wr.addr.eq(w_addr), wr.data.eq(w_data),
                         rd.addr.eq(self.rd_addr)]
        col_next = Mux(last_col, 0, in_col + 1)
        row_step = take & last_col
        h, w = self.height, self.width
        m.d.sync += [
            more.eq(Mux(row_step, self.in_row + 1 < h, self.in_row < h)),
            last_row.eq(Mux(row_step, self.in_row + 1 == h - 1, self.in_row == h - 1)),
            last_col.eq(Mux(take, col_next == w - 1, in_col == w - 1)),
        ]
        with m.If(take):
            with m.If(self.i_pixel.payload.last != (last_col & last_row)):
                m.d.sync += self.error.eq(1)
            m.d.sync += in_col.eq(col_next)
            with m.If(last_col):
                m.d.sync += [self.in_row.eq(self.in_row + 1),
                             in_slot.eq(next_wrapping(in_slot, ROW_SLOTS))]
        with m.If(self.clear):
            m.d.sync += [self.in_row.eq(0), in_col.eq(0), in_slot.eq(0),
                         more.eq(h != 0), last_row.eq(h == 1), last_col.eq(w == 1)]
        read_data = [rd.data.as_value() for _, rd in slots]
        for rr in range(4):
            slot = Signal(range(ROW_SLOTS), name=f"slot{rr}")
            base = self.rd_base
            m.d.comb += [slot.eq(Mux(base + rr >= ROW_SLOTS, base + rr - ROW_SLOTS, base + rr)),
                         self.rd_rows[rr].eq(select(read_data, slot))]
        return m


class TileFormer(wiring.Component):
    """Reads 4x4 windows (step 2, zero outside the map) and sends them one channel per beat.

    Per tile: wait until the window's rows have arrived, read its four columns (4 cycles
    plus one), then emit C beats, one per cycle as the target engine takes them. Tiles go
    round-robin to the engines; the last round is padded with all-zero tiles, so every
    engine gets as many tiles, and every tile of the last round carries ``end``.

    Members
    -------
    shape : In(shape_layout)
    start : In(1)
        The layer is active, its engines configured and its tiles counted.
    active : In(1)
        The layer is not finished (the former waits for that after its last tile).
    in_row : In
        Rows the line buffer holds completely.
    free_limit, rd_addr, rd_base : Out
        To the line buffer: rows below this may be written (the window's first row + 6),
        column to read, slot of the first row. Registers.
    rd_rows : In(ArrayLayout(row, 4))
        From the line buffer, one cycle after ``rd_addr``.
    tile : Out(stream.Signature(tile_layout))
        One channel of a tile, for engine ``target``.
    target : Out(range(engines))
        The engine the current tile goes to.

    Throughput: a tile takes C + 5 cycles when the engines keep up (one per engine every
    K*C cycles in steady state).
    """

    def __init__(self, params):
        self.params = p = params
        super().__init__({
            "shape": In(shape_layout(p)), "start": In(1), "active": In(1),
            "in_row": In(range(p.h_max + 1)),
            "free_limit": Out(signed(len(Signal(range(p.h_max + 1))) + 3), init=ROW_SLOTS),
            "rd_addr": Out(range(p.w_max)), "rd_base": Out(range(ROW_SLOTS)),
            "rd_rows": In(data.ArrayLayout(_row_layout(p), 4)),
            "tile": Out(stream.Signature(tile_layout(p))),
            "target": Out(range(max(2, p.engines))),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.params
        s = self.shape
        n_eng = p.engines
        ti = Signal(range(p.h_max // 2 + 2))
        tj = Signal(range(p.w_max // 2 + 2))
        row0 = Signal(signed(len(self.in_row) + 2))        # first window row: 2*ti - P
        col0 = Signal(signed(len(Signal(range(p.w_max))) + 2))  # first column: 2*tj - P
        base_slot = self.rd_base                           # slot of row0 (mod 6)
        rd_col = Signal(range(5))
        cap_col = Signal(range(4))
        cap_en = Signal()
        window = Signal(data.ArrayLayout(_row_layout(p), 16))
        chan = Signal(range(max(2, p.c_max)))
        # chan + 1 (wrapping) and "chan is the last channel", registers stepping with chan,
        # so the handshake's "last" starts at a flip-flop.
        chan_nx = Signal.like(chan, init=1)
        chan_last = Signal()

        def first_channel(m):
            m.d.sync += [chan.eq(0), chan_nx.eq(1), chan_last.eq(s.channels == 1)]
        # The beat on offer is channel 0 of the window's registers: each take shifts every
        # window place down a channel, so no channel multiplexer sits between the window
        # and the engines' input transforms (a 16:1 multiplexer per bit, selected by the
        # channel count, was the path after the line buffer's: 9.5 ns, and its wide select
        # nets were the layer's routing congestion; the shift is a neighbour's register).
        last_tile = (ti == s.tiles_h - 1) & (tj == s.tiles_w - 1)

        # What the window's place implies is kept in registers that step with it, so the
        # column read, the capture and the row wait start at flip-flops (the column's add
        # and bounds compare in front of the line buffer's LUT RAM address were the
        # default layer's critical path, 11.7 ns on the ECP5-85F): ``need`` (rows the tile
        # row needs: row0 .. row0+3, the ones that exist), ``row_ok`` (window row rr is
        # inside the map), and the column being read (``col_at`` = col0 + rd_col while
        # reading), with its "inside the map" flag and its line-buffer address.
        need = Signal.like(self.in_row)
        row_ok = Signal(4)
        col_at = Signal.like(col0)
        col_ok = Signal()

        def place_rows(m, first):  # the window's first row becomes ``first``
            m.d.sync += [row0.eq(first), self.free_limit.eq(first + ROW_SLOTS),
                         need.eq(Mux(first + 4 > s.height, s.height, first + 4)),
                         row_ok.eq(Cat((first + rr >= 0) & (first + rr < s.height)
                                       for rr in range(4)))]

        def read_column(m, col):  # the next column read is of column ``col``
            inside = (col >= 0) & (col < s.width)
            m.d.sync += [col_at.eq(col), col_ok.eq(inside),
                         self.rd_addr.eq(Mux(inside, col[:len(self.rd_addr)], 0))]

        # One cycle after issuing a column read, capture the four rows of that column.
        cap_ok = Signal()
        m.d.sync += [cap_en.eq(0), cap_ok.eq(col_ok)]
        for rr in range(4):
            value = Mux(row_ok[rr] & cap_ok, self.rd_rows[rr], 0)
            with m.If(cap_en):
                for cc in range(4):
                    with m.If(cap_col == cc):
                        m.d.sync += window[rr * 4 + cc].eq(value)

        # Round-robin over the engines; the padding tiles close the last round.
        round_base = Signal(range(_max_tiles(p) + n_eng + 1))
        final_round = Signal()  # s.total - round_base <= n_eng, stepping with round_base
        padding = Signal()      # emitting padding tiles after the last real one
        emit = Signal()
        for n in range(16):
            m.d.comb += self.tile.payload.d[n].eq(Mux(padding, 0, window[n][0]))
        with m.If(emit & self.tile.ready):
            # After the last channel the next capture reloads the window.
            m.d.sync += [window[n][c].eq(window[n][c + 1])
                         for n in range(16) for c in range(p.c_max - 1)]
        m.d.comb += [
            self.tile.valid.eq(emit),
            self.tile.payload.last.eq(chan_last),
            self.tile.payload.end.eq(chan_last & final_round),
        ]
        tgt_wraps = self.target == n_eng - 1
        with m.If(emit & self.tile.ready & chan_last):
            m.d.sync += self.target.eq(Mux(tgt_wraps, 0, self.target + 1))
            with m.If(tgt_wraps):
                m.d.sync += [round_base.eq(round_base + n_eng),
                             final_round.eq(s.total - (round_base + n_eng) <= n_eng)]

        # States; DRAIN is the Default arm, so every encoding is covered.
        idle_s, wait_s, read_s, emit_s, drain_s = range(5)
        state = Signal(range(5), name="former_state")
        with m.Switch(state):
            with m.Case(idle_s):
                with m.If(self.start):
                    place_rows(m, Mux(s.same, -1, 0))
                    m.d.sync += [ti.eq(0), tj.eq(0), final_round.eq(s.total <= n_eng),
                                 self.target.eq(0), round_base.eq(0), padding.eq(0),
                                 col0.eq(Mux(s.same, -1, 0)),
                                 base_slot.eq(Mux(s.same, ROW_SLOTS - 1, 0)), state.eq(wait_s)]
            with m.Case(wait_s):
                with m.If(self.in_row >= need):
                    read_column(m, col0)
                    m.d.sync += [rd_col.eq(0), state.eq(read_s)]
            with m.Case(read_s):
                # Cycles 0..3 issue column reads; captures land one cycle later.
                with m.If(rd_col != 4):
                    read_column(m, col_at + 1)
                    m.d.sync += [rd_col.eq(rd_col + 1), cap_en.eq(1), cap_col.eq(rd_col)]
                with m.Else():
                    first_channel(m)
                    m.d.sync += state.eq(emit_s)
            with m.Case(emit_s):
                m.d.comb += emit.eq(1)
                with m.If(self.tile.ready):
                    m.d.sync += [chan.eq(chan_nx), chan_nx.eq(chan_nx + 1),
                                 chan_last.eq(chan_nx == s.channels - 1)]
                    with m.If(chan_last):
                        with m.If(padding | last_tile):
                            # After the last real tile, pad the round with zero tiles.
                            first_channel(m)
                            m.d.sync += padding.eq(1)
                            with m.If(tgt_wraps):
                                m.d.sync += state.eq(drain_s)
                        with m.Elif(tj == s.tiles_w - 1):
                            place_rows(m, row0 + 2)
                            m.d.sync += [
                                tj.eq(0), ti.eq(ti + 1),
                                col0.eq(Mux(s.same, -1, 0)),
                                base_slot.eq(Mux(base_slot >= ROW_SLOTS - 2,
                                                 base_slot + 2 - ROW_SLOTS, base_slot + 2)),
                                state.eq(wait_s),
                            ]
                        with m.Else():
                            read_column(m, col0 + 2)
                            m.d.sync += [tj.eq(tj + 1), col0.eq(col0 + 2), rd_col.eq(0),
                                         state.eq(read_s)]
            with m.Default():
                # DRAIN: wait until the layer's last output has left. Then the window goes
                # back to row 0, so the next layer's line buffer has the room of a window
                # there: its pixels come in while its tiles are still counted (before
                # ``start``), and with the last window's room (row0 + 6 far down the map)
                # a newer row overwrote the map's first rows.
                with m.If(~self.active):
                    place_rows(m, 0)
                    m.d.sync += state.eq(idle_s)
        return m


class Collector(wiring.Component):
    """Takes the engines' outputs round-robin, drops the padding tiles, adds mask and last.

    Members
    -------
    i_<e> : In(stream.Signature(engine_out_layout)), one per engine
        Engine e's 2x2 output tiles, K per input tile.
    shape : In(shape_layout)
    counted : In(1)
        ``shape.total`` is complete; until then nothing is offered (an engine never has an
        output that early; the guard keeps ``o`` a function of settled state).
    o : Out(stream.Signature(out_layout))
        The layer's output, in tile order (see :class:`~.layer.WinogradConv`); beats of
        padding tiles are taken from their engine and dropped.
    done : Out(1)
        The layer's final round has been taken (held until ``clear``).
    clear : In(1)
        The layer is finished.

    Latency 0: ``o`` is the selected engine's output stream with mask and last added.
    """

    def __init__(self, params):
        self.params = p = params
        members = {f"i_{e}": In(stream.Signature(engine_out_layout(p)))
                   for e in range(p.engines)}
        super().__init__({**members, "shape": In(shape_layout(p)), "counted": In(1),
                          "o": Out(stream.Signature(out_layout(p))),
                          "done": Out(1), "clear": In(1)})

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.params
        s = self.shape
        n_eng = p.engines
        srcs = [getattr(self, f"i_{e}") for e in range(n_eng)]
        oe = Signal(range(max(2, n_eng)))
        out_n = Signal(range(_max_tiles(p) + n_eng + 1))
        oi = Signal(range(p.h_max // 2 + 2))
        oj = Signal(range(p.w_max // 2 + 2))
        ok = Signal(range(max(2, p.k_max)))
        # out_n < total, kept in a register (updated with out_n) so that no compare sits on
        # the path from ``o.ready`` into the engines' result buffers. out_n restarts at 0 and
        # total >= 1 once counted, so each layer starts with a real tile.
        real_out = Signal(init=1)
        src_valid = select([e.valid for e in srcs], oe) & self.counted
        src = select([e.payload.as_value() for e in srcs], oe)
        m.d.comb += [
            self.o.valid.eq(src_valid & real_out),
            self.o.payload.y.eq(src[:len(self.o.payload.y.as_value())]),
        ]
        for e, eng in enumerate(srcs):
            m.d.comb += eng.ready.eq((oe == e) & self.counted & (self.o.ready | ~real_out))
        row1_ok = (oi << 1) + 1 < s.out_h
        col1_ok = (oj << 1) + 1 < s.out_w
        m.d.comb += self.o.payload.mask.eq(Cat(Const(1, 1), col1_ok, row1_ok, row1_ok & col1_ok))
        last_k = ok == s.filters - 1
        m.d.comb += self.o.payload.last.eq((oi == s.tiles_h - 1) & (oj == s.tiles_w - 1) & last_k)
        take = src_valid & (self.o.ready | ~real_out)
        with m.If(take):
            m.d.sync += ok.eq(Mux(last_k, 0, ok + 1))
            with m.If(last_k):
                m.d.sync += [out_n.eq(out_n + 1), oe.eq(next_wrapping(oe, n_eng)),
                             oj.eq(next_wrapping(oj, s.tiles_w)),
                             real_out.eq(out_n + 1 < s.total)]
                with m.If(oj == s.tiles_w - 1):
                    m.d.sync += oi.eq(oi + 1)
                # The layer ends with the last tile of the (padded) final round.
                with m.If((out_n + 1 >= s.total) & (oe == n_eng - 1)):
                    m.d.sync += [self.done.eq(1), out_n.eq(0), oe.eq(0), oi.eq(0), oj.eq(0),
                                 real_out.eq(1)]
        with m.If(self.clear):
            m.d.sync += self.done.eq(0)
        return m
