"""The pieces of :class:`~.pe.SparsePE`: column fetch, entry walker, accumulator.

::

    q -> ColumnFetch: queue, A: pointer addresses, R, D: the pointer RAMs' two read
      registers, (C, K: fabric copy and checks, primitives=ecp5 only), P: checks, a FIFO of
      columns -(column: start, count, act, ok)-> EntryWalker: G: walk entries start..,
      I: address, E, F: the entry RAM's two read registers -(entry, first, act)->
      RelIndexDecoder -(local row, weight, act)-> Accumulator: product and accumulator read,
      add (with the last sums forwarded), write back

Every memory is read through two registers (:mod:`~npugen.rtl.common.ram`: the block RAM's
read register, then its output register, on ECP5 the ``DP16KD``'s own), so no logic follows
a block RAM's slow clock-to-out.
"""

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..common.carry import Ecp5MuxAdd
from ..common.pipeline import delay, in_range
from ..common.ram import BufferRam, pipelined_ram
from ..systolic.mul import Ecp5Multiplier
from .params import ENTRY_BITS, Primitives
from .ports import act_item_layout, entry_layout, pair_layout

__all__ = ["Accumulator", "ColumnFetch", "EntryWalker", "column_layout", "write_layout"]


def write_layout(addr_shape, data_shape):
    """Return the layout of a memory write: enable, address, data."""
    return data.StructLayout({"en": 1, "addr": addr_shape, "data": data_shape})


def column_layout(p):
    """Return the layout of a column to walk: entries ``start..start+count-1``, act, ``ok``.

    ``ok``: the pointers passed their check. ``size0``/``size1``/``size2`` say ``count`` is
    0, 1 or 2 (worked out by the fetch, so the walker's handshake needs no adder or compare).
    """
    return data.StructLayout({"start": unsigned(p.ptr_width),
                              "count": unsigned(p.ptr_width), "size0": 1, "size1": 1,
                              "size2": 1, "act": signed(p.act_width), "ok": 1})


def _ram(p, width, depth):
    """Return a two-register RAM of the engine's primitives (:mod:`~npugen.rtl.common.ram`)."""
    kind = BufferRam.ECP5 if p.primitives is Primitives.ECP5 else BufferRam.INFERRED
    return pipelined_ram(kind, width, max(2, depth))


def difference_is(end, start, k, width):
    """``(end - start) mod 2**width == k`` without a carry chain.

    ``end - start = end + ~start + 1``, so the test is ``end + ~start == k - 1``, and a sum
    equals a constant K iff ``a ^ b ^ K == ((a & b) | ((a | b) & ~K)) << 1`` (mod
    ``2**width``): bitwise terms and one wide AND, in parallel with the subtraction.
    """
    mask = (1 << width) - 1
    konst = (k - 1) & mask
    a = end[:width]
    b = (~start)[:width]
    lhs = a ^ b ^ C(konst, width)
    carry = (a & b) | ((a | b) & C(~konst & mask, width))
    return lhs == Cat(C(0, 1), carry[:width - 1])


def _queue(width, depth):
    # SyncFIFOBuffered's depth-1 form is a single register; SyncFIFO's has zero-width
    # address wires.
    if depth == 1:
        return fifo.SyncFIFOBuffered(width=width, depth=1)
    return fifo.SyncFIFO(width=width, depth=depth)


