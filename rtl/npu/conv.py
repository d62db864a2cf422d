"""CONV on the systolic array: im2col on the fly, accumulation after the array."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from ..common.pipeline import delay, next_wrapping
from ..common.ram import disjoint_memory
from ..systolic.ports import ws_broadcast_min_tile_vectors, ws_min_tile_vectors
from ..systolic.weight_stationary import WsArray
from .decoder import group_divider
from .isa import WINDOW_BASE_BITS, Op
from .params import NpuParams
from .unit import unit_members

__all__ = ["ConvUnit"]


class ConvUnit(wiring.Component):
    """Runs one ``CONV`` instruction on a ``lanes x lanes`` weight-stationary array.

    For each output-channel group ``j`` (one column tile of the array):

    - phase A: for each weight tile ``(ky, kx, g)`` (``lanes`` words, streamed from the
      weight scratchpad in storage order while the previous tile computes), stream the
      ``P = out_h * out_w`` im2col words of that tile through the array, one per cycle.
      The word of output pixel ``(oy, ox)`` is the input word at
      ``(oy * stride - pad_t + ky, ox * stride - pad_l + kx)``, group ``g``, or ``zp_in``
      in every lane outside the input. Each result of the array (``a @ W``, no psum) is
      added to its pixel's accumulator (or replaces it, in the first tile): the
      accumulator is read the cycle before the result leaves the array and written as it
      leaves. No vector waits for an earlier tile's result: a tile takes ``max(P, T_w)``
      cycles (``T_w = ws_min_tile_vectors``, the next tile's weight load;
      ``ws_broadcast_min_tile_vectors`` with ``array_broadcast``), however short ``P`` is.
      The results leave in issue order, so a pixel's next result comes at least ``T_w``
      (2 or more) cycles after its last one, after that one's write.
    - phase B: the ``P`` accumulator words go to the :class:`~.post.PostUnit` (bias,
      requantization, output word ``dst + p * G_out + j``).

    Cycles: about ``G_out * (K * K * G_in * max(P, ...) + P + fill)``; the instruction
    is finished when ``busy`` is low and the PostUnit is idle.

    Members
    -------
    start : In(1)
        Begin the instruction in ``insn`` (a pulse while ``busy`` is low).
    insn : In(insn_layout(Op.CONV))
        Held constant until ``busy`` falls.
    busy : Out(1)
    act_addr, act_en : Out  /  act_data : In(8 * lanes)
        Activation read port (unified address; data the cycle after ``act_en``).
    wgt_addr, wgt_en : Out  /  wgt_data : In(8 * lanes)
        Weight read port.
    post : Out(stream.Signature(post_in_layout(p)))
    pool : In(1)  /  wr_addr, wr_data, wr_en : Out
        Only with ``p.pool_on_array``: ``pool`` high (held, with ``start``) runs the
        MAXPOOL whose fields the checker hands over (``setup``) instead; phase B then
        writes the activation port itself.

    MAXPOOL (``pool_on_array``): the CONV schedule with one channel group per weight tile
    (``tiles = K * K``, tile ``(ky, kx)`` of output group ``j`` reads input group ``j``),
    identity weights made here (beat ``r``: 1 in lane ``r``; nothing read from the weight
    scratchpad), -128 outside the input, and the accumulator's low byte keeping the
    lane-wise maximum (the first tile writes the value alone; the other bits are not read).
    Phase B writes each pixel's low bytes to ``dst + p * G + j`` (lanes beyond
    ``channels`` as 0), one word per cycle, without the PostUnit.
    """

    def __init__(self, p):
        if not isinstance(p, NpuParams) or p.systolic is None:
            raise ValueError("p must be NpuParams with a systolic array")
        self.p = p
        members = unit_members(p, Op.CONV, weights=True, post=True, write=p.pool_on_array,
                               setup=p.serial_setup)
        if p.pool_on_array:
            members["pool"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.p
        lanes = p.lanes
        f = self.insn
        if p.pool_on_array:
            # CONV or MAXPOOL: the window fields from the checker (both layouts'), the groups.
            u = self.setup
            fw, cout, is_pool = u, u.c_out, self.pool
        else:
            fw, cout, is_pool = f, f.cout, Const(0)
        m.submodules.array = array = WsArray(p.systolic, psum=False, buffered=False,
                                             broadcast=p.array_broadcast)
        m.submodules.acc = acc = disjoint_memory(shape=unsigned(32 * lanes),
                                                 depth=p.acc_words)
        self.disjoint = [acc]  # (for the tests that check the promise below)
        acc_rd = acc.read_port()
        acc_wr = acc.write_port()
        # A pixel's reads are T_w cycles apart at least (see above), so each comes at least
        # T_w - 1 cycles after the previous write: with 2 or more, no read meets a write of
        # its address (a disjoint_memory: no read-during-write logic), and phase B reads
        # only after the last write.
        assert min(ws_min_tile_vectors(p.systolic),
                   ws_broadcast_min_tile_vectors(p.systolic)) >= 2
        # A read port's enable is 1 unless driven: read only when asked, so that the data
        # holds while its consumer stalls.
        m.d.comb += acc_rd.en.eq(0)

        # Per-instruction constants (state SETUP).
        mul, sh = group_divider(lanes, 10)
        g_in = Signal(10)
        g_out = Signal(10)
        # Counters sized to the memories: the checker stops a CONV whose output map has more
        # than acc_words pixels or whose weights run past wgt_words (so K*K*G_in tiles of
        # lanes words each fit in it) before it starts.
        pix_range = range(p.acc_words + 1)
        tiles_max = p.wgt_words // lanes
        pixels = Signal(pix_range)  # P
        # Address terms, modulo 2**act_addr_bits (NpuParams.act_addr_bits).
        abits = p.act_addr_bits
        rowstride = Signal(abits)  # in_w * G_in
        s_col = Signal(abits)     # stride * G_in
        s_row = Signal(abits)     # stride * rowstride
        pad_off = Signal(abits)   # pad_t * rowstride + pad_l * G_in
        tiles = Signal(range(tiles_max + 1))  # K * K * G_in
        tile_wrap = Signal(abits)  # tile_off step when kx wraps: rowstride - K*G_in + 1

        # Loop state.
        j = Signal(10)            # output-channel group
        ky = Signal(4)
        kx = Signal(4)
        g = Signal(10)
        oy = Signal(8)
        ox = Signal(8)
        pix = Signal(pix_range)   # oy * out_w + ox
        # The window's input position and word address, kept as registers that step with
        # the loops (no adder between them and the activation port): the input row
        # ``iy = oy * stride + ky - pad_t`` and column ``ix``, whether each lies inside the
        # input, and the im2col word ``src + tile_off + oy * s_row + ox * s_col`` with
        # ``tile_off = ky * rowstride + kx * G_in + g - pad_off``; ``tile_base`` and
        # ``row_base`` hold that sum at ``ox = oy = 0`` and at ``ox = 0``.
        iy = Signal(signed(WINDOW_BASE_BITS + 1))
        ix = Signal(signed(WINDOW_BASE_BITS + 1))
        y_in = Signal()
        x_in = Signal()
        address = Signal(abits)
        row_base = Signal(abits)
        tile_base = Signal(abits)
        issuing = Signal()  # this column tile's vectors are not all issued
        # Vectors issued whose accumulator read (``early``) has not come: at most the one in
        # a_valid and the array's latency less one.
        outstanding = Signal(range(array.latency + 2))
        first_left = Signal(pix_range)  # results of the column tile's first weight tile
        wr_pix = Signal(pix_range)


        # Weights: G_out * tiles * lanes words from wgt, in order, into i_weight (MAXPOOL:
        # identity beats, made here as the array takes them, uncounted: a pool's beats are
        # not bounded by the weight scratchpad's size, and every tile takes ``lanes``).
        w_left = Signal(range(p.wgt_words + 1))
        w_next = Signal(16)
        w_valid = Signal()
        w_go = ~w_valid | array.i_weight.ready
        with m.If(w_go):
            m.d.sync += w_valid.eq(0)
            with m.If(w_left != 0):
                m.d.comb += [self.wgt_en.eq(1), self.wgt_addr.eq(w_next)]
                m.d.sync += [w_valid.eq(1), w_next.eq(w_next + 1), w_left.eq(w_left - 1)]
        m.d.comb += [array.i_weight.valid.eq(w_valid),
                     array.i_weight.payload.eq(self.wgt_data)]
        if p.pool_on_array:
            w_beat = Signal(range(lanes))  # MAXPOOL: the row of the beat on i_weight
            with m.If(is_pool):
                m.d.comb += [array.i_weight.valid.eq(1), array.i_weight.payload.eq(
                    Cat(*[Cat(w_beat == lane, Const(0, 7)) for lane in range(lanes)]))]
                with m.If(array.i_weight.ready):
                    m.d.sync += w_beat.eq(Mux(w_beat == lanes - 1, 0, w_beat + 1))

        # Phase A issue: im2col word, then the array beat.
        a_valid = Signal()
        a_inside = Signal()
        a_last = Signal()
        a_go = ~a_valid | array.i_act.ready
        # The tile step: the next input group (CONV), the next kx (MAXPOOL: G words on).
        g_last = (g == g_in - 1) | is_pool
        kx_step = Mux(is_pool, g_in, 1) if p.pool_on_array else 1
        phase_a = Signal()
        can_issue = phase_a & issuing
        col_wrap = ox == fw.out_w - 1
        row_wrap = oy == fw.out_h - 1
        kx_wrap = kx == fw.kernel - 1
        last_vector = (pix == pixels - 1) & g_last & kx_wrap & (ky == fw.kernel - 1)

        def inside(pos, size):
            return (pos >= 0) & (pos < size)

        # The next vector's window (computed from registers only, taken with the issue).
        tile_step = Signal(abits)
        ky_n = Signal(4)
        kx_n = Signal(4)
        iy_n = Signal.like(iy)
        ix_n = Signal.like(ix)
        address_n = Signal(abits)
        m.d.comb += [ky_n.eq(ky), kx_n.eq(kx), tile_step.eq(1)]
        with m.If(g_last):
            with m.If(kx_wrap):
                m.d.comb += [ky_n.eq(ky + 1), kx_n.eq(0), tile_step.eq(tile_wrap)]
            with m.Else():
                m.d.comb += [kx_n.eq(kx + 1), tile_step.eq(kx_step)]
        tile_next = Signal(abits)
        m.d.comb += tile_next.eq(tile_base + tile_step)
        with m.If(~col_wrap):
            m.d.comb += [iy_n.eq(iy), ix_n.eq(ix + fw.stride), address_n.eq(address + s_col)]
        with m.Elif(~row_wrap):
            m.d.comb += [iy_n.eq(iy + fw.stride), ix_n.eq(kx - fw.pad_l),
                         address_n.eq(row_base + s_row)]
        with m.Else():
            m.d.comb += [iy_n.eq(ky_n - fw.pad_t), ix_n.eq(kx_n - fw.pad_l),
                         address_n.eq(tile_next)]
        with m.If(a_go):
            m.d.sync += a_valid.eq(0)
            with m.If(can_issue):
                m.d.comb += [self.act_en.eq(y_in & x_in), self.act_addr.eq(address)]
                m.d.sync += [a_valid.eq(1), a_inside.eq(y_in & x_in),
                             a_last.eq(pix == pixels - 1),
                             iy.eq(iy_n), ix.eq(ix_n), y_in.eq(inside(iy_n, fw.in_h)),
                             x_in.eq(inside(ix_n, fw.in_w)), address.eq(address_n)]
                with m.If(last_vector):
                    m.d.sync += issuing.eq(0)
                # Next pixel; at the last pixel, the next tile.
                with m.If(col_wrap):
                    m.d.sync += ox.eq(0)
                    with m.If(row_wrap):
                        m.d.sync += [oy.eq(0), pix.eq(0), ky.eq(ky_n), kx.eq(kx_n),
                                     tile_base.eq(tile_next), row_base.eq(tile_next)]
                        with m.If(g_last):
                            m.d.sync += g.eq(0)
                        with m.Else():
                            m.d.sync += g.eq(g + 1)
                    with m.Else():
                        m.d.sync += [oy.eq(oy + 1), row_base.eq(row_base + s_row),
                                     pix.eq(pix + 1)]
                with m.Else():
                    m.d.sync += [ox.eq(ox + 1), pix.eq(pix + 1)]
        # Outside the input: the zero point (CONV), or -128 (MAXPOOL: below every value).
        pad = Mux(is_pool, -128, f.zp_in) if p.pool_on_array else f.zp_in
        zp_word = Cat(*[pad[:8]] * lanes)
        m.d.comb += [
            array.i_act.valid.eq(a_valid),
            array.i_act.payload.a.eq(Mux(a_inside, self.act_data, zp_word)),
            array.i_act.payload.last.eq(a_last),
        ]

        # Results into the accumulators: read the pixel's sum in the cycle before its
        # result leaves the array (``early``: the array's valid one cycle ahead, from the
        # handshake), add and write it as the result leaves (the first tile writes the
        # result alone), so the result needs no register of its own. Sums wrap at 32 bits.
        act_take = Signal()
        m.d.comb += act_take.eq(array.i_act.valid & array.i_act.ready)
        early = delay(m, act_take, array.latency - 1, name="early")
        m.d.sync += outstanding.eq(outstanding + (a_go & can_issue) - early)
        r_first = Signal()
        r_pix = Signal(pix_range)
        m.d.comb += array.o.ready.eq(1)
        with m.If(early):
            m.d.comb += [acc_rd.en.eq(1), acc_rd.addr.eq(wr_pix)]
            m.d.sync += [r_first.eq(first_left != 0), r_pix.eq(wr_pix),
                         wr_pix.eq(next_wrapping(wr_pix, pixels))]
            with m.If(first_left != 0):
                m.d.sync += first_left.eq(first_left - 1)
        m.d.comb += [acc_wr.addr.eq(r_pix), acc_wr.en.eq(array.o.valid)]
        for lane in range(lanes):
            old = acc_rd.data[32 * lane:32 * lane + 32]
            y = array.o.payload.y[lane]
            total = Signal(32, name=f"total_{lane}")
            m.d.comb += total.eq(Mux(r_first, 0, old) + y)
            if p.pool_on_array:
                # MAXPOOL: the low byte keeps the maximum (y is the int8 input itself).
                bigger = y[:8].as_signed() > old[:8].as_signed()
                low = Mux(is_pool & ~r_first, Mux(bigger, y[:8], old[:8]), total[:8])
                m.d.comb += acc_wr.data[32 * lane:32 * lane + 32].eq(Cat(low, total[8:]))
            else:
                m.d.comb += acc_wr.data[32 * lane:32 * lane + 32].eq(total)

        # Phase B: accumulators to the PostUnit.
        b_left = Signal(pix_range)
        b_pix = Signal(pix_range)
        b_addr = Signal(abits)  # (results land below 2 * act_words: modulo 2**abits)
        b_valid = Signal()
        # (MAXPOOL writes the activation port, which is always free)
        b_go = ~b_valid | self.post.ready | is_pool
        phase_b = Signal()
        with m.If(b_go):
            m.d.sync += b_valid.eq(0)
            with m.If(phase_b & (b_left != 0)):
                m.d.comb += [acc_rd.en.eq(1), acc_rd.addr.eq(b_pix)]
                m.d.sync += [b_valid.eq(1), b_pix.eq(b_pix + 1), b_left.eq(b_left - 1),
                             self.post.payload.addr.eq(b_addr), b_addr.eq(b_addr + g_out)]
        # The column tile's channels (set as phase B begins: no path from the instruction's
        # fields through the checker's multiplexers into the write data)
        count = Signal(range(lanes + 1))
        # The group's first table entry, registered: no adder before the PostUnit's cache
        # check, whose answer enables the accumulator reads.
        chan = Signal(12)
        rest = Signal(signed(12))
        m.d.comb += rest.eq(cout - (j * lanes)[:11])
        if p.pool_on_array:
            m.d.comb += [self.wr_en.eq(b_valid & is_pool),
                         self.wr_addr.eq(self.post.payload.addr),
                         self.wr_data.eq(Cat(*[Mux(lane < count, acc_rd.data[32 * lane:][:8], 0)
                                               for lane in range(lanes)]))]
        m.d.comb += [self.post.valid.eq(b_valid & ~is_pool),
                     self.post.payload.acc.eq(acc_rd.data),
                     self.post.payload.chan.eq(chan),
                     self.post.payload.count.eq(count)]

        if p.serial_setup:
            # The products come from the instruction checker (unit_setup_layout), and stay
            # in its registers while the instruction runs.
            u = self.setup
            m.d.comb += [pixels.eq(u.pixels), rowstride.eq(u.rowstride), s_col.eq(u.s_col),
                         s_row.eq(u.s_row), pad_off.eq(u.pad_off),
                         tile_wrap.eq(u.wrap)]
        else:
            # K * K from a table (16 entries for the 4-bit field: eight LUTs), so SETUP1
            # holds one multiplier, not two in a row (insn -> MULT18X18D -> MULT18X18D
            # limited the ECP5 build to 62.8 MHz).
            kbits = len(f.kernel)
            kk = Signal(2 * kbits)
            m.d.comb += kk.eq(Array(Const(k * k, 2 * kbits) for k in range(1 << kbits))[f.kernel])

        with m.FSM(name="conv"):
            with m.State("IDLE"):
                m.d.comb += self.busy.eq(0)
                with m.If(self.start):
                    m.d.sync += j.eq(0)
                    if p.pool_on_array:  # (registered: the checker's divider is long)
                        m.d.sync += [g_in.eq(self.setup.g_in), g_out.eq(self.setup.g_out)]
                    else:
                        m.d.sync += [g_in.eq(((f.cin + lanes - 1) * mul) >> sh),
                                     g_out.eq(((f.cout + lanes - 1) * mul) >> sh)]
                    if p.serial_setup:
                        m.d.sync += [w_left.eq(Mux(is_pool, 0, self.setup.wgt_words)),
                                     w_next.eq(f.wgt)]
                        m.next = "TILE"
                    else:
                        m.d.sync += pixels.eq(f.out_h * f.out_w)
                        m.next = "SETUP1"
            if not p.serial_setup:
                with m.State("SETUP1"):
                    m.d.comb += self.busy.eq(1)
                    m.d.sync += [rowstride.eq(f.in_w * g_in), s_col.eq(f.stride * g_in),
                                 tiles.eq(kk * g_in)]
                    m.next = "SETUP2"
                with m.State("SETUP2"):
                    m.d.comb += self.busy.eq(1)
                    m.d.sync += [s_row.eq(f.stride * rowstride),
                                 pad_off.eq(f.pad_t * rowstride + f.pad_l * g_in),
                                 tile_wrap.eq(rowstride - f.kernel * g_in + 1),
                                 w_left.eq(g_out * tiles * lanes), w_next.eq(f.wgt)]
                    m.next = "TILE"
            with m.State("TILE"):  # a new column tile: reset the loops
                m.d.comb += self.busy.eq(1)
                start_word = fw.src + Mux(is_pool, j, 0) - pad_off
                m.d.sync += [ky.eq(0), kx.eq(0), g.eq(0), oy.eq(0), ox.eq(0), pix.eq(0),
                             iy.eq(-fw.pad_t), ix.eq(-fw.pad_l),
                             y_in.eq(inside(-fw.pad_t, fw.in_h)),
                             x_in.eq(inside(-fw.pad_l, fw.in_w)),
                             address.eq(start_word), row_base.eq(start_word),
                             tile_base.eq(start_word),
                             issuing.eq(1), first_left.eq(pixels), wr_pix.eq(0),
                             phase_a.eq(1)]
                m.next = "PHASE_A"
            with m.State("PHASE_A"):
                m.d.comb += self.busy.eq(1)
                # The last result is written in the cycle after the last read, before
                # phase B's first read.
                with m.If(~issuing & (outstanding == 0)):
                    m.d.sync += [phase_a.eq(0), phase_b.eq(1), b_left.eq(pixels), b_pix.eq(0),
                                 b_addr.eq(fw.dst + j), chan.eq(f.tab + (j * lanes)[:12]),
                                 count.eq(Mux(rest >= lanes, lanes, rest))]
                    m.next = "PHASE_B"
            with m.State("PHASE_B"):
                m.d.comb += self.busy.eq(1)
                with m.If((b_left == 0) & ~b_valid):
                    m.d.sync += [phase_b.eq(0), j.eq(j + 1)]
                    with m.If(j == g_out - 1):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "TILE"
        return m
