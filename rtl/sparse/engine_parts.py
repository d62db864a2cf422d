"""The pieces of :class:`~.engine.SparseMatVec`: model writes, activation input, readout.

::

    i_cfg --> ConfigWriter --(pointer, entry and codebook writes; rows, cols)--> PEs
    i_act --> ActivationInput: drop all-zero beats, A, B: leading-non-zero detector
              --(column, value), one per cycle--> every PE's queue
    PEs' accumulators --> Readout: y[0..rows-1], row i from PE i % n_pe --> o
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..common.head_fifo import HeadFifo
from ..common.pipeline import delay, in_range, select
from ..common.result_buffer import ResultBuffer
from .params import ENTRY_BITS, Primitives
from .ports import CFG_LAYOUT, CfgOp, act_item_layout, act_layout, codebook_layout, out_layout

__all__ = ["OUT_DEPTH", "ActivationInput", "ConfigWriter", "Readout", "col_flags_layout"]

#: Output words buffered so that readout runs at one word per cycle: the reserve-to-offer
#: loop (three cycles to the buffer's write, its read latency of four) plus the slack of
#: reserving through the registered ``can_reserve``.
OUT_DEPTH = 12


def _lowest(value):
    """One-hot: ``value``'s lowest set bit (0 when none is set)."""
    return Cat(value[k] & ~value[:k].any() if k else value[0] for k in range(len(value)))


def _flags_agree(word):
    """``word``'s ``rest``, ``low1`` and ``low2`` agree with its ``nonzero`` lanes."""
    return ((word.low1 == _lowest(word.nonzero)) & (word.rest == word.nonzero & ~word.low1)
            & (word.low2 == _lowest(word.rest)))


def _above(value, k):
    """``value > k``, constant where ``value``'s width decides it (no lint warning)."""
    return Const(0) if k >= (1 << len(value)) - 1 else value > k


def _at_most(value, k):
    """``value <= k``, constant where ``value``'s width decides it."""
    return Const(1) if k >= (1 << len(value)) - 1 else value <= k


def col_flags_layout(lanes):
    """Return the layout of the lane flags of a vector's first three beats.

    For beat b (0, 1, 2: ``first``, ``second``, ``third``): ``<b>_mask`` bit k = lane k of
    beat b is below ``cols`` (``cols > k + b * lanes``), ``<b>_last`` = beat b is the
    vector's last or past it (``cols <= (b + 1) * lanes``).
    """
    return data.StructLayout({f"{b}_{kind}": lanes if kind == "mask" else 1
                              for b in ("first", "second", "third") for kind in ("mask", "last")})


def _col_flags(cols, lanes):
    """Return the :func:`col_flags_layout` fields of ``cols`` (a value, or an int: the init)."""
    flags = {}
    for b, name in enumerate(("first", "second", "third")):
        if isinstance(cols, int):
            flags[f"{name}_mask"] = sum(1 << k for k in range(lanes) if cols > k + b * lanes)
            flags[f"{name}_last"] = int(cols <= (b + 1) * lanes)
        else:
            flags[f"{name}_mask"] = Cat(_above(cols, k + b * lanes) for k in range(lanes))
            flags[f"{name}_last"] = _at_most(cols, (b + 1) * lanes)
    return flags


def _write_layout(addr_shape, data_shape):
    return data.StructLayout({"en": 1, "addr": addr_shape, "data": data_shape})