class ColumnFetch(wiring.Component):
    """Queues the broadcast activations and fetches each one's column pointers.

    Members
    -------
    q : In(stream.Signature(act_item_layout))
        Non-zero activations (a queue of ``queue_depth``).
    ptr_w : In(write_layout)
        Pointer memory writes (``cols_max + 1`` words of ``ptr_width``), carried out the
        next cycle.
    column : Out(stream.Signature(column_layout))
        From a FIFO of ``p.fetch_credits`` columns (registered outputs): ``ok`` is
        ``ptr[j] <= ptr[j+1] <= entries_max``. A column's pointers reach the FIFO six
        cycles after its activation leaves the queue with the ECP5 primitives (address
        register, the RAMs' two read registers, fabric register, two check stages), four in
        portable builds (no fabric register, one check stage); one column per cycle when
        ``column`` is always ready and the credits allow.
    busy : Out(1)
        The queue or a stage holds an activation.
    room_next : Out(1)
        ``q.ready`` of the next cycle, from this cycle's queue level and handshakes (the
        engine registers the AND of every PE's, so its broadcast waits on a register, not
        on the queues' levels across the chip).
    """

    def __init__(self, params):
        self.params = p = params
        super().__init__({
            "q": In(stream.Signature(act_item_layout(p))),
            "ptr_w": In(write_layout(range(p.cols_max + 1), unsigned(p.ptr_width))),
            "column": Out(stream.Signature(column_layout(p))),
            "busy": Out(1),
            "room_next": Out(1),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        p = self.params
        m = Module()
        layout = act_item_layout(p)
        m.submodules.queue = queue = _queue(data.Layout.cast(layout).size, p.queue_depth)
        m.d.comb += [
            queue.w_en.eq(self.q.valid),
            queue.w_data.eq(self.q.payload.as_value()),
            self.q.ready.eq(queue.w_rdy),
        ]
        # Both FIFO forms are ready to write while level != depth, and the level moves by
        # the handshakes (SyncFIFOBuffered's depth-1 register included).
        pushed = queue.w_en & queue.w_rdy
        popped = queue.r_en & queue.r_rdy
        with m.If(pushed & ~popped):
            m.d.comb += self.room_next.eq(queue.level != p.queue_depth - 1)
        with m.Elif(popped & ~pushed):
            m.d.comb += self.room_next.eq(1)
        with m.Else():
            m.d.comb += self.room_next.eq(queue.w_rdy)
        head = data.View(layout, queue.r_data)
        # ptr[j] and ptr[j+1], both read at address j: ptr_lo holds ptr[j] at j, ptr_hi
        # ptr[j+1] at j (the write side subtracts, so the read address needs no add).
        # The writes are registered here (the enables' compares and the subtraction are
        # a cycle of their own, beside the RAMs): a pointer lands a cycle after ``ptr_w``,
        # still cycles before any activation of the next vector reaches stage A.
        m.submodules.ptr_lo = ptr_lo = _ram(p, p.ptr_width, p.cols_max)
        m.submodules.ptr_hi = ptr_hi = _ram(p, p.ptr_width, p.cols_max)
        w_lo = Signal(reset_less=True)
        w_hi = Signal(reset_less=True)
        w_addr_lo = Signal(range(max(2, p.cols_max)), reset_less=True)
        w_addr_hi = Signal(range(max(2, p.cols_max)), reset_less=True)
        w_data = Signal(p.ptr_width, reset_less=True)
        m.d.sync += [
            w_lo.eq(self.ptr_w.en & (self.ptr_w.addr != p.cols_max)),
            w_hi.eq(self.ptr_w.en & (self.ptr_w.addr != 0)),
            w_addr_lo.eq(self.ptr_w.addr), w_addr_hi.eq(self.ptr_w.addr - 1),
            w_data.eq(self.ptr_w.data),
        ]
        m.d.comb += [ptr_lo.w_en.eq(w_lo), ptr_lo.w_addr.eq(w_addr_lo),
                     ptr_hi.w_en.eq(w_hi), ptr_hi.w_addr.eq(w_addr_hi)]
        for ram in (ptr_lo, ptr_hi):
            m.d.comb += [ram.w_data.eq(w_data), ram.r_en.eq(1), ram.o_en.eq(1)]

        # No stage between the queue and the output FIFO stalls (so no clock enable reaches
        # the block RAMs): A: the addresses, R: the RAMs' read registers, D: their output
        # registers, C: fabric registers, K and P: the checks, then the FIFO. An activation
        # leaves the queue only with a credit: credits = FIFO slots not yet promised to an
        # activation in A..P (a register, so the pop does not wait on the walker's ready).
        fifo_depth = p.fetch_credits
        m.submodules.out = out = fifo.SyncFIFOBuffered(
            width=data.Layout.cast(column_layout(p)).size, depth=fifo_depth)
        credits = Signal(range(fifo_depth + 1), init=fifo_depth)
        pop = Signal()
        take = Signal()
        m.d.comb += [
            pop.eq(queue.r_rdy & (credits != 0)),
            queue.r_en.eq(pop),
            take.eq(self.column.valid & self.column.ready),
        ]
        m.d.sync += credits.eq(credits - pop + take)
        # A: the popped column's two pointer addresses, registered (the block RAMs' address
        # pins start at a register).
        a_valid = Signal()
        a_act = Signal(signed(p.act_width))
        a_col = Signal(range(max(2, p.cols_max)))
        m.d.sync += [a_valid.eq(pop), a_act.eq(head.act), a_col.eq(head.col)]
        m.d.comb += [ptr_lo.r_addr.eq(a_col), ptr_hi.r_addr.eq(a_col)]
        r_valid = Signal()
        r_act = Signal(signed(p.act_width))
        d_valid = Signal()
        d_act = Signal(signed(p.act_width))
        m.d.sync += [r_valid.eq(a_valid), r_act.eq(a_act), d_valid.eq(r_valid), d_act.eq(r_act)]
        # D: the RAMs' output registers. With the ECP5 primitives two more stages: C, the
        # pointers in fabric registers (the routes from the block RAMs are long), and K, the
        # count and the compares registered; portable builds compute them straight into P.
        # (Stages that only the ECP5 build's clock needs: portable builds, often on the
        # iCE40, would pay for them in logic cells.)
        deep = int(p.primitives is Primitives.ECP5)

        def stage(value, name):
            return delay(m, value, deep, name=name)

        c_valid = stage(d_valid, "c_valid")
        c_act = stage(d_act, "c_act")
        c_start = stage(ptr_lo.r_data, "c_start")
        c_end = stage(ptr_hi.r_data, "c_end")
        k_valid = stage(c_valid, "k_valid")
        k_act = stage(c_act, "k_act")
        k_start = stage(c_start, "k_start")
        k_count = stage((c_end - c_start)[:p.ptr_width], "k_count")
        k_size0 = stage(c_start == c_end, "k_size0")
        # Sizes 1 and 2 beside the subtraction, not behind it (the iCE40's carry chain and
        # then a 12-bit compare were one cycle).
        k_size1 = stage(difference_is(c_end, c_start, 1, p.ptr_width), "k_size1")
        k_size2 = stage(difference_is(c_end, c_start, 2, p.ptr_width), "k_size2")
        k_ok = stage((c_start <= c_end) & in_range(c_end, 0, p.entries_max), "k_ok")
        # P: the size flags, registered with the column.
        p_valid = Signal()
        p_col = Signal(column_layout(p))
        m.d.sync += [
            p_valid.eq(k_valid), p_col.act.eq(k_act), p_col.start.eq(k_start),
            p_col.count.eq(k_count), p_col.size0.eq(k_size0),
            p_col.size1.eq(k_size1), p_col.size2.eq(k_size2), p_col.ok.eq(k_ok),
        ]
        m.d.comb += [
            out.w_en.eq(p_valid), out.w_data.eq(p_col.as_value()),
            self.column.valid.eq(out.r_rdy), self.column.payload.eq(out.r_data),
            out.r_en.eq(self.column.ready),
            self.busy.eq(queue.r_rdy | a_valid | r_valid | d_valid | c_valid | k_valid
                         | p_valid | (out.level != 0)),
        ]
        return m


class EntryWalker(wiring.Component):
    """Reads a column's stored entries one per cycle, with no bubble between columns.

    While the current column is walked, the next column waits in ``column``'s register; it
    is taken with the current column's last entry, and its first entry issues on the next
    cycle. A column taken with nothing in flight issues its first entry at once. A column
    whose pointers failed their check is dropped and sets ``error``.

    Members
    -------
    column : In(stream.Signature(column_layout))
    entry_w : In(write_layout)
        Entry memory writes (``entries_max`` bytes).
    o : Out(stream.Signature(entry_layout))
        Registered, three cycles after the entry's read is issued (address register, the
        block RAM's read and output registers); ``ready`` is not looked at (the decoder and
        the accumulator never stall).
    active : Out(1)
        An entry read is issued this cycle (load-balance monitor).
    busy : Out(1)
        Entries are left in the current column or on their way to ``o``.
    error : Out(1)
        Sticky: a column with bad pointers.
    """

    def __init__(self, params):
        self.params = p = params
        super().__init__({
            "column": In(stream.Signature(column_layout(p))),
            "entry_w": In(write_layout(range(p.entries_max), unsigned(ENTRY_BITS))),
            "o": Out(stream.Signature(entry_layout(p))),
            "active": Out(1), "busy": Out(1), "error": Out(1),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        p = self.params
        m = Module()
        m.submodules.entries = ent = _ram(p, ENTRY_BITS, p.entries_max)
        m.d.comb += [ent.w_en.eq(self.entry_w.en), ent.w_addr.eq(self.entry_w.addr),
                     ent.w_data.eq(self.entry_w.data)]
        col = self.column.payload
        p_valid = self.column.valid
        # G: walk the current column.
        g_valid = Signal()  # entries left in the current column
        g_addr = Signal(p.ptr_width)
        g_left = Signal(p.ptr_width)  # entries left, the one issued next included
        g_act = Signal(signed(p.act_width))
        g_first = Signal()
        issue = Signal()
        issue_addr = Signal(p.ptr_width)
        issue_first = Signal()
        issue_act = Signal(signed(p.act_width))
        # The next column is taken with the last entry of this one, or at once when idle;
        # ``g_last`` (g_left == 1) is kept in a register so ``ready`` is one gate.
        g_last = Signal()
        m.d.comb += self.column.ready.eq(~g_valid | g_last)
        with m.If(g_valid):
            m.d.comb += [issue.eq(1), issue_addr.eq(g_addr), issue_first.eq(g_first),
                         issue_act.eq(g_act)]
            m.d.sync += [g_addr.eq(g_addr + 1), g_left.eq(g_left - 1), g_first.eq(0),
                         g_last.eq(g_left == 2)]
            with m.If(g_last):
                m.d.sync += g_valid.eq(0)
                with m.If(p_valid):
                    # Preload the next column; its first entry issues next cycle.
                    with m.If(col.ok):
                        m.d.sync += [g_addr.eq(col.start), g_left.eq(col.count),
                                     g_act.eq(col.act), g_first.eq(1),
                                     g_valid.eq(~col.size0), g_last.eq(col.size1)]
                    with m.Else():
                        m.d.sync += self.error.eq(1)
        with m.Elif(p_valid):
            # Nothing in flight: issue the column's first entry straight from the register.
            with m.If(col.ok & ~col.size0):
                m.d.comb += [issue.eq(1), issue_addr.eq(col.start), issue_first.eq(1),
                             issue_act.eq(col.act)]
                m.d.sync += [g_addr.eq(col.start + 1), g_left.eq(col.count - 1),
                             g_act.eq(col.act), g_first.eq(0), g_valid.eq(~col.size1),
                             g_last.eq(col.size2)]
            with m.If(~col.ok):
                m.d.sync += self.error.eq(1)

        # I: the issued address registered (the block RAM's address pins start at a
        # register); E: the entry memory's read register; F: its output register.
        i_valid = Signal()
        i_addr = Signal(p.ptr_width)
        i_first = Signal()
        i_act = Signal(signed(p.act_width))
        e_valid = Signal()
        e_first = Signal()
        e_act = Signal(signed(p.act_width))
        f_valid = Signal()
        f_first = Signal()
        f_act = Signal(signed(p.act_width))
        m.d.comb += [ent.r_en.eq(1), ent.o_en.eq(1), ent.r_addr.eq(i_addr),
                     self.active.eq(issue)]
        m.d.sync += [i_valid.eq(issue), i_addr.eq(issue_addr), i_first.eq(issue_first),
                     i_act.eq(issue_act),
                     e_valid.eq(i_valid), e_first.eq(i_first), e_act.eq(i_act),
                     f_valid.eq(e_valid), f_first.eq(e_first), f_act.eq(e_act)]
        m.d.comb += [self.o.valid.eq(f_valid), self.o.payload.entry.eq(ent.r_data),
                     self.o.payload.first.eq(f_first), self.o.payload.act.eq(f_act),
                     self.busy.eq(g_valid | i_valid | e_valid | f_valid)]
        return m


class _Ecp5Product(Ecp5Multiplier):
    """``MULT18X18D`` with its input and output registers and one fabric register after."""

    IN_STAGES = 0
    OUT_STAGES = 1
    latency = 3


class _InferredProduct(wiring.Component):
    """``a * b``: registered operands and product (latency 2).

    Portable builds multiply in the add stage's cycle before (latency 2, the accumulator
    RAM's read latency); the ECP5 build uses :class:`_Ecp5Product` (latency 3).
    """

    latency = 2

    def __init__(self, a_width, b_width):
        super().__init__({"a": In(signed(a_width)), "b": In(signed(b_width)),
                          "p": Out(signed(a_width + b_width))})

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        a = Signal.like(self.a, reset_less=True)
        b = Signal.like(self.b, reset_less=True)
        product = Signal.like(self.p, reset_less=True)
        m.d.sync += [a.eq(self.a), b.eq(self.b), product.eq(a * b)]
        m.d.comb += self.p.eq(product)
        return m


class Accumulator(wiring.Component):
    """Multiplies each decoded (row, weight, act) and adds it into that row's accumulator.

    A pipelined read-modify-write that takes a pair every cycle. Portable build::

        cycle t:    the pair arrives; the accumulator read and the multiply start
        cycle t+2:  sum = base + product (the RAM's output register and the multiplier's
                    product register are there), written back at the end of the cycle

    With the ECP5 primitives (``deep``) two more registers keep logic away from the block
    RAM's pins: at t+2 the value to add to (all cases but the previous pair's hit) is
    registered, the sum is made at t+3 and written from a register at t+4 (the multiplier,
    a ``MULT18X18D``, then has latency 3), and the add with its forwarding multiplexer is
    one chain of carry cells (:class:`~npugen.rtl.common.carry.Ecp5MuxAdd`).

    A read issued at cycle t sees the writes made before the end of cycle t - 1, so the
    sums of the pairs of the last ``LATENCY`` cycles are not in it: when one of them hit the
    same row (nearest first), its sum is used instead of the read value. The row compares
    are made on arrival and travel with the pair, so every select is a register, and the
    accumulate loop is one 2:1 multiplexer and one adder. Products are exact (16 +
    act_width bits); accumulators wrap at ``acc_width``.

    With ``acc_banks=2`` there are two accumulator RAMs: the pairs add into bank ``bank``
    while the readout reads and clears the other, so a vector's readout overlaps the next
    vector's MAC phase. One 2:1 multiplexer on each RAM's read address and read data (the
    data one before the forwarding selects, not in the accumulate loop).

    Members
    -------
    i : In(stream.Signature(pair_layout))
        Always taken (``ready`` is 1).
    readout : In(1)
        One bank: the engine is reading out or clearing (no pair arrives then, none is in
        flight). Two banks: the clear after reset (clears go to both banks).
    bank : In(1)
        Two banks (``acc_banks=2``): the bank the pairs add into; the readout reads and
        clears the other. Taken a cycle late; the engine changes it only while no pair is in
        flight and at least two cycles before the next read. Unused with one bank.
    acc_addr : In, acc_data : Out(signed(acc_width))
        Readout: ``acc_data`` is accumulator ``acc_addr`` (of the readout's bank) of two
        cycles before.
    clear : In(StructLayout{en, addr})
        Write zero into an accumulator (of the readout's bank; the clear after reset and
        readout with one bank), at the end of the next cycle.
    busy : Out(1)
        A pair is between arrival and its write-back.
    """

    def __init__(self, params):
        self.params = p = params
        self.deep = p.primitives is Primitives.ECP5
        local = range(max(2, p.rows_pe_max))
        super().__init__({
            "i": In(stream.Signature(pair_layout(p))),
            "readout": In(1), "bank": In(1),
            "acc_addr": In(local), "acc_data": Out(signed(p.acc_width)),
            "clear": In(data.StructLayout({"en": 1, "addr": local})),
            "busy": Out(1),
        })

    @property
    def LATENCY(self):  # noqa: N802 (a constant of the configuration)
        """Cycles from a pair's arrival to the end of the cycle that writes its sum."""
        return 4 if self.deep else 2

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        p = self.params
        m = Module()
        deep = self.deep
        add = 3 if deep else 2  # the add stage (the multiplier's latency)
        depth = self.LATENCY    # the write stage: sums of 1..depth cycles ahead forwarded
        rams = [_ram(p, p.acc_width, p.rows_pe_max) for _ in range(p.acc_banks)]
        if p.acc_banks == 1:
            m.submodules.acc = rams[0]
            # The one bank: the MAC's, or the readout's while ``readout``; clears go to it.
            mac_sel, ro_sel, clear_sel = [C(1)], [self.readout], [C(1)]
        else:
            m.submodules.acc0, m.submodules.acc1 = rams
            bank = Signal()  # the MAC's bank, taken a cycle late
            m.d.sync += bank.eq(self.bank)
            mac_sel = [~bank, bank]
            ro_sel = [bank, ~bank]
            # Clears go to the readout's bank, to both in the clear after reset.
            clear_sel = [self.readout | s for s in ro_sel]
        mul_cls = _Ecp5Product if deep else _InferredProduct
        assert mul_cls.latency == add
        m.submodules.mul = mul = mul_cls(len(self.i.payload.weight), p.act_width)
        pair = self.i.payload
        m.d.comb += [self.i.ready.eq(1), mul.a.eq(pair.weight), mul.b.eq(pair.act)]
        for ram, sel in zip(rams, ro_sel, strict=True):
            m.d.comb += [ram.r_en.eq(1), ram.o_en.eq(1),
                         ram.r_addr.eq(Mux(sel, self.acc_addr, pair.row))]
        if p.acc_banks == 1:
            mac_data = ro_data = rams[0].r_data
        else:
            mac_data = Mux(bank, rams[1].r_data, rams[0].r_data)
            ro_data = Mux(bank, rams[0].r_data, rams[1].r_data)
        m.d.comb += self.acc_data.eq(ro_data)
        # Stages 0..depth of a pair: valid, row, and hit bit k-1 = "the pair k cycles ahead
        # (k = 1..depth) has my row".
        valid = [self.i.valid] + [Signal(name=f"v{k}") for k in range(1, depth + 1)]
        row = [pair.row] + [Signal.like(pair.row, name=f"row{k}") for k in range(1, depth + 1)]
        hit = [Signal(depth, name=f"hit{k}") for k in range(depth + 1)]
        m.d.comb += hit[0].eq(Cat(valid[k] & (row[k] == pair.row) for k in range(1, depth + 1)))
        for k in range(1, depth + 1):
            m.d.sync += [valid[k].eq(valid[k - 1]), row[k].eq(row[k - 1]), hit[k].eq(hit[k - 1])]
        # Sums of the last cycles (sums[0]: the previous cycle's): ages 1..depth are looked up
        # at the add stage, or with ``deep`` age 1 there and ages 2..depth a cycle before.
        n_sums = depth - 1 if deep else depth
        sums = [Signal(signed(p.acc_width), name=f"sum_d{k + 1}") for k in range(n_sums)]
        total = Signal(signed(p.acc_width))
        if deep:
            # Cycle t+2: the value to add to for every case but the previous pair's hit (the
            # hit k pairs ahead is sums[k - 2] then, one cycle before the add).
            pre = mac_data
            for k in reversed(range(1, depth)):
                pre = Mux(hit[2][k], sums[k - 1], pre)
            pre_q = Signal(signed(p.acc_width))
            m.d.sync += pre_q.eq(pre)
            # The accumulate loop (sums[0] -> total -> sums[0]) on the carry cells alone: the
            # forwarding multiplexer is made in the cells' own LUTs.
            m.submodules.add = adder = Ecp5MuxAdd(p.acc_width, len(mul.p))
            m.d.comb += [adder.sel.eq(hit[add][0]), adder.a.eq(sums[0]), adder.b.eq(pre_q),
                         adder.c.eq(mul.p), total.eq(adder.y)]
        else:
            base = mac_data
            for k in reversed(range(depth)):
                base = Mux(hit[add][k], sums[k], base)
            m.d.comb += total.eq(base + mul.p)
        m.d.sync += [sums[0].eq(total)] + [sums[k].eq(sums[k - 1]) for k in range(1, n_sums)]
        for n, (ram, mac_k, clear_k) in enumerate(zip(rams, mac_sel, clear_sel, strict=True)):
            clear = self.clear.en & clear_k
            if deep:
                # The write port is driven from registers: the sum (or a clear's zero), its
                # row and enable are registered together at the add stage.
                w_en = Signal(name=f"w_en{n}")
                w_addr = Signal.like(pair.row, name=f"w_addr{n}")
                w_data = Signal(signed(p.acc_width), name=f"w_data{n}")
                m.d.sync += [w_en.eq((valid[add] & mac_k) | clear),
                             w_addr.eq(Mux(clear, self.clear.addr, row[add]))]
                with m.If(clear):  # a synchronous reset of the register, no multiplexer
                    m.d.sync += w_data.eq(0)
                with m.Else():
                    m.d.sync += w_data.eq(total)
                m.d.comb += [ram.w_en.eq(w_en), ram.w_addr.eq(w_addr), ram.w_data.eq(w_data)]
            else:
                # Clears come registered (the zero is written at the end of the next cycle).
                clear_q = Signal(name=f"clear{n}")
                clear_addr = Signal.like(self.clear.addr, name=f"clear_addr{n}")
                m.d.sync += [clear_q.eq(clear), clear_addr.eq(self.clear.addr)]
                m.d.comb += [
                    ram.w_en.eq((valid[add] & mac_k) | clear_q),
                    ram.w_addr.eq(Mux(clear_q, clear_addr, row[add])),
                    ram.w_data.eq(Mux(clear_q, 0, total)),
                ]
        m.d.comb += self.busy.eq(Cat(*valid[1:]).any())
        return m
