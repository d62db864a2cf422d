"""ADD: element-wise int8 add of two tensors through the QLinearAdd units."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring

from .decoder import group_divider
from .isa import Op
from .params import NpuParams
from .qladd import QLinearAdder
from .unit import unit_members

__all__ = ["AddUnit"]


class AddUnit(wiring.Component):
    """Runs one ``ADD``: ``out[w] = qladd(a[w], b[w])`` for every word of the two tensors.

    ``a`` is at ``src``, ``b`` at ``src_b`` (one bank), the output at ``dst`` (the other);
    ``pixels * G`` words each, ``G = ceil(channels / lanes)``. Lanes beyond ``channels`` are
    written as 0.

    Schedule: a reader fetches a word of ``a``, then the word of ``b`` at the same offset
    (one read port, two cycles per pair) into a two-entry pair buffer; a feeder sends each
    pair to the ``add_units`` :class:`~.qladd.QLinearAdder` units, ``add_units`` lanes per
    cycle (``lanes / add_units`` cycles per word); a collector gathers their outputs (always
    taken: the units never stall) and writes each finished word, registered. A word costs
    ``max(lanes / add_units, 2)`` cycles, then the last word's chunks and the units'
    latency (the cycle model, exact on every case measured: :func:`npugen.sim.models.npu.
    cycles_of`).

    Members
    -------
    start : In(1)  /  insn : In(insn_layout(Op.ADD))  /  busy : Out(1)
    act_addr, act_en : Out  /  act_data : In(8 * lanes)
        Activation read port (data the cycle after ``act_en``); 0 while idle.
    wr_addr, wr_data, wr_en : Out
        Activation write port.
    """

    def __init__(self, p):
        if not isinstance(p, NpuParams):
            raise TypeError(f"p must be NpuParams, not {type(p).__name__}")
        if not p.add_units:
            raise ValueError("p.add_units must be at least 1 for an AddUnit")
        self.p = p
        super().__init__(unit_members(p, Op.ADD, write=True))

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.p
        lanes, units = p.lanes, p.add_units
        chunks = lanes // units
        f = self.insn
        mul, sh = group_divider(lanes, 10)
        adders = [QLinearAdder() for _ in range(units)]
        for k, adder in enumerate(adders):
            m.submodules[f"adder{k}"] = adder
            m.d.comb += adder.o.ready.eq(1)  # the collector takes every beat

        groups = Signal(10)
        words = Signal(17)
        running = Signal()

        # -- reader: a's word, then b's, into a two-entry pair buffer ---------------------
        rd_off = Signal(17)     # offset of the next pair to read
        rd_b = Signal()         # the next read is b's word of that pair
        r_valid = Signal()      # a read was issued last cycle (its data is on act_data)
        r_b = Signal()
        a_hold = Signal(8 * lanes)
        buf_a = [Signal(8 * lanes, name=f"buf_a{i}") for i in range(2)]
        buf_b = [Signal(8 * lanes, name=f"buf_b{i}") for i in range(2)]
        head = Signal()
        tail = Signal()
        level = Signal(range(3))
        pending = Signal()      # a pair between its first read and its push
        push = Signal()
        pop = Signal()
        issue_a = Signal()
        m.d.sync += r_valid.eq(0)
        with m.If(rd_b):
            m.d.comb += [self.act_en.eq(1), self.act_addr.eq((f.src_b + rd_off)[:16])]
            m.d.sync += [r_valid.eq(1), r_b.eq(1), rd_b.eq(0), rd_off.eq(rd_off + 1)]
        # Room for the pair: it lands two cycles later, so this cycle's pop counts as free.
        with m.Elif(running & (rd_off != words) & ((level + pending) < 2 + pop)):
            m.d.comb += [issue_a.eq(1), self.act_en.eq(1),
                         self.act_addr.eq((f.src + rd_off)[:16])]
            m.d.sync += [r_valid.eq(1), r_b.eq(0), rd_b.eq(1)]
        with m.If(r_valid & ~r_b):
            m.d.sync += a_hold.eq(self.act_data)
        m.d.sync += pending.eq(issue_a | (pending & ~push))
        with m.If(r_valid & r_b):
            m.d.comb += push.eq(1)
            m.d.sync += tail.eq(~tail)
            for i in range(2):
                with m.If(tail == i):
                    m.d.sync += [buf_a[i].eq(a_hold), buf_b[i].eq(self.act_data)]
        m.d.sync += level.eq(level + push - pop)

        # -- feeder: add_units lanes of the head pair per cycle ------------------------------
        chunk = Signal(range(max(chunks, 2)))
        sel_a = Signal(8 * lanes)
        sel_b = Signal(8 * lanes)
        m.d.comb += [sel_a.eq(Mux(head, buf_a[1], buf_a[0])),
                     sel_b.eq(Mux(head, buf_b[1], buf_b[0]))]
        feed = level != 0
        for k, adder in enumerate(adders):
            pay = adder.i.payload
            # The instruction's constants stay put while the ADD runs, as the unit requires.
            c = adder.c
            m.d.comb += [adder.i.valid.eq(feed), c.rac.eq(f.rac), c.rbc.eq(f.rbc),
                         c.fixed.eq(f.fixed), c.mode.eq(f.mode), c.shift.eq(f.shift),
                         c.shift_b.eq(f.shift_b), c.shift_out.eq(f.shift_out),
                         c.za.eq(f.zp_a), c.zb.eq(f.zp_b), c.zc.eq(f.zp_out), c.lo.eq(f.lo),
                         c.hi.eq(f.hi)]
            with m.Switch(chunk):
                for j in range(chunks):
                    lane = j * units + k
                    with m.Case(j):
                        m.d.comb += [pay.a.eq(sel_a[8 * lane:8 * lane + 8]),
                                     pay.b.eq(sel_b[8 * lane:8 * lane + 8])]
        with m.If(feed):
            with m.If(chunk == chunks - 1):
                m.d.comb += pop.eq(1)
                m.d.sync += [chunk.eq(0), head.eq(~head)]
            with m.Else():
                m.d.sync += chunk.eq(chunk + 1)

        # -- collector: chunks into words; lanes beyond channels as 0 ------------------------
        out_chunk = Signal(range(max(chunks, 2)))
        gathered = Signal(8 * lanes)   # the word's chunks so far, the newest on top
        out_left = Signal(17)
        out_addr = Signal(16)
        out_group = Signal(10)
        base_ch = Signal(11)           # out_group * lanes
        incoming = Cat(*(a.o.payload.value for a in adders))
        whole = Cat(gathered[8 * units:], incoming) if chunks > 1 else incoming
        w_en = Signal()
        m.d.sync += w_en.eq(0)
        with m.If(adders[0].o.valid):
            m.d.sync += gathered.eq(whole)
            with m.If(out_chunk == chunks - 1):
                m.d.sync += [out_chunk.eq(0), w_en.eq(1), self.wr_addr.eq(out_addr),
                             out_addr.eq(out_addr + 1), out_left.eq(out_left - 1)]
                m.d.sync += self.wr_data.eq(Cat(*[
                    Mux(base_ch + lane < f.channels, whole[8 * lane:8 * lane + 8],
                        Const(0, 8)) for lane in range(lanes)]))
                with m.If(out_group == groups - 1):
                    m.d.sync += [out_group.eq(0), base_ch.eq(0)]
                with m.Else():
                    m.d.sync += [out_group.eq(out_group + 1), base_ch.eq(base_ch + lanes)]
            with m.Else():
                m.d.sync += out_chunk.eq(out_chunk + 1)
        m.d.comb += self.wr_en.eq(w_en)

        with m.FSM(name="add"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += groups.eq(((f.channels + lanes - 1) * mul) >> sh)
                    m.next = "SETUP"
            with m.State("SETUP"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [words.eq(f.pixels * groups), out_left.eq(f.pixels * groups),
                             rd_off.eq(0), rd_b.eq(0), out_addr.eq(f.dst), out_group.eq(0),
                             base_ch.eq(0), out_chunk.eq(0), chunk.eq(0), running.eq(1)]
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                with m.If(out_left == 0):  # the last word is written at this edge
                    m.d.sync += running.eq(0)
                    m.next = "IDLE"
        return m