class ConfigWriter(wiring.Component):
    """Checks each ``i_cfg`` beat and turns it into a memory write or the new shape.

    Members
    -------
    cfg : In(CFG_LAYOUT), fire : In(1)
        The beat, and that it is taken this cycle (registered on entry).
    rows, cols : Out
        The loaded shape (kept across reset, like the memories; initially the maxima); a
        SHAPE beat's values from the ``LATENCY``-th cycle after it.
    col_flags : Out(col_flags_layout(act_lanes))
        The lane masks and "last beat" flags of ``cols``'s first three beats, registered
        with it (so the activation input's handshake starts at registers).
    ptr_en, entry_en : Out(n_pe)
        Bit p: write PE p's pointer / entry memory at ``addr`` with ``data`` this cycle
        (registered: ``LATENCY`` cycles after the beat's; not cleared by reset).
    addr, data : Out(16)
        The beat's address and data, for those writes.
    codebook : Out(stream.Signature(codebook_layout))
        A codebook write, for every PE's decoder (always taken; registered like the
        others).
    error : Out(1)
        Sticky: a field out of range (the beat is then ignored): SHAPE rows outside
        1..rows_max or cols outside 1..cols_max; CODEBOOK index above 15; POINTER pe at or
        above n_pe, column above cols_max or pointer above entries_max; ENTRY pe at or above
        n_pe, address at or above entries_max or data above 255.
    """

    def __init__(self, params):
        self.params = p = params
        #: Cycles from a beat to its write strobe and to ``rows``/``cols`` showing its shape:
        #: 3 with the ECP5 primitives (the beat registered on entry, then its checks), 2 in
        #: portable builds (the checks registered: 43.2 -> 46.4 MHz on the UP5K, 11 more
        #: logic cells).
        self.LATENCY = 3 if p.primitives is Primitives.ECP5 else 2
        super().__init__({
            "cfg": In(CFG_LAYOUT), "fire": In(1),
            "rows": Out(range(p.rows_max + 1), init=p.rows_max),
            "cols": Out(range(p.cols_max + 1), init=p.cols_max),
            "col_flags": Out(col_flags_layout(p.act_lanes),
                             init=_col_flags(p.cols_max, p.act_lanes)),
            "ptr_en": Out(p.n_pe), "entry_en": Out(p.n_pe),
            "addr": Out(16), "data": Out(16),
            "codebook": Out(stream.Signature(codebook_layout())),
            "error": Out(1),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.params
        # Register stages, none with reset (a beat taken just before a reset is still carried
        # out): with the ECP5 primitives A, the beat as it came; always B, the beat with its
        # checks worked out (one bit per kind: no compare feeds an enable), and C, the
        # writes, and the new shape.
        deep = int(p.primitives is Primitives.ECP5)

        def stage(value, name, n=deep):
            return delay(m, value, n, name=name, reset_less=True)

        cfg = stage(self.cfg, "cfg")
        fire = stage(self.fire, "fire")
        pe_ok = in_range(cfg.pe, 0, p.n_pe - 1)
        checks = {
            CfgOp.SHAPE: (cfg.addr >= 1) & (cfg.addr <= p.rows_max) & (cfg.data >= 1)
            & (cfg.data <= p.cols_max),
            CfgOp.CODEBOOK: cfg.addr < 16,
            CfgOp.POINTER: pe_ok & (cfg.addr <= p.cols_max)
            & in_range(cfg.data, 0, p.entries_max),
            CfgOp.ENTRY: pe_ok & (cfg.addr < p.entries_max) & (cfg.data < 1 << ENTRY_BITS),
        }
        ops = [CfgOp.SHAPE, CfgOp.CODEBOOK, CfgOp.POINTER, CfgOp.ENTRY]
        b_cfg = stage(cfg, "b_cfg", 1)
        # One-hot kind (shape, codebook, pointer, entry), each kind's checks whatever the
        # beat's kind, one-hot PE.
        b_kind = stage(Cat(fire & (cfg.op == op) for op in ops), "b_kind", 1)
        b_ok = stage(Cat(checks[op] for op in ops), "b_ok", 1)
        b_pe = stage(Cat(cfg.pe == n for n in range(p.n_pe)), "b_pe", 1)
        # The shape survives reset: a register without one drives each output.
        rows = Signal(range(p.rows_max + 1), init=p.rows_max, reset_less=True)
        cols = Signal(range(p.cols_max + 1), init=p.cols_max, reset_less=True)
        flags = Signal(col_flags_layout(p.act_lanes), reset_less=True,
                       init=_col_flags(p.cols_max, p.act_lanes))
        m.d.comb += [self.rows.eq(rows), self.cols.eq(cols), self.col_flags.eq(flags)]
        with m.If(b_kind[0] & b_ok[0]):
            m.d.sync += [rows.eq(b_cfg.addr), cols.eq(b_cfg.data)]
            m.d.sync += [getattr(flags, name).eq(value) for name, value
                         in _col_flags(b_cfg.data[:len(cols)], p.act_lanes).items()]
        with m.If((b_kind & ~b_ok) != 0):
            m.d.sync += self.error.eq(1)
        ptr_en = Signal(p.n_pe, reset_less=True)
        entry_en = Signal(p.n_pe, reset_less=True)
        addr = Signal(16, reset_less=True)
        value = Signal(16, reset_less=True)
        cb_en = Signal(reset_less=True)
        m.d.sync += [
            ptr_en.eq(b_pe & Cat(b_kind[2] & b_ok[2] for _ in range(p.n_pe))),
            entry_en.eq(b_pe & Cat(b_kind[3] & b_ok[3] for _ in range(p.n_pe))),
            addr.eq(b_cfg.addr), value.eq(b_cfg.data),
            cb_en.eq(b_kind[1] & b_ok[1]),
        ]
        m.d.comb += [
            self.ptr_en.eq(ptr_en), self.entry_en.eq(entry_en),
            self.addr.eq(addr), self.data.eq(value),
            self.codebook.valid.eq(cb_en),
            self.codebook.payload.index.eq(addr),
            self.codebook.payload.value.eq(value),
        ]
        return m


class ActivationInput(wiring.Component):
    """Takes the vector's beats and hands its non-zero activations to the PEs, one per cycle.

    Stage A holds a beat's non-zero lanes (lanes past ``cols`` count as zero); stage B, the
    leading-non-zero detector, sends the lowest remaining one to every PE's queue (``item``,
    while ``queues_ready``). A beat without a non-zero lane is taken and dropped at once, so
    all-zero beats cost one cycle each and occupy neither stage.

    Members
    -------
    i_act : In(stream.Signature(act_layout))
        Into a three-beat FIFO (``ready`` is its registered "not full", with ``accept``); a
        beat leaves it while ``enable`` and stage A is free (or frees this cycle); one
        with no non-zero lane leaves while ``enable`` whatever stage A does.
    cols : In, col_flags : In(col_flags_layout(act_lanes))
        Columns of the loaded matrix: the vector ends with beat ``ceil(cols / act_lanes) -
        1`` whatever ``last`` says (a ``last`` elsewhere sets ``error``); and its first three
        beats' lane flags (:class:`ConfigWriter`'s). They must hold for a cycle before a
        vector's first beat (the lane masks are registered).
    enable : In(1)
        The engine takes activations (a register of the engine's, so the handshake starts
        at flip-flops). No beat is taken after the vector's last (``done``) either.
    queues_ready : In(1), item : Out(stream.Signature(act_item_layout))
        Broadcast to the PE queues: ``item.valid`` rises with ``queues_ready``.
    taken : Out(1)
        A beat is taken (from the input FIFO) this cycle.
    done : Out(1)
        The vector's last beat was taken (until ``restart``).
    empty : Out(1)
        Stages A and B hold nothing.
    pending : Out(1)
        A beat is in the input FIFO (from registers).
    accept : In(1)
        The input FIFO may take beats (the engine holds it low while it clears the
        accumulators after reset).
    restart : In(1)
        The vector has been read out: the next one may come.
    error : Out(1)
        Sticky: a misplaced ``last``.
    consistent : Out(1)
        Always 1 in a working design (for the formal tier, unused in synthesis): the
        handshake's registered flags agree with what they stand for (the head's "no
        non-zero lane under the mask"; "the head holds a beat and the vector's last is not
        yet taken"), the lane masks are prefixes, and each stage's lane flags (rest,
        lowest and second-lowest lane) agree with its lanes.
    """

    def __init__(self, params):
        self.params = p = params
        super().__init__({
            "i_act": In(stream.Signature(act_layout(p))),
            "cols": In(range(p.cols_max + 1)), "col_flags": In(col_flags_layout(p.act_lanes)),
            "enable": In(1),
            "queues_ready": In(1), "item": Out(stream.Signature(act_item_layout(p))),
            "accept": In(1), "taken": Out(1), "done": Out(1), "empty": Out(1),
            "pending": Out(1),
            "restart": In(1),
            "error": Out(1), "consistent": Out(1),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.params
        lanes = p.act_lanes
        # The beats enter through a three-beat FIFO, so ``i_act.ready`` is a register (it
        # does not wait on the zero-skipping logic behind it); each lane's "non-zero" is
        # worked out on the way in and stored with the beat, so the handshake below starts
        # at registers (without it, the port's data -> the lanes' zero tests -> the handshake
        # -> the stages' enables was the UP5K's critical path, 20.5 ns). On the way into
        # the FIFO's head the beat gets, from those flags, the same without the lowest
        # non-zero lane (``rest``) and the lowest and second-lowest non-zero lanes, one-hot
        # (``low1``, ``low2``). The lane mask is a prefix (lanes below the columns left), so
        # a masked beat's are these ANDed with the mask: no subtraction or priority select
        # behind the head or in front of the item (stage B still finds the lane after next,
        # off the handshake). The FIFO shows the beat its head loads next,
        # so "the head has no non-zero lane under its mask" is a register too (below).
        in_layout = data.StructLayout({"beat": act_layout(p), "nonzero": lanes})
        head_layout = data.StructLayout({"beat": act_layout(p), "nonzero": lanes,
                                         "rest": lanes, "low1": lanes, "low2": lanes})

        def to_head(word):
            nonzero = word.nonzero
            rest = nonzero & ~_lowest(nonzero)
            return Cat(word.beat.as_value(), nonzero, rest, _lowest(nonzero), _lowest(rest))

        m.submodules.in_fifo = in_fifo = HeadFifo(in_layout, head_layout, to_head)
        m.d.comb += [
            self.i_act.ready.eq(in_fifo.w_rdy & self.accept),
            in_fifo.w_en.eq(self.i_act.valid & self.i_act.ready),
            in_fifo.w_data.beat.eq(self.i_act.payload),
            in_fifo.w_data.nonzero.eq(Cat(a != 0 for a in self.i_act.payload.a)),
            in_fifo.r_en.eq(self.taken),
            # Any beat inside, also one not yet in the head (a beat written in cycle x is
            # offered from x + 2).
            self.pending.eq(in_fifo.pending),
        ]
        head = in_fifo.r_data
        inner = in_fifo.next_data
        beat_valid = in_fifo.r_rdy
        load = in_fifo.next_valid & in_fifo.head_free
        act = head.beat
        col_base = Signal(range(p.cols_max + lanes + 1))
        # The lane mask (lane k is below cols) and "last beat" of the beat on offer, and of
        # the beat after it, are registers, so the handshake below and the flags' own
        # updates start at registers (no multiplexer on "a vector is under way", no compare
        # between a register and the flags). The vector's first three beats' flags come
        # from the configuration writer, registered with ``cols`` (so they have settled:
        # the engine takes no beat until a cycle after its latency); within a vector the
        # flags of the beat after next are compares of the columns left (a down-counter)
        # with constants: left - 2 * lanes > k is left > k + 2 * lanes.
        mid = Signal()  # a beat of the vector was taken, its last not yet
        left_q = Signal(range(p.cols_max + 1))
        cur_mask = Signal(lanes)
        cur_last = Signal()
        nxt_mask = Signal(lanes)  # the next beat's (while ``mid``)
        nxt_last = Signal()
        flags = self.col_flags
        left = Mux(mid, left_q, self.cols)
        left_next = Signal(range(p.cols_max + 1))
        m.d.comb += left_next.eq(left - lanes)
        nz = Signal(lanes)
        beat_last = cur_last
        m.d.comb += nz.eq(head.nonzero & cur_mask)
        # ``head_zero`` is ``nz == 0`` for the beat in the head, kept in step with both: the
        # lane mask's next value when a beat is taken (``mask_taken``) or not
        # (``mask_kept``), the head's next word (the stored one it loads, or itself), and
        # ``taken`` choosing between the two in the last LUT.
        head_zero = Signal()
        mask_taken = Mux(beat_last, flags.first_mask, Mux(mid, nxt_mask, flags.second_mask))
        mask_kept = Mux(mid, cur_mask, flags.first_mask)
        zero_next = Signal()
        m.d.comb += zero_next.eq(Mux(
            self.taken, (inner.nonzero & mask_taken) == 0,
            Mux(beat_valid, (head.nonzero & mask_kept) == 0,
                (inner.nonzero & mask_kept) == 0)))
        m.d.sync += head_zero.eq(zero_next)

        a_valid = Signal()
        a_sel = Signal(lanes)  # stage A's lowest lane, one-hot
        a_sel2 = Signal(lanes)  # and its second-lowest
        a_vals = Signal(data.ArrayLayout(signed(p.act_width), lanes))
        a_base = Signal.like(col_base)
        b_vals = Signal(data.ArrayLayout(signed(p.act_width), lanes))
        b_base = Signal.like(col_base)
        # The item on offer (the lowest lane of stage B's beat still to send) is a register
        # pair, worked out when the beat moves in or an item leaves: the broadcast takes
        # ``item`` from flip-flops, with no priority select and add in front of it.
        b_col = Signal.like(self.item.payload.col)
        b_act = Signal.like(self.item.payload.act)

        def item_of(base, vals, sel):
            """Load the item of lane ``sel`` (one-hot) of a beat at column ``base``."""
            act = 0
            for k in range(lanes):
                act = act | Mux(sel[k], vals[k].as_unsigned(), 0)
            index = 0
            for k in range(1, lanes):
                index = index | Mux(sel[k], k, 0)
            # The bases are multiples of ``lanes``: with a power of two the column is the
            # lane index next to the base's upper bits, no carry chain (yosys shared one
            # adder between the two sums, behind the late "stage A moves" select).
            bits = (lanes - 1).bit_length()
            index = Value.cast(index)
            col = Cat(index[:bits], base[bits:]) if lanes == 1 << bits else base + index
            return [b_col.eq(col), b_act.eq(act)]

        b_sel = Signal(lanes)  # the lane of the item after the one on offer, one-hot
        bcast = Signal()
        # b_rest = stage B's lanes still to send after the one on offer, kept in a register
        # (as is a_rest) so the handshakes below see no subtraction.
        b_rest = Signal(lanes)
        a_rest = Signal(lanes)
        # ... and "B holds an item", "b_rest == 0" (and a_rest's) as flags of their own, so
        # stage A's move, the handshake and the stages' enables are one LUT from registers.
        b_any = Signal()
        b_one = Signal()
        a_one = Signal(init=1)  # a_rest == 0 (also after reset)
        m.d.comb += [
            bcast.eq(b_any & self.queues_ready),
            self.item.valid.eq(bcast),
            self.item.payload.col.eq(b_col),
            self.item.payload.act.eq(b_act),
            self.empty.eq(~a_valid & ~b_any),
        ]
        rest2 = b_rest & ~b_sel  # stage B's lanes after the next item
        b_next_empty = ~b_any | (self.queues_ready & b_one)
        a_move = a_valid & b_next_empty
        # Stage B loads (stage A's beat moves in, or an item leaves) when ``a_move |
        # bcast``, which is ``b_load``: one LUT of three registers (when B holds an item,
        # exactly when it leaves; when not, when A holds a beat). Whether the beat comes
        # from A is, in those cycles, a function of registers alone (``from_a``).
        b_load = Signal()
        from_a = Signal()
        m.d.comb += [b_load.eq(Mux(b_any, self.queues_ready, a_valid)),
                     from_a.eq(a_valid & (~b_any | b_one))]
        with m.If(b_load):
            with m.If(from_a):
                # Stage A holds a beat only with a non-zero lane: B holds an item after
                # the move.
                m.d.sync += [b_rest.eq(a_rest), b_vals.eq(a_vals), b_base.eq(a_base),
                             b_sel.eq(a_sel2), *item_of(a_base, a_vals, a_sel),
                             b_any.eq(1), b_one.eq(a_one)]
            with m.Else():
                m.d.sync += [b_rest.eq(rest2), b_sel.eq(_lowest(rest2)),
                             *item_of(b_base, b_vals, b_sel),
                             b_any.eq(b_rest != 0), b_one.eq(rest2 == 0)]
        a_free = ~a_valid | a_move

        # The handshake is two LUT levels from flip-flops: "the head has no non-zero lane
        # under its mask" is a register (``head_zero``), and so is "the head holds a beat
        # and the vector's last beat has not been taken" (``go``, set from the next cycle's
        # values of the two), as is the engine's ``enable``.
        go = Signal()
        m.d.comb += self.taken.eq(self.enable & go & (head_zero | a_free))
        done_next = ~self.restart & (self.done | (self.taken & beat_last))
        valid_next = load | (beat_valid & ~self.taken)
        m.d.sync += go.eq(valid_next & ~done_next)
        # Stage A loads whenever it is free; it holds a beat when one with a non-zero lane
        # was taken.
        with m.If(a_free):
            m.d.sync += a_valid.eq(self.taken & ~head_zero)
        m.d.comb += self.consistent.eq(
            (~beat_valid | (head_zero == (nz == 0)))
            & (go == (beat_valid & ~self.done))
            & (b_sel == _lowest(b_rest))
            & (a_sel2 == _lowest(a_rest)) & (a_one == (a_rest == 0))
            # The lane masks are prefixes (so a masked beat's flags are its flags, masked).
            & ((cur_mask & (cur_mask + 1)) == 0) & ((nxt_mask & (nxt_mask + 1)) == 0)
            # The head's lane flags agree with each other.
            & _flags_agree(head))
        # Stage A's data registers load whenever it is free (their enable does not wait on
        # the handshake).
        with m.If(a_free):
            m.d.sync += [a_sel.eq(head.low1 & cur_mask), a_sel2.eq(head.low2 & cur_mask),
                         a_rest.eq(head.rest & cur_mask),
                         a_one.eq((head.rest & cur_mask) == 0),
                         a_vals.eq(act.a), a_base.eq(col_base)]
        with m.If(self.taken):
            m.d.sync += [col_base.eq(Mux(beat_last, 0, col_base + lanes)),
                         left_q.eq(left_next), mid.eq(~beat_last)]
            with m.If(beat_last):
                m.d.sync += [self.done.eq(1), cur_mask.eq(flags.first_mask),
                             cur_last.eq(flags.first_last)]
            with m.Else():
                m.d.sync += [
                    cur_mask.eq(Mux(mid, nxt_mask, flags.second_mask)),
                    cur_last.eq(Mux(mid, nxt_last, flags.second_last)),
                    nxt_mask.eq(Mux(mid, Cat(_above(left_q, k + 2 * lanes) for k in range(lanes)),
                                    flags.third_mask)),
                    nxt_last.eq(Mux(mid, _at_most(left_q, 3 * lanes), flags.third_last)),
                ]
            with m.If(act.last != beat_last):
                m.d.sync += self.error.eq(1)
        with m.Elif(~mid):
            m.d.sync += [cur_mask.eq(flags.first_mask), cur_last.eq(flags.first_last)]

        with m.If(self.restart):
            m.d.sync += self.done.eq(0)
        return m


class Readout(wiring.Component):
    """Reads y[0..rows-1] from the PEs' accumulators into ``o``, clearing them as it goes.

    Row i is PE i % n_pe's accumulator i // n_pe. A read is issued whenever ``read`` and the
    output buffer can take a word (its registered ``can_reserve``); the word reaches the
    buffer three cycles later (the accumulator RAM's two read registers, then select and
    ReLU), so with ``o`` always ready one row leaves per cycle. The accumulator read is also
    its clear: the PE writes zero where it was read, two cycles after the read.

    Members
    -------
    rows : In
        Rows of the loaded matrix.
    read : In(1)
        The engine is in its readout phase (low for at least a cycle before it: the row
        count is loaded then).
    clear_all : In(1), clear_addr : In
        After reset: clear every PE's accumulator ``clear_addr`` (the engine steps it).
    acc_addr : Out
        Accumulator address for every PE (the row being issued).
    acc_data : In(ArrayLayout(signed(acc_width), n_pe))
        Each PE's accumulator at ``acc_addr`` of two cycles before.
    clear_en : Out(n_pe), clear_to : Out
        Bit p: PE p clears its accumulator ``clear_to``, the cycle after its read was issued
        (the PE registers the request: the zero is written at the end of the next cycle).
    last_issued : Out(1)
        The read of row ``rows - 1`` is issued this cycle (the counters restart).
    o : Out(stream.Signature(out_layout))
    """

    def __init__(self, params):
        self.params = p = params
        local = range(max(2, p.rows_pe_max))
        super().__init__({
            "rows": In(range(p.rows_max + 1)), "read": In(1),
            "clear_all": In(1), "clear_addr": In(local),
            "acc_addr": Out(local), "acc_data": In(data.ArrayLayout(signed(p.acc_width), p.n_pe)),
            "clear_en": Out(p.n_pe), "clear_to": Out(local),
            "last_issued": Out(1),
            "o": Out(stream.Signature(out_layout(p))),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.params
        m.submodules.out_buf = buf = ResultBuffer(out_layout(p), depth=OUT_DEPTH, max_reserve=1)
        wiring.connect(m, wiring.flipped(self.o), buf.o)
        rd_pe = Signal(range(max(2, p.n_pe)))
        rd_local = self.acc_addr
        rd_left = Signal(range(p.rows_max + 1))
        rd_issue = Signal()
        rd_last = Signal()
        rd_issue_d = Signal()
        rd_pe_d = Signal.like(rd_pe)
        rd_local_d = Signal.like(rd_local)
        rd_last_d = Signal()
        rd_issue_dd = Signal()
        rd_pe_dd = Signal.like(rd_pe)
        rd_last_dd = Signal()
        m.d.sync += [rd_issue_d.eq(rd_issue), rd_pe_d.eq(rd_pe), rd_local_d.eq(rd_local),
                     rd_last_d.eq(rd_last),
                     rd_issue_dd.eq(rd_issue_d), rd_pe_dd.eq(rd_pe_d), rd_last_dd.eq(rd_last_d)]
        y = select(list(self.acc_data), rd_pe_dd)
        m.d.comb += [
            rd_issue.eq(self.read & buf.can_reserve),
            self.last_issued.eq(rd_issue & rd_last),
            buf.reserve.eq(rd_issue),
            buf.w_en.eq(rd_issue_dd),
            buf.w_data.y.eq(Mux(y[-1], 0, y) if p.relu else y),
            buf.w_data.last.eq(rd_last_dd),
            self.clear_en.eq(Cat(self.clear_all | (rd_issue_d & (rd_pe_d == n))
                                 for n in range(p.n_pe))),
            self.clear_to.eq(Mux(self.clear_all, self.clear_addr, rd_local_d)),
        ]
        # Rows left after the one issued next: a down-counter (reloaded whenever the engine
        # is not reading out), and "last" (none left) a register beside it.
        with m.If(~self.read):
            m.d.sync += [rd_left.eq(self.rows - 1), rd_last.eq(self.rows == 1)]
        with m.Elif(rd_issue):
            m.d.sync += [rd_left.eq(rd_left - 1), rd_last.eq(rd_left == 1)]
        with m.If(rd_issue):
            with m.If(rd_pe == p.n_pe - 1):
                m.d.sync += [rd_pe.eq(0), rd_local.eq(rd_local + 1)]
            with m.Else():
                m.d.sync += rd_pe.eq(rd_pe + 1)
        with m.If(self.last_issued):
            m.d.sync += [rd_pe.eq(0), rd_local.eq(0)]
        return m
