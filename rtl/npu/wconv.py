"""CONV on the Winograd F(2x2, 3x3) tile engine: 3x3 stride-1 convolutions."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring

from ..winograd.engine import WinogradF23
from .decoder import group_divider
from .isa import WINDOW_BASE_BITS, Op
from .params import NpuParams
from .unit import unit_members

__all__ = ["WinogradUnit"]

#: Taps of a 3x3 filter, and pixels of a 4x4 input tile.
_TAPS, _TILE = 9, 16


def _shift_word_in(m, words, word):
    """Shift ``word`` in behind ``words`` (a register file filled one read per cycle)."""
    m.d.sync += [w.eq(nxt) for w, nxt in zip(words, [*words[1:], word], strict=True)]


def _next_byte(m, words):
    """Move every word's next byte to the bottom: lane ``l`` of the words, beat ``l``."""
    m.d.sync += [w.eq(w >> 8) for w in words]


class WinogradUnit(wiring.Component):
    """Runs one ``CONV`` with ``engine`` 1 on a :class:`~npugen.rtl.winograd.engine.WinogradF23`.

    The instruction is a ``CONV`` as the systolic array runs it (the same fields, weight
    layout and result), with kernel 3 and stride 1 (the checker's SHAPE rules), ``cin`` at
    most ``winograd.c_max`` and ``cout`` at most ``winograd.k_max``; any padding and output
    size. The tiles hold ``zp_in`` outside the input, as the systolic array's im2col does,
    so the engine's output is the array's ``sum(x * w)`` exactly (both wrap to 32 bits).

    Three processes run side by side:

    - filters: the ``cout * cin`` raw 3x3 filters into the engine's filter store, each with
      its place ``k * cin + c`` (the engine's ``addressed`` filters). Filter ``(k, c)``'s
      tap ``(ky, kx)`` is lane ``k % lanes`` of weight word ``wgt + ((k // lanes) * 9 + ky
      * 3 + kx) * G_in * lanes + c`` (CONV's layout), so the 9 words of one column
      (output group ``j``, input channel ``c``) hold the filters of the group's ``lanes``
      output channels: 9 reads, then one filter per lane (a byte of each word, shifted
      out), ``11 + lanes`` cycles a column, ``G_out * cin`` columns.
    - tiles: for each 2x2 output tile (raster order over ``ceil(out_h / 2) x
      ceil(out_w / 2)``) and input-channel group ``g``, the 16 words of the 4x4 input
      window at ``(2 * ti - pad_t, 2 * tj - pad_l)`` (one read per cycle; outside the input
      nothing is read and the tile holds ``zp_in``), then one engine beat per channel of the group
      (a byte of each word, shifted out). ``16 + lanes`` cycles per group or so; the
      engine's input banks take the next tile while it computes the current one.
    - results: the engine gives ``cout`` 2x2 tiles per input tile, filters in order; the
      tiles of one output-channel group (``lanes`` filters) are collected, then each of
      the four pixels that exists goes to the :class:`~.post.PostUnit` as one word
      (``dst + (oy * out_w + ox) * G_out + j``), while the engine's results wait in its
      result buffer.

    Cycles: about ``(11 + lanes) * G_out * cin`` for the filters (the first tiles' reads
    overlap them), then per tile the larger of the engine's ``cin * cout`` and the tile
    reads; :func:`~npugen.sim.models.npu.winograd_schedule` has the exact model.

    Members
    -------
    start : In(1)
        Begin the instruction in ``insn`` (a pulse while ``busy`` is low).
    insn : In(insn_layout(Op.CONV))
        Held constant until ``busy`` falls.
    busy : Out(1)
    act_addr, act_en : Out  /  act_data : In(8 * lanes)
        Activation read port (unified address; data the cycle after ``act_en``; it holds
        while ``act_en`` is low).
    wgt_addr, wgt_en : Out  /  wgt_data : In(8 * lanes)
        Weight read port (the same).
    post : Out(stream.Signature(post_in_layout(p)))
    """

    def __init__(self, p):
        if not isinstance(p, NpuParams) or p.winograd is None:
            raise ValueError("p must be NpuParams with a winograd engine")
        self.p = p
        super().__init__(unit_members(p, Op.CONV, weights=True, post=True))

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.p
        wp = p.winograd
        lanes = p.lanes
        f = self.insn
        abits = p.act_addr_bits
        m.submodules.engine = engine = WinogradF23(wp, addressed=True)
        self._engine = engine

        # ---- per-instruction constants (SETUP)
        mul, sh = group_divider(lanes, 10)
        g_in = Signal(10)
        g_out = Signal(10)
        rowstride = Signal(abits)   # in_w * G_in (input words per row)
        orow = Signal(abits)        # out_w * G_out
        gl = Signal(16)             # G_in * lanes (weight words between taps)
        tiles_h = Signal(8)         # ceil(out_h / 2)
        tiles_w = Signal(8)
        tiles_all = Signal(16)      # tiles_h * tiles_w
        pad_rows = Signal(abits)    # pad_t * rowstride
        pad_cols = Signal(abits)    # pad_l * G_in
        columns = Signal(20)        # G_out * cin: filter columns
        c_last = Signal(10)         # cin - 1

        # ---- filters: per column (output group j, input channel c) the 9 tap words at
        # wgt + (j * 9 + t) * gl + c (lane l: filter j * lanes + l), then one filter per
        # lane, each with its place (j * lanes + l) * cin + c in the engine's store
        f_left = Signal(20)          # columns still to read: G_out * cin
        f_c = Signal(10)
        f_base = Signal(16)          # wgt + j * 9 * gl + c
        f_jbase = Signal(16)         # wgt + j * 9 * gl
        f_n = Signal(range(_TAPS + 1))   # taps read for the column
        f_off = Signal(16)           # f_n * gl
        f_pending = Signal()         # a tap's word is on wgt_data
        f_reading = Signal()
        taps = [Signal(8 * lanes, name=f"tap{t}") for t in range(_TAPS)]
        f_give = Signal(range(lanes + 1))  # filters of the column still to give
        f_place = Signal(range(max(2, wp.k_max * wp.c_max)))  # the next one's store address
        f_jplace = Signal(20)        # j * lanes * cin
        f_j = Signal(10)
        with m.If(f_pending):  # the word read last cycle, shifted in
            _shift_word_in(m, taps, self.wgt_data)
            m.d.sync += f_pending.eq(0)
        with m.If(f_reading & (f_n != _TAPS)):
            m.d.comb += [self.wgt_en.eq(1), self.wgt_addr.eq(f_base + f_off)]
            m.d.sync += [f_pending.eq(1), f_n.eq(f_n + 1), f_off.eq(f_off + gl)]
        rest_f = Signal(signed(12))
        m.d.comb += rest_f.eq(f.cout - (f_j * lanes)[:11])
        with m.If(f_reading & (f_n == _TAPS) & f_pending):
            # the ninth word goes in: give the column's filters from the next cycle
            m.d.sync += [f_reading.eq(0), f_give.eq(Mux(rest_f >= lanes, lanes, rest_f)),
                         f_place.eq(f_jplace + f_c)]
        filt = engine.i_filter
        m.d.comb += [filt.valid.eq(f_give != 0), filt.payload.addr.eq(f_place)]
        for t in range(_TAPS):
            m.d.comb += filt.payload.g[t].eq(taps[t][:8].as_signed())
        with m.If(filt.valid & filt.ready):
            _next_byte(m, taps)
            m.d.sync += [f_give.eq(f_give - 1), f_place.eq(f_place + f.cin)]
            with m.If(f_give == 1):  # the column's last filter: the next column
                m.d.sync += f_left.eq(f_left - 1)
                with m.If(f_c == c_last):
                    m.d.sync += [f_c.eq(0), f_j.eq(f_j + 1), f_jbase.eq(f_jbase + 9 * gl),
                                 f_base.eq(f_jbase + 9 * gl),
                                 f_jplace.eq(f_jplace + f.cin * lanes)]
                with m.Else():
                    m.d.sync += [f_c.eq(f_c + 1), f_base.eq(f_base + 1)]
        with m.If(~f_reading & (f_give == 0) & ~f_pending & (f_left != 0)):
            m.d.sync += [f_reading.eq(1), f_n.eq(0), f_off.eq(0)]

        # ---- tiles: per tile and input group, 16 reads, then a beat per channel
        t_left = Signal(16)          # tiles still to read
        t_tj = Signal(8)
        t_y = Signal(signed(WINDOW_BASE_BITS + 1))  # 2 * ti - pad_t
        t_x = Signal(signed(WINDOW_BASE_BITS + 1))  # 2 * tj - pad_l
        t_g = Signal(10)
        t_org = Signal(abits)        # src + t_y * rowstride + t_x * G_in
        t_row_org = Signal(abits)    # src + t_y * rowstride - pad_l * G_in
        r_n = Signal(range(_TILE + 1))   # reads issued for the group
        r_addr = Signal(abits)
        r_row = Signal(abits)        # the address of the read row's first pixel
        r_dy = Signal(2)
        r_dx = Signal(2)
        r_pending = Signal()         # a read's word is on act_data
        r_inside = Signal()
        win = [Signal(8 * lanes, name=f"win{n}") for n in range(_TILE)]
        inside = Signal(_TILE)
        e_left = Signal(range(lanes + 1))  # beats of the group still to give
        e_chan = Signal(10)          # channel of the next beat (the group's first while reading)
        reading = Signal()
        iy = Signal(signed(WINDOW_BASE_BITS + 2))
        ix = Signal(signed(WINDOW_BASE_BITS + 2))
        m.d.comb += [iy.eq(t_y + r_dy), ix.eq(t_x + r_dx)]
        in_map = (iy >= 0) & (iy < f.in_h) & (ix >= 0) & (ix < f.in_w)
        with m.If(r_pending):  # the word read last cycle into the window, shifted in
            _shift_word_in(m, win, Mux(r_inside, self.act_data, 0))
            m.d.sync += [inside.eq(Cat(inside[1:], r_inside)), r_pending.eq(0)]
        with m.If(reading & (r_n != _TILE)):
            m.d.comb += [self.act_en.eq(in_map), self.act_addr.eq(r_addr)]
            m.d.sync += [r_pending.eq(1), r_inside.eq(in_map), r_n.eq(r_n + 1)]
            with m.If(r_dx == 3):
                m.d.sync += [r_dx.eq(0), r_dy.eq(r_dy + 1), r_addr.eq(r_row + rowstride),
                             r_row.eq(r_row + rowstride)]
            with m.Else():
                m.d.sync += [r_dx.eq(r_dx + 1), r_addr.eq(r_addr + g_in)]
        # Beats: channel e_chan's byte of each word (lane 0 of the shifted words).
        zp = f.zp_in
        tile = engine.i_tile
        for n in range(_TILE):
            m.d.comb += tile.payload.d[n].eq(Mux(inside[n], win[n][:8].as_signed(), zp))
        last_chan = e_chan == c_last
        m.d.comb += [tile.payload.last.eq(last_chan),
                     tile.payload.end.eq(last_chan & (t_left == 1))]
        giving = ~reading & (e_left != 0)
        m.d.comb += tile.valid.eq(giving)
        with m.If(giving & tile.ready):
            _next_byte(m, win)
            m.d.sync += [e_left.eq(e_left - 1), e_chan.eq(e_chan + 1)]
            with m.If(last_chan):  # the tile's last beat: the next tile
                m.d.sync += [t_left.eq(t_left - 1), t_g.eq(0), e_chan.eq(0)]
                with m.If(t_tj == tiles_w - 1):
                    m.d.sync += [t_tj.eq(0), t_y.eq(t_y + 2), t_x.eq(-f.pad_l),
                                 t_row_org.eq(t_row_org + 2 * rowstride),
                                 t_org.eq(t_row_org + 2 * rowstride)]
                with m.Else():
                    m.d.sync += [t_tj.eq(t_tj + 1), t_x.eq(t_x + 2),
                                 t_org.eq(t_org + 2 * g_in)]
            with m.Elif(e_left == 1):  # the group's last beat: the next group
                m.d.sync += t_g.eq(t_g + 1)
        # A group's reads start when its beats are given (and another tile is to come).
        e_done = ~reading & (e_left == 0) & ~r_pending
        tiles_on = Signal()  # the tile process runs
        with m.If(tiles_on & e_done & (t_left != 0)):
            m.d.sync += [reading.eq(1), r_n.eq(0), r_dy.eq(0), r_dx.eq(0),
                         r_addr.eq(t_org + t_g), r_row.eq(t_org + t_g)]
        rest_in = Signal(signed(11))
        m.d.comb += rest_in.eq(f.cin - e_chan)
        with m.If(reading & (r_n == _TILE) & r_pending):
            # the 16th word goes in: give the group's channels from the next cycle
            m.d.sync += [reading.eq(0), e_left.eq(Mux(rest_in >= lanes, lanes, rest_in))]

        # ---- results: collect an output group's tiles, then its pixels to the PostUnit
        o = engine.o
        acc = [[Signal(32, name=f"acc{n}_{lane}") for lane in range(lanes)]
               for n in range(4)]
        o_lane = Signal(range(lanes))
        o_j = Signal(10)
        o_tj = Signal(8)
        o_y = Signal(8)              # 2 * ti
        o_x = Signal(8)              # 2 * tj
        o_org = Signal(abits)        # dst + (o_y * out_w + o_x) * G_out
        o_row_org = Signal(abits)    # dst + o_y * out_w * G_out
        o_tiles = Signal(16)         # output tiles still to finish
        o_last = Signal()            # the group collected is the tile's last
        emit = Signal()              # the collected group's pixels go out
        e_n = Signal(2)
        b_valid = Signal()
        count = Signal(range(lanes + 1))
        m.d.comb += o.ready.eq(~emit)
        with m.If(o.valid & o.ready):
            for n in range(4):
                with m.Switch(o_lane):
                    for lane in range(lanes):
                        with m.Case(lane):
                            m.d.sync += acc[n][lane].eq(o.payload.y[n])
            with m.If((o_lane == lanes - 1) | o.payload.last):
                m.d.sync += [o_lane.eq(0), emit.eq(1), e_n.eq(0), o_last.eq(o.payload.last)]
            with m.Else():
                m.d.sync += o_lane.eq(o_lane + 1)
        rest_out = Signal(signed(12))
        m.d.comb += rest_out.eq(f.cout - (o_j * lanes)[:11])
        m.d.comb += count.eq(Mux(rest_out >= lanes, lanes, rest_out))
        b_go = ~b_valid | self.post.ready
        with m.If(self.post.ready):
            m.d.sync += b_valid.eq(0)
        py = o_y + e_n[1]
        px = o_x + e_n[0]
        exists = (py < f.out_h) & (px < f.out_w)
        with m.If(emit & b_go):
            m.d.sync += e_n.eq(e_n + 1)
            with m.If(exists):
                m.d.sync += [b_valid.eq(1),
                             self.post.payload.addr.eq(o_org + Mux(e_n[1], orow, 0)
                                                       + Mux(e_n[0], g_out, 0) + o_j),
                             self.post.payload.chan.eq(f.tab + (o_j * lanes)[:12]),
                             self.post.payload.count.eq(count)]
                with m.Switch(e_n):
                    for n in range(4):
                        with m.Case(n):
                            m.d.sync += self.post.payload.acc.eq(Cat(*acc[n]))
            with m.If(e_n == 3):  # the group's four pixels: the next group or tile
                m.d.sync += emit.eq(0)
                with m.If(o_last):
                    m.d.sync += [o_j.eq(0), o_tiles.eq(o_tiles - 1)]
                    with m.If(o_tj == tiles_w - 1):
                        m.d.sync += [o_tj.eq(0), o_y.eq(o_y + 2), o_x.eq(0),
                                     o_row_org.eq(o_row_org + 2 * orow),
                                     o_org.eq(o_row_org + 2 * orow)]
                    with m.Else():
                        m.d.sync += [o_tj.eq(o_tj + 1), o_x.eq(o_x + 2),
                                     o_org.eq(o_org + 2 * g_out)]
                with m.Else():
                    m.d.sync += o_j.eq(o_j + 1)
        m.d.comb += self.post.valid.eq(b_valid)

        # ---- the instruction
        cfg_valid = Signal()
        m.d.comb += [engine.i_cfg.valid.eq(cfg_valid),
                     engine.i_cfg.payload.channels.eq(f.cin),
                     engine.i_cfg.payload.filters.eq(f.cout)]
        with m.If(engine.i_cfg.ready):
            m.d.sync += cfg_valid.eq(0)
        with m.FSM(name="wconv"):
            with m.State("IDLE"):
                m.d.comb += self.busy.eq(0)
                with m.If(self.start):
                    m.d.sync += [g_in.eq(((f.cin + lanes - 1) * mul) >> sh),
                                 g_out.eq(((f.cout + lanes - 1) * mul) >> sh),
                                 tiles_h.eq((f.out_h + 1) >> 1), tiles_w.eq((f.out_w + 1) >> 1),
                                 c_last.eq(f.cin - 1)]
                    m.next = "SETUP1"
            with m.State("SETUP1"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [rowstride.eq(f.in_w * g_in), orow.eq(f.out_w * g_out),
                             gl.eq(g_in * lanes), tiles_all.eq(tiles_h * tiles_w)]
                m.next = "SETUP2"
            with m.State("SETUP2"):  # (the products registered: no multiplier before an add)
                m.d.comb += self.busy.eq(1)
                m.d.sync += [pad_rows.eq(f.pad_t * rowstride), pad_cols.eq(f.pad_l * g_in),
                             columns.eq(g_out * f.cin)]
                m.next = "SETUP3"
            with m.State("SETUP3"):
                m.d.comb += self.busy.eq(1)
                origin = f.src - pad_rows - pad_cols
                m.d.sync += [
                    cfg_valid.eq(1),
                    f_left.eq(columns), f_c.eq(0), f_j.eq(0), f_jplace.eq(0),
                    f_base.eq(f.wgt), f_jbase.eq(f.wgt), f_reading.eq(0), f_give.eq(0),
                    t_left.eq(tiles_all), t_tj.eq(0), t_g.eq(0),
                    t_y.eq(-f.pad_t), t_x.eq(-f.pad_l), e_chan.eq(0), e_left.eq(0),
                    t_org.eq(origin), t_row_org.eq(origin), reading.eq(0),
                    o_lane.eq(0), o_j.eq(0), o_tj.eq(0), o_y.eq(0), o_x.eq(0),
                    o_org.eq(f.dst), o_row_org.eq(f.dst), o_tiles.eq(tiles_all),
                    tiles_on.eq(1),
                ]
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                with m.If((o_tiles == 0) & ~b_valid):
                    m.d.sync += tiles_on.eq(0)
                    m.next = "IDLE"
        return m
