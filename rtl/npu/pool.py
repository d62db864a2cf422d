"""MAXPOOL and AVGPOOL: one activation word per cycle through a lane-wise max or sum."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring

from .decoder import group_divider
from .isa import WINDOW_BASE_BITS, Op
from .params import NpuParams
from .unit import unit_members

__all__ = ["AvgPoolUnit", "MaxPoolUnit"]


def _lanes(word, lanes):
    return [word[8 * i:8 * i + 8].as_signed() for i in range(lanes)]


class MaxPoolUnit(wiring.Component):
    """Runs one ``MAXPOOL``: lane-wise max over each ``K x K`` window.

    For each output pixel and channel group, positions outside the input count as -128,
    the neutral element (every window holds at least one input position).

    Loop order: pixel (row-major), group, ky, kx; one read per cycle, the output word
    ``dst + p * G + g`` is written two cycles after the window's last read (lanes beyond
    ``channels`` written as 0). Cycles: ``out_h * out_w * G * K * K + 4``.

    Members
    -------
    start : In(1)  /  insn : In(insn_layout(Op.MAXPOOL))  /  busy : Out(1)
    act_addr, act_en : Out  /  act_data : In(8 * lanes)
        Activation read port (data the cycle after ``act_en``).
    wr_addr, wr_data, wr_en : Out
        Activation write port.
    """

    def __init__(self, p):
        if not isinstance(p, NpuParams):
            raise TypeError(f"p must be NpuParams, not {type(p).__name__}")
        self.p = p
        super().__init__(unit_members(p, Op.MAXPOOL, write=True, setup=p.serial_setup))

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.p
        lanes = p.lanes
        f = self.insn
        mul, sh = group_divider(lanes, 10)
        groups = Signal(10)
        # Address terms, modulo 2**act_addr_bits (NpuParams.act_addr_bits).
        abits = p.act_addr_bits
        rowstride = Signal(abits)
        s_row = Signal(abits)
        s_col = Signal(abits)
        pad_off = Signal(abits)
        win_wrap = Signal(abits)  # rowstride - (K - 1) * G

        oy = Signal(8)
        ox = Signal(8)
        g = Signal(10)
        ky = Signal(4)
        kx = Signal(4)
        y_base = Signal(WINDOW_BASE_BITS)
        x_base = Signal(WINDOW_BASE_BITS)
        pix_row = Signal(abits)
        pix_col = Signal(abits)
        win_off = Signal(abits)  # ky * rowstride + kx * G
        out_addr = Signal(abits)
        running = Signal()

        iy = Signal(signed(WINDOW_BASE_BITS + 1))
        ix = Signal(signed(WINDOW_BASE_BITS + 1))
        m.d.comb += [iy.eq(y_base + ky - f.pad_t), ix.eq(x_base + kx - f.pad_l)]
        inside = (iy >= 0) & (iy < f.in_h) & (ix >= 0) & (ix < f.in_w)
        address = Signal(abits)
        m.d.comb += address.eq(f.src + pix_row + pix_col + g + win_off - pad_off)
        first = (ky == 0) & (kx == 0)
        last = (ky == f.kernel - 1) & (kx == f.kernel - 1)

        # Stage 1 (data arrives): flags of the read issued last cycle.
        r_valid = Signal()
        r_inside = Signal()
        r_first = Signal()
        r_last = Signal()
        r_addr = Signal(abits)
        r_count = Signal(range(lanes + 1))
        m.d.sync += r_valid.eq(0)
        rest = Signal(signed(12))
        m.d.comb += rest.eq(f.channels - (g * lanes)[:11])
        with m.If(running):
            m.d.comb += [self.act_en.eq(inside), self.act_addr.eq(address)]
            m.d.sync += [r_valid.eq(1), r_inside.eq(inside), r_first.eq(first),
                         r_last.eq(last), r_addr.eq(out_addr),
                         r_count.eq(Mux(rest >= lanes, lanes, rest))]
            with m.If(kx == f.kernel - 1):
                m.d.sync += [kx.eq(0), win_off.eq(win_off + win_wrap)]
                with m.If(ky == f.kernel - 1):
                    m.d.sync += [ky.eq(0), win_off.eq(0), out_addr.eq(out_addr + 1)]
                    with m.If(g == groups - 1):
                        m.d.sync += g.eq(0)
                        with m.If(ox == f.out_w - 1):
                            m.d.sync += [ox.eq(0), x_base.eq(0), pix_col.eq(0)]
                            with m.If(oy == f.out_h - 1):
                                m.d.sync += running.eq(0)
                            with m.Else():
                                m.d.sync += [oy.eq(oy + 1), y_base.eq(y_base + f.stride),
                                             pix_row.eq(pix_row + s_row)]
                        with m.Else():
                            m.d.sync += [ox.eq(ox + 1), x_base.eq(x_base + f.stride),
                                         pix_col.eq(pix_col + s_col)]
                    with m.Else():
                        m.d.sync += g.eq(g + 1)
                with m.Else():
                    m.d.sync += ky.eq(ky + 1)
            with m.Else():
                m.d.sync += [kx.eq(kx + 1), win_off.eq(win_off + groups)]

        # Stage 2: the read data, registered (block RAM output -> compare was the critical
        # path), padding already replaced by -128.
        d_valid = Signal()
        d_first = Signal()
        d_last = Signal()
        d_addr = Signal(abits)
        d_count = Signal(range(lanes + 1))
        d_data = [Signal(signed(8), name=f"in_{i}") for i in range(lanes)]
        m.d.sync += [d_valid.eq(r_valid), d_first.eq(r_first), d_last.eq(r_last),
                     d_addr.eq(r_addr), d_count.eq(r_count)]
        m.d.sync += [d.eq(Mux(r_inside, value, -128))
                     for d, value in zip(d_data, _lanes(self.act_data, lanes), strict=True)]

        # Stage 3: the running maximum; the output word at the window's last read.
        current = [Signal(signed(8), name=f"max_{i}") for i in range(lanes)]
        new = []
        for i, v in enumerate(d_data):
            n = Signal(signed(8), name=f"new_{i}")
            m.d.comb += n.eq(Mux(d_first | (v > current[i]), v, current[i]))
            new.append(n)
        w_en = Signal()
        m.d.sync += w_en.eq(0)
        with m.If(d_valid):
            m.d.sync += [c.eq(n) for c, n in zip(current, new, strict=True)]
            with m.If(d_last):
                m.d.sync += [w_en.eq(1), self.wr_addr.eq(d_addr),
                             self.wr_data.eq(Cat(*[Mux(i < d_count, n.as_unsigned(), Const(0, 8))
                                                   for i, n in enumerate(new)]))]
        m.d.comb += self.wr_en.eq(w_en)

        loops = [oy.eq(0), ox.eq(0), g.eq(0), ky.eq(0), kx.eq(0), y_base.eq(0), x_base.eq(0),
                 pix_row.eq(0), pix_col.eq(0), win_off.eq(0), out_addr.eq(f.dst),
                 running.eq(1)]
        if p.serial_setup:
            # The products come from the instruction checker (unit_setup_layout), and stay
            # in its registers while the instruction runs.
            u = self.setup
            m.d.comb += [rowstride.eq(u.rowstride), s_col.eq(u.s_col), s_row.eq(u.s_row),
                         pad_off.eq(u.pad_off), win_wrap.eq(u.wrap)]

        with m.FSM(name="maxpool"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += groups.eq(((f.channels + lanes - 1) * mul) >> sh)
                    if p.serial_setup:
                        m.d.sync += loops
                        m.next = "RUN"
                    else:
                        m.next = "SETUP1"
            if not p.serial_setup:
                # (a product per stage, its sum in the next: no multiplier before an adder)
                km1_g = Signal(abits)   # (kernel - 1) * G
                padl_g = Signal(abits)  # pad_l * G
                padt_row = Signal(abits)  # pad_t * rowstride
                with m.State("SETUP1"):
                    m.d.comb += self.busy.eq(1)
                    m.d.sync += [rowstride.eq(f.in_w * groups), s_col.eq(f.stride * groups),
                                 km1_g.eq((f.kernel - 1) * groups), padl_g.eq(f.pad_l * groups)]
                    m.next = "SETUP2"
                with m.State("SETUP2"):
                    m.d.comb += self.busy.eq(1)
                    m.d.sync += [s_row.eq(f.stride * rowstride), padt_row.eq(f.pad_t * rowstride),
                                 win_wrap.eq(rowstride - km1_g)]
                    m.next = "SETUP3"
                with m.State("SETUP3"):
                    m.d.comb += self.busy.eq(1)
                    m.d.sync += [pad_off.eq(padt_row + padl_g), *loops]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                with m.If(~running & ~r_valid & ~d_valid & ~w_en):
                    m.next = "IDLE"
        return m


class AvgPoolUnit(wiring.Component):
    """Runs one ``AVGPOOL``: lane-wise int32 sums over every pixel, then the PostUnit.

    Per channel group, the sum over all ``in_h x in_w`` pixels becomes one
    :class:`~.post.PostUnit` beat (bias, requantization) for the output word ``dst + g``.

    Cycles: ``G * (in_h * in_w + 2)`` plus the PostUnit's table loads and latency.

    Members
    -------
    start : In(1)  /  insn : In(insn_layout(Op.AVGPOOL))  /  busy : Out(1)
    act_addr, act_en : Out  /  act_data : In(8 * lanes)
    post : Out(stream.Signature(post_in_layout(p)))
    """

    def __init__(self, p):
        if not isinstance(p, NpuParams):
            raise TypeError(f"p must be NpuParams, not {type(p).__name__}")
        self.p = p
        super().__init__(unit_members(p, Op.AVGPOOL, post=True))

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.p
        lanes = p.lanes
        f = self.insn
        mul, sh = group_divider(lanes, 10)
        groups = Signal(10)
        pixels = Signal(16)
        g = Signal(10)
        left = Signal(16)
        addr = Signal(16)
        r_valid = Signal()
        r_first = Signal()
        sums = [Signal(signed(32), name=f"sum_{i}") for i in range(lanes)]
        m.d.sync += r_valid.eq(0)
        with m.If(r_valid):
            for s, value in zip(sums, _lanes(self.act_data, lanes), strict=True):
                m.d.sync += s.eq(Mux(r_first, value, s + value))
        rest = Signal(signed(12))
        m.d.comb += rest.eq(f.channels - (g * lanes)[:11])
        # The group's first table entry and channel count, registered (no adder before the
        # PostUnit's cache check).
        chan = Signal(12)
        count = Signal(range(lanes + 1))
        m.d.comb += [self.post.payload.addr.eq(f.dst + g), self.post.payload.chan.eq(chan),
                     self.post.payload.count.eq(count)]
        m.d.comb += [self.post.payload.acc[i].eq(s) for i, s in enumerate(sums)]

        with m.FSM(name="avgpool"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [groups.eq(((f.channels + lanes - 1) * mul) >> sh),
                                 pixels.eq(f.in_h * f.in_w), g.eq(0)]
                    m.next = "GROUP"
            with m.State("GROUP"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [left.eq(pixels), addr.eq(f.src + g),
                             chan.eq(f.tab + (g * lanes)[:12]),
                             count.eq(Mux(rest >= lanes, lanes, rest))]
                m.next = "SUM"
            with m.State("SUM"):
                m.d.comb += self.busy.eq(1)
                with m.If(left != 0):
                    m.d.comb += [self.act_en.eq(1), self.act_addr.eq(addr)]
                    m.d.sync += [r_valid.eq(1), r_first.eq(left == pixels),
                                 left.eq(left - 1), addr.eq(addr + groups)]
                with m.Elif(~r_valid):
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [self.busy.eq(1), self.post.valid.eq(1)]
                with m.If(self.post.ready):
                    m.d.sync += g.eq(g + 1)
                    with m.If(g == groups - 1):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "GROUP"
        return m
