"""EIE-style sparse matrix-vector engine: y = W_q . x on a pruned, weight-shared matrix."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring

from ..common.head_fifo import HeadFifo
from ..common.params import Validated
from .engine_parts import ActivationInput, ConfigWriter, Readout
from .params import Primitives, SparseParams
from .pe import SparsePE
from .ports import signature

__all__ = ["SparseMatVec"]


class SparseMatVec(Validated, wiring.Component):
    """Sparse matrix-vector engine (EIE): ``n_pe`` PEs, CSC storage, zero skipping.

    ::

        i_act --> 3-beat FIFO (with each lane's "non-zero") --> zero-beat drop --> A -->
            B: leading-non-zero detector --(j, x_j)--> broadcast to every PE queue (stalls
            while any queue is full; "all have room" is a register)
        PE p: queue -> pointers -> entries -> RelIndexDecoder -> 16 x act_width MAC into
            its local accumulators (rows p, p + n_pe, ...)
        all PEs drained --> readout y[0..rows-1] (row i from PE i % n_pe) --> o
            (with acc_banks=2 beside the next vector's MAC phase)

    Load (while idle, through ``i_cfg``): SHAPE, CODEBOOK, and per PE the column pointers
    and the entries of :mod:`npugen.sim.compress`'s format. The loaded model survives reset
    and runs any number of vectors; loading again replaces any part of it.

    Run: the activation vector arrives on ``i_act``, ``act_lanes`` columns per beat,
    ``last`` on beat ``ceil(cols / act_lanes) - 1`` (the column count decides where the
    vector ends; a ``last`` elsewhere raises ``error``). Lanes past ``cols`` are ignored.
    All-zero beats are taken and dropped at one beat per cycle without occupying the
    detector; every other zero costs no cycle either: the detector hands one non-zero
    activation per cycle to the PEs. After the last beat and once every PE has drained,
    ``o`` streams ``y[i]`` for ``i = 0..rows-1``, ``last`` on the final row, one per cycle
    (backpressure allowed), while the accumulators are cleared for the next vector. With
    ``acc_banks=2`` the PEs' accumulators are double-buffered: once every PE has drained, the
    banks swap and the next vector is taken at once while the readout streams the previous
    one (a vector that drains before that readout has finished waits for it; ``i_cfg``
    beats wait for it too).

    Arithmetic: ``y = wrap(sum_j codebook[idx_ij] * x_j, acc_width)``, then ``max(y, 0)``
    with ``relu``. Products are exact (16 + act_width bits); accumulators wrap.

    Errors (sticky ``error``, cleared by reset; nothing is written out of bounds): an
    ``i_cfg`` field out of range (the beat is ignored), a misplaced ``i_act.last``, a column
    whose pointers are not ``ptr[j] <= ptr[j+1] <= entries_max`` (skipped), an entry whose
    row runs past ``rows`` (dropped with the rest of its column).

    Reset: back to idle with nothing in flight; the accumulators are cleared in
    ``max(2, ceil(rows_max / n_pe))`` cycles before ``i_act`` is accepted again.

    Members
    -------
    i_cfg : In(stream.Signature(CFG_LAYOUT))
        ``op`` (:class:`CfgOp`), ``pe`` (6 bits), ``addr`` (16 bits), ``data`` (16 bits).
    i_act : In(stream.Signature(StructLayout{a: act_lanes x signed(act_width), last}))
    o : Out(stream.Signature(StructLayout{y: signed(acc_width), last}))
    error : Out(1)
    pe_active : Out(n_pe)
        Bit p: PE p reads a stored entry this cycle (load-balance monitor).
    """

    @classmethod
    def validate(cls, params):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        if not isinstance(params, SparseParams):
            raise TypeError(f"params must be SparseParams, not {params!r}")

    def __init__(self, params):
        self.params = params
        super().__init__(signature(params))

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        p = self.params
        m = Module()
        m.submodules.config = config = ConfigWriter(p)
        m.submodules.activations = acts = ActivationInput(p)
        m.submodules.readout = readout = Readout(p)
        wiring.connect(m, wiring.flipped(self.i_act), acts.i_act)
        wiring.connect(m, wiring.flipped(self.o), readout.o)
        # With the ECP5 primitives the activations reach the PEs through a three-item FIFO,
        # so the detector's handshake does not wait on every PE queue's "ready" (a wide AND
        # across the chip); portable builds broadcast straight from the detector.
        deep = p.primitives is Primitives.ECP5
        item_layout = acts.item.payload.shape()
        bc_valid = Signal()
        all_ready = Signal(init=1)
        if deep:
            # Its "not full" and its head are flip-flops (HeadFifo): the detector's handshake
            # starts at the register ``queues_ready``.
            m.submodules.broadcast = bc = HeadFifo(item_layout)
            bc_item = bc.r_data
            bc_empty = ~bc.pending
            m.d.comb += [
                acts.queues_ready.eq(bc.w_rdy), acts.item.ready.eq(bc.w_rdy),
                bc.w_en.eq(acts.item.valid), bc.w_data.eq(acts.item.payload.as_value()),
                # The head of the FIFO goes to every PE's queue once all have room.
                bc_valid.eq(bc.r_rdy & all_ready), bc.r_en.eq(bc_valid),
            ]
        else:
            bc_item = acts.item.payload
            bc_empty = 1
            m.d.comb += [acts.queues_ready.eq(all_ready), acts.item.ready.eq(all_ready),
                         bc_valid.eq(acts.item.valid)]
        pes = []
        for n in range(p.n_pe):
            m.submodules[f"pe_{n}"] = pe = SparsePE(p, n)
            pes.append(pe)
            m.d.comb += [
                pe.rows.eq(config.rows),
                pe.ptr_w.en.eq(config.ptr_en[n]), pe.ptr_w.addr.eq(config.addr),
                pe.ptr_w.data.eq(config.data),
                pe.entry_w.en.eq(config.entry_en[n]), pe.entry_w.addr.eq(config.addr),
                pe.entry_w.data.eq(config.data),
                pe.codebook.valid.eq(config.codebook.valid),
                pe.codebook.payload.eq(config.codebook.payload),
                pe.q.valid.eq(bc_valid), pe.q.payload.eq(bc_item),
                pe.acc_addr.eq(readout.acc_addr), readout.acc_data[n].eq(pe.acc_data),
                pe.clear.en.eq(readout.clear_en[n]), pe.clear.addr.eq(readout.clear_to),
            ]
        m.d.comb += [
            config.cfg.eq(self.i_cfg.payload),
            config.fire.eq(self.i_cfg.valid & self.i_cfg.ready),
            config.codebook.ready.eq(1),  # the decoders take every codebook write
            acts.cols.eq(config.cols), acts.col_flags.eq(config.col_flags),
            readout.rows.eq(config.rows),
            self.pe_active.eq(Cat(pe.active for pe in pes)),
            self.error.eq(config.error | acts.error | Cat(pe.error for pe in pes).any()),
        ]
        # Every queue has room: a register (each PE predicts its queue's "ready" a cycle
        # ahead), so the broadcast's handshake and the detector's enables behind it start
        # at a flip-flop, not at the AND of the queues' levels across the chip. Equal to
        # the AND of the queues' ``ready`` in every cycle (after reset: empty queues).
        m.d.sync += all_ready.eq(Cat(pe.room_next for pe in pes).all())
        any_busy = Cat(pe.busy for pe in pes).any()
        started = Signal()  # a vector's first beat was taken in IDLE
        # The vector is in and every PE has drained (registered: once true it stays true
        # until the readout, as nothing new is taken after the last beat).
        drained = Signal()
        m.d.sync += drained.eq(acts.done & acts.empty & bc_empty & ~any_busy)
        # Configuration beats of the last LATENCY cycles; without reset, like the
        # configuration writer's stages (a beat taken just before a reset is still written,
        # and the vector after it must still wait for it).
        cfg_fired = Signal(config.LATENCY, reset_less=True)
        cfg_fire = self.i_cfg.valid & self.i_cfg.ready
        m.d.sync += cfg_fired.eq(Cat(cfg_fire, cfg_fired[:-1]))
        # ``cfg_fired == 0`` in the next cycle.
        cfg_quiet_next = ~cfg_fire & (cfg_fired[:-1] == 0)
        # The activation input takes beats in RUN and in IDLE without a configuration beat
        # in the last LATENCY cycles (and not after the vector's last beat: its own rule).
        # That is a register, ``enable``, so the input's handshake starts at flip-flops: the
        # FSM below sets its next value, ``enable_next``, with each transition (reset: CLEAR,
        # 0).
        enable = Signal()
        enable_next = Signal()
        m.d.comb += [enable_next.eq(enable), acts.enable.eq(enable)]
        m.d.sync += enable.eq(enable_next)
        clear_addr = Signal(range(max(2, p.rows_pe_max)))
        # The clear after reset (the FSM's CLEAR state), as a register of its own: it gates
        # ``i_act.ready``, whose fan-out (the input FIFO's write enables) should start at a
        # flip-flop, not at the FSM's state decode.
        clearing = Signal(init=1)
        m.d.comb += [readout.clear_addr.eq(clear_addr), acts.accept.eq(~clearing)]
        banked = p.acc_banks == 2
        bank = Signal()   # two banks: the one the MACs add into
        swap = Signal()   # two banks: the drained vector's bank goes to the readout
        if banked:
            # Swap at cycle S: the PEs take the new bank at S + 2 (their own register, so
            # ``bank`` drives no wide fan-out), the readout issues its first read at S + 2.
            # The last read, issued at L, returns and clears its row until L + 2; the PEs
            # must not see the next swap before L + 3, so it waits until L + 4.
            reading = Signal()  # a readout runs beside the next vector's MAC phase
            swapped = Signal()
            tail = Signal(3)
            m.d.sync += [swapped.eq(swap), tail.eq(Cat(readout.last_issued, tail[:-1]))]
            with m.If(swapped):
                m.d.sync += reading.eq(1)
            with m.If(readout.last_issued):
                m.d.sync += reading.eq(0)
            readout_idle = ~reading & ~swapped & (tail == 0)
            m.d.comb += [readout.read.eq(reading), acts.restart.eq(swap)]
            for pe in pes:
                m.d.comb += pe.bank.eq(bank)
        else:
            readout_idle = 1
            m.d.comb += acts.restart.eq(readout.last_issued)

        # CLEAR the accumulators after reset; IDLE: model writes, or a vector's first beat;
        # RUN until the vector is in and every PE has drained; READ out y (one bank), or
        # swap the banks and go back to IDLE while the readout runs (two banks).
        with m.FSM(init="CLEAR"):
            with m.State("CLEAR"):
                m.d.comb += readout.clear_all.eq(1)
                for pe in pes:
                    m.d.comb += pe.readout.eq(1)
                m.d.sync += clear_addr.eq(clear_addr + 1)
                with m.If(clear_addr == max(2, p.rows_pe_max) - 1):
                    m.d.comb += enable_next.eq(cfg_quiet_next)
                    m.d.sync += clearing.eq(0)
                    m.next = "IDLE"
            with m.State("IDLE"):
                # A vector waiting in the activation input's FIFO goes first, then
                # configuration beats (both decided from registers, not from the ports'
                # valid). No vector beat in the LATENCY cycles after a configuration beat
                # (the configuration writer's pipeline; ``cols`` then reaches the activation
                # input's lane-mask registers a cycle later). The state follows the first
                # beat a cycle late (``started``); no configuration beat is taken in that
                # cycle either. With two banks, configuration also waits for a running
                # readout (its row count is the vector's).
                m.d.comb += self.i_cfg.ready.eq(~started & ~acts.pending & readout_idle)
                m.d.sync += started.eq(acts.taken | started)
                m.d.comb += enable_next.eq(cfg_quiet_next)
                with m.If(started):
                    m.d.sync += started.eq(0)
                    m.d.comb += enable_next.eq(1)
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(drained):
                    if banked:  # the readout runs beside the next vector
                        with m.If(readout_idle):
                            m.d.comb += swap.eq(1)
                            m.d.sync += bank.eq(~bank)
                            m.d.comb += enable_next.eq(cfg_quiet_next)
                            m.next = "IDLE"
                    else:
                        m.d.comb += enable_next.eq(0)
                        m.next = "READ"
            if not banked:
                with m.State("READ"):
                    for pe in pes:
                        m.d.comb += pe.readout.eq(1)
                    m.d.comb += readout.read.eq(1)
                    with m.If(readout.last_issued):
                        m.d.comb += enable_next.eq(cfg_quiet_next)
                        m.next = "IDLE"
        return m

    def manifest_info(self):
        """Return timing, protocol notes and port roles for the JSON manifest."""
        p = self.params
        return {
            "latency": {
                "last_beat_to_first_output": (
                    f"{28 + (p.acc_banks == 2)} cycles portable, 24 with primitives=ecp5 "
                    "and one accumulator bank, from the last beat's handshake for one "
                    "non-zero in it and one stored entry per PE, any size (portable: pinned "
                    "by tests/rtl/test_sparse_engine.py; ecp5: measured once), plus the "
                    "entries still queued (data-dependent)"),
                "reset_to_ready": max(2, p.rows_pe_max),
            },
            "throughput": {
                "input_beats_per_cycle": 1,
                "nonzero_activations_per_cycle": 1,
                "stored_entries_per_cycle_per_pe": 1,
                "multipliers": p.n_pe,
                "outputs_per_cycle": 1,
            },
            "protocol": [
                ("Load while idle on i_cfg: SHAPE (addr=rows, data=cols), CODEBOOK (addr=index, "
                "data=int16), POINTER (pe, addr=column 0..cols, data=pointer), ENTRY (pe, "
                "addr, data=run<<4|index); format of npugen.sim.compress."),
                (f"i_act: the vector, {p.act_lanes} columns per beat, last on the final beat; "
                "lanes past cols ignored. i_cfg beats wait while a vector runs or waits in "
                "the three-beat input FIFO."),
                "o: y[0..rows-1], last on the final row; y = wrap(W_q x, acc_width)"
                + (", then ReLU" if p.relu else "") + "."
                + (" Two accumulator banks: the next vector is taken while this readout "
                   "runs; i_cfg beats wait for the readout." if p.acc_banks == 2 else ""),
                ("error is sticky (bad i_cfg field, misplaced last, bad pointer, row overflow); "
                "reset clears it and keeps the loaded model."),
            ],
            "roles": {
                "i_cfg": "model load: op, pe, addr, data",
                "i_act": f"a: {p.act_lanes} x signed {p.act_width}-bit activations; last",
                "o": f"y: signed {p.acc_width}-bit output; last on row rows-1",
                "error": "sticky error flag",
                "pe_active": "bit p: PE p reads a stored entry this cycle",
            },
        }
