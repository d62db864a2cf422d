"""SPFC: a pruned, weight-shared fully connected layer on the sparse engine."""

from amaranth.hdl import Module, ResetInserter, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..sparse.engine import SparseMatVec
from ..sparse.ports import CfgOp
from .decoder import group_divider
from .isa import CFG_BITS, Op, cfg_words
from .params import NpuParams
from .unit import unit_members

__all__ = ["SparseFcUnit"]

#: Cycles between the last configuration beat and the look at the engine's error flag
#: (the engine's configuration writer takes up to 3, its sticky flag one more).
SETTLE_CYCLES = 5


class SparseFcUnit(wiring.Component):
    """Runs one ``SPFC`` on a :class:`~npugen.rtl.sparse.engine.SparseMatVec`.

    Phases:

    1. Load, unless the engine holds this instruction's ``(wgt, beats)`` load already (a
       tag, forgotten on ``invalidate`` - any host write to the weight scratchpad - on an
       engine error and on reset): reset the engine (clears a sticky error; its
       memories and shape survive), then send ``beats`` configuration beats, beat ``k``
       from the :func:`~.isa.cfg_words` weight words at ``wgt + k * cfg_words``
       (concatenated, word 0 lowest; bits 0-39 are the engine's ``CFG_LAYOUT``). Each beat
       costs ``cfg_words + 2`` cycles (reads, then the offer). After
       :data:`SETTLE_CYCLES` the engine's error flag decides: set -> ``failed``.
    2. Shape: the last accepted SHAPE beat (mirrored here: rows, cols) must be ``cout x
       cin``, else ``failed`` (nothing runs).
    3. Run: the ``G = ceil(cin / lanes)`` input words are read (one every 2 cycles),
       ``x - zp_in`` of every lane (9 bits, sign-extended to the engine's 16) sent as one
       ``i_act`` beat each, ``last`` on the final one. The engine's readout ``y[0..cout-1]``
       is packed ``lanes`` rows to a :class:`~.post.PostUnit` beat (``dst + g``, table
       entry ``tab + g * lanes``). If the engine's error flag is up when its readout
       starts (a column's pointers, an entry past the rows: found while the PEs drain),
       the readout is taken and dropped, and ``failed`` is set: nothing is written.

    Members
    -------
    start : In(1)  /  insn : In(insn_layout(Op.SPFC))  /  busy : Out(1)
    act_addr, act_en : Out  /  act_data : In(8 * lanes)
    wgt_addr, wgt_en : Out  /  wgt_data : In(8 * lanes)
        Read ports (data the cycle after the enable); 0 while idle.
    post : Out(stream.Signature(post_in_layout(p)))
    invalidate : In(1)
        The weight scratchpad was written: the next ``SPFC`` loads.
    failed : Out(1)
        The last ``SPFC`` stopped on the engine (error ``SPARSE``); valid once ``busy``
        falls, until the next start.
    """

    def __init__(self, p):
        if not isinstance(p, NpuParams):
            raise TypeError(f"p must be NpuParams, not {type(p).__name__}")
        if p.sparse is None:
            raise ValueError("p.sparse must be set for a SparseFcUnit")
        self.p = p
        super().__init__(unit_members(p, Op.SPFC, weights=True, post=True)
                         | {"invalidate": In(1), "failed": Out(1)})

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.p
        sp = p.sparse
        lanes = p.lanes
        word_bits = 8 * lanes
        wpb = cfg_words(lanes)
        f = self.insn
        mul, sh = group_divider(lanes, 10)

        eng_reset = Signal()
        m.submodules.engine = eng = ResetInserter(eng_reset)(SparseMatVec(sp))

        # The load tag, and the engine's shape as its configuration writer holds it (both
        # without reset where the engine's survive one).
        tag_valid = Signal()
        tag_wgt = Signal(16)
        tag_beats = Signal(16)
        rows = Signal(range(sp.rows_max + 1), init=sp.rows_max, reset_less=True)
        cols = Signal(range(sp.cols_max + 1), init=sp.cols_max, reset_less=True)
        with m.If(self.invalidate):
            m.d.sync += tag_valid.eq(0)
        failed = Signal()
        m.d.comb += self.failed.eq(failed)

        groups = Signal(10)
        # -- load -------------------------------------------------------------------------
        beat = Signal(wpb * word_bits)
        w_addr = Signal(16)
        k = Signal(16)          # beats sent
        j = Signal(range(max(wpb, 2)))  # word of the beat being read
        r_valid = Signal()      # the weight word read last cycle arrives now
        r_idx = Signal(range(max(wpb, 2)))
        m.d.sync += r_valid.eq(0)
        with m.If(r_valid):
            with m.Switch(r_idx):
                for n in range(wpb):
                    with m.Case(n):
                        m.d.sync += beat[n * word_bits:(n + 1) * word_bits].eq(self.wgt_data)
        cfg = eng.i_cfg.payload
        m.d.comb += cfg.as_value().eq(beat[:CFG_BITS])
        with m.If(eng.i_cfg.valid & eng.i_cfg.ready & (cfg.op == CfgOp.SHAPE)
                  & (cfg.addr >= 1) & (cfg.addr <= sp.rows_max)
                  & (cfg.data >= 1) & (cfg.data <= sp.cols_max)):
            m.d.sync += [rows.eq(cfg.addr), cols.eq(cfg.data)]
        settle = Signal(range(SETTLE_CYCLES + 1))

        # -- run: activations in ------------------------------------------------------------
        a_addr = Signal(16)
        issued = Signal(10)     # input words read
        sent = Signal(10)       # beats taken by the engine
        inflight = Signal()
        have = Signal()
        values = [Signal(signed(sp.act_width), name=f"x_{n}") for n in range(lanes)]
        feeding = Signal()
        fire = eng.i_act.valid & eng.i_act.ready
        m.d.comb += [eng.i_act.valid.eq(have),
                     eng.i_act.payload.last.eq(sent == groups - 1)]
        m.d.comb += [eng.i_act.payload.a[n].eq(v) for n, v in enumerate(values)]
        m.d.sync += inflight.eq(0)
        with m.If(fire):
            m.d.sync += [have.eq(0), sent.eq(sent + 1)]
        with m.If(feeding & (issued != groups) & ~inflight & (~have | fire)):
            m.d.comb += [self.act_en.eq(1), self.act_addr.eq(a_addr)]
            m.d.sync += [inflight.eq(1), issued.eq(issued + 1), a_addr.eq(a_addr + 1)]
        with m.If(inflight):
            m.d.sync += have.eq(1)
            for n, v in enumerate(values):
                m.d.sync += v.eq(self.act_data[8 * n:8 * n + 8].as_signed() - f.zp_in)

        # -- run: readout to the PostUnit ---------------------------------------------------
        acc = [Signal(signed(32), name=f"y_{n}") for n in range(lanes)]
        lane = Signal(range(lanes + 1))
        g = Signal(10)
        # f.tab + g * lanes, kept as a register: no adder before the PostUnit's cache check.
        chan = Signal(12)
        pending = Signal()
        dropping = Signal()
        out_done = Signal()
        post = self.post.payload
        m.d.comb += [self.post.valid.eq(pending),
                     post.addr.eq(f.dst + g), post.chan.eq(chan),
                     post.count.eq(lane)]
        m.d.comb += [post.acc[n].eq(a) for n, a in enumerate(acc)]
        with m.If(self.post.valid & self.post.ready):
            m.d.sync += [pending.eq(0), g.eq(g + 1), lane.eq(0), chan.eq(chan + lanes)]
        collecting = Signal()
        m.d.comb += eng.o.ready.eq(collecting & ~pending)
        with m.If(eng.o.valid & eng.o.ready):
            with m.Switch(lane):
                for n in range(lanes):
                    with m.Case(n):
                        m.d.sync += acc[n].eq(eng.o.payload.y)
            m.d.sync += lane.eq(lane + 1)
            drop = dropping | eng.error
            with m.If(drop):
                m.d.sync += [dropping.eq(1), lane.eq(0)]
            with m.Elif((lane == lanes - 1) | eng.o.payload.last):
                m.d.sync += pending.eq(1)
            with m.If(eng.o.payload.last):
                m.d.sync += out_done.eq(1)

        with m.FSM(name="spfc"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [failed.eq(0),
                                 groups.eq(((f.cin + lanes - 1) * mul) >> sh)]
                    cached = tag_valid & (tag_wgt == f.wgt) & (tag_beats == f.beats)
                    with m.If(cached):
                        m.next = "SHAPE"
                    with m.Else():
                        m.d.comb += eng_reset.eq(1)
                        m.d.sync += [tag_valid.eq(0), w_addr.eq(f.wgt), k.eq(0), j.eq(0)]
                        m.next = "READ"
            with m.State("READ"):
                m.d.comb += [self.busy.eq(1), self.wgt_en.eq(1), self.wgt_addr.eq(w_addr)]
                m.d.sync += [w_addr.eq(w_addr + 1), r_valid.eq(1), r_idx.eq(j), j.eq(j + 1)]
                with m.If(j == wpb - 1):
                    m.d.sync += j.eq(0)
                    m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += self.busy.eq(1)
                m.next = "OFFER"
            with m.State("OFFER"):
                m.d.comb += [self.busy.eq(1), eng.i_cfg.valid.eq(1)]
                with m.If(eng.i_cfg.ready):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == f.beats - 1):
                        m.d.sync += settle.eq(0)
                        m.next = "SETTLE"
                    with m.Else():
                        m.next = "READ"
            with m.State("SETTLE"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += settle.eq(settle + 1)
                with m.If(settle == SETTLE_CYCLES - 1):
                    with m.If(eng.error):
                        m.d.sync += failed.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [tag_valid.eq(1), tag_wgt.eq(f.wgt),
                                     tag_beats.eq(f.beats)]
                        m.next = "SHAPE"
            with m.State("SHAPE"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [a_addr.eq(f.src), issued.eq(0), sent.eq(0), g.eq(0), chan.eq(f.tab),
                             lane.eq(0), dropping.eq(0), out_done.eq(0)]
                with m.If((rows != f.cout) | (cols != f.cin)):
                    m.d.sync += failed.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [self.busy.eq(1), feeding.eq(1), collecting.eq(1)]
                with m.If(out_done & ~pending):
                    with m.If(dropping):
                        m.d.sync += [failed.eq(1), tag_valid.eq(0)]
                    m.next = "IDLE"
        return m
