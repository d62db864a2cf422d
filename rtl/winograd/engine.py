"""Winograd F(2x2, 3x3) tile engine with on-chip transformed filters."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory

from ..common.params import Validated
from ..common.pipeline import delay, in_range
from ..common.result_buffer import ResultBuffer
from .params import FilterInput, WinogradParams
from .ports import ENGINE_PRODUCT_CYCLES, engine_latency, engine_out_layout, engine_signature
from .transforms import FilterTransform2D, InputTransform2D, OutputTransform2D

__all__ = ["WinogradF23"]


class WinogradF23(Validated, wiring.Component):
    r"""Winograd F(2x2, 3x3) tile engine: 4x4xC input tiles -> 2x2 output tiles per filter.

    ::

        i_tile (one channel of a 4x4 tile) -> B^T d B -> V bank (double-buffered, C words)
        i_filter (3x3 raw or 4x4 U')       -> [G' g G'^T] -> U' store (K*C words)
        for each tile, filter k, channel c (one per cycle):
            M  = sum_c U'[k, c] (.) V[c]       16 multipliers, 16 accumulators
        then Y = (A^T M A) >> 2, wrapped to acc_width -> result buffer -> o

    Parameters
    ----------
    params : WinogradParams

    Members
    -------
    i_cfg : In(stream.Signature(StructLayout({channels, filters})))
        Layer shape: C in 1..c_max, K in 1..k_max. Accepted only when the previous layer is
        closed (its ``end`` taken) and no tile is stored; resets the filter store's write
        pointer. An out-of-range value sets ``error`` and is ignored.
    i_filter : In(stream.Signature(...))
        K*C beats, filter k outer, channel c inner. ``filter_input == raw``: ``g``, 9 lanes
        (3x3 row-major) of signed ``data_width``; ``transformed``: ``u``, 16 lanes (4x4
        row-major) of signed ``u_width`` as produced by the host-side transform.
    i_tile : In(stream.Signature(StructLayout({d, last, end})))
        One channel of a 4x4 input tile (16 lanes row-major, signed ``data_width``), channels
        0..C-1 in order; ``last`` on channel C-1 (a mismatch sets ``error``; writes stay in
        bounds). The next tile may stream in while the current one computes. ``end`` on the
        layer's final beat (with ``last``): afterwards no tile is taken until the next
        ``i_cfg``, so tiles queued for the next layer are never taken for this one. (Filters
        need no such mark: exactly K*C are taken per configuration.)
    o : Out(stream.Signature(StructLayout({y, last})))
        One 2x2 output tile per (tile, filter), filters in order: ``y`` = 4 lanes
        (y00, y01, y10, y11) of signed ``acc_width``, wrapped; ``last`` on filter K-1.
    error : Out(1)
        Sticky malformed-input flag, cleared only by reset.

    Throughput: one (filter, channel) pair per cycle, i.e. 16 multiplies per cycle doing the
    work of 36 direct multiplies; K*C cycles per tile when filters are loaded and the
    output keeps up. Latency from the first issue of a filter to its output tile: C + 6
    cycles (``latency``). Bit growth: see :mod:`.params`. Synchronous reset at any time
    returns to idle: no layer configured, nothing in flight.
    """

    @classmethod
    def validate(cls, params):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        if not isinstance(params, WinogradParams):
            raise TypeError(f"params must be WinogradParams, not {params!r}")

    def __init__(self, params):
        self.params = params
        super().__init__(engine_signature(params))

    #: Result slots: the RAM holds 16 words either way (the next power of two above the
    #: depth), and the layer collects several engines' results in order (docs/design_notes.md).
    _BUFFER_DEPTH = 15

    @property
    def latency(self):
        """Cycles from issuing the first channel of a filter to its tile on ``o`` (C = 1)."""
        return engine_latency(self.params)

    def manifest_info(self):
        """Return timing, protocol notes and port roles for the JSON manifest."""
        p = self.params
        filt = (f"g: 3x3 raw filter, 9 x signed {p.data_width}-bit"
                if p.filter_input is FilterInput.RAW
                else f"u: transformed 4x4 filter U', 16 x signed {p.u_width}-bit")
        return {
            "latency": {"last_channel_issue_to_o": self.latency},
            "throughput": {
                "filter_channel_pairs_per_cycle": 1,
                "multipliers": 16,
                "direct_multiplies_equivalent_per_cycle": 36,
                "cycles_per_tile": "K*C (input C cycles per tile, overlapped)",
            },
            "protocol": [
                "Send i_cfg (C, K) while idle, then K*C filters on i_filter (k outer, c inner).",
                ("Send tiles on i_tile: C beats (channels 0..C-1) of a 4x4 tile, last on C-1; "
                 "end on the layer's final beat closes the layer until the next i_cfg."),
                ("o carries K 2x2 output tiles per input tile, filter order, last on K-1; "
                "y = cross-correlation of the tile with filter k, wrapped to acc_width."),
                "error is sticky: bad i_cfg values or a misplaced i_tile.last; reset clears.",
            ],
            "roles": {"i_cfg": "channels C and filters K of the layer", "i_filter": filt,
                      "i_tile": f"d: one channel of a 4x4 input tile, 16 x signed "
                                f"{p.data_width}-bit; last: channel C-1; end: layer's final beat",
                      "o": f"y: 2x2 output tile, 4 x signed {p.acc_width}-bit; last: filter K-1",
                      "error": "sticky malformed-input flag"},
        }

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.params
        u_row = data.ArrayLayout(signed(p.u_width), 16)
        v_row = data.ArrayLayout(signed(p.v_width), 16)

        m.submodules.results = results = ResultBuffer(
            engine_out_layout(p), depth=self._BUFFER_DEPTH, max_reserve=1)
        wiring.connect(m, wiring.flipped(self.o), results.o)

        # Layer configuration.
        channels = Signal(range(p.c_max + 1), init=1)
        filters = Signal(range(p.k_max + 1), init=1)
        configured = Signal()   # a layer shape is set (filters count against it)
        tiles_open = Signal()   # tiles of the current layer may still come (until `end`)
        busy = Signal()

        # --- Filter store: K*C words, dense, written in order -------------------------------
        u_depth = max(2, p.k_max * p.c_max)  # a 1-word memory would get a 0-bit address
        m.submodules.u_store = u_store = Memory(shape=u_row, depth=u_depth, init=[])
        u_wr = u_store.write_port()
        u_rd = u_store.read_port(transparent_for=())
        u_wptr = Signal(range(p.k_max * p.c_max + 1))
        # Filter count as (channel, filter) counters: no channels*filters multiplier.
        f_chan = Signal(range(max(2, p.c_max)))
        f_filt = Signal(range(max(2, p.k_max)))
        f_all = Signal()        # all K*C filter words taken
        filters_loaded = Signal()

        if p.filter_input is FilterInput.RAW:
            m.submodules.filter_transform = ft = FilterTransform2D(p)
            m.d.comb += ft.i.eq(self.i_filter.payload.g)
            u_word = ft.o
        else:
            u_word = self.i_filter.payload.u
        f_take = Signal()
        m.d.comb += [
            # Stop at K*C words: the write pointer never leaves the store.
            self.i_filter.ready.eq(configured & ~f_all),
            f_take.eq(self.i_filter.valid & self.i_filter.ready),
        ]
        # Registered write: transform in this cycle, write on the next edge.
        f_wen = Signal()
        f_word = Signal(u_row)
        f_addr = Signal.like(u_wptr)
        f_final = Signal()
        f_last = (f_chan == channels - 1) & (f_filt == filters - 1)
        m.d.sync += [f_wen.eq(f_take), f_word.eq(u_word), f_addr.eq(u_wptr),
                     f_final.eq(f_take & f_last)]
        m.d.comb += [u_wr.en.eq(f_wen), u_wr.addr.eq(f_addr), u_wr.data.eq(f_word)]
        with m.If(f_take):
            m.d.sync += [u_wptr.eq(u_wptr + 1),
                         f_chan.eq(Mux(f_chan == channels - 1, 0, f_chan + 1))]
            with m.If(f_chan == channels - 1):
                m.d.sync += f_filt.eq(f_filt + 1)
            with m.If(f_last):
                m.d.sync += f_all.eq(1)
        # Loaded once the last word is written (not merely accepted): the first read of the
        # store happens on the edge after this one.
        with m.If(f_final):
            m.d.sync += filters_loaded.eq(1)

        # --- Input side: transform and store one channel per beat, two banks ----------------
        m.submodules.input_transform = it = InputTransform2D(p)
        m.submodules.v_store = v_store = Memory(shape=v_row, depth=2 * p.c_max, init=[])
        v_wr = v_store.write_port()
        v_rd = v_store.read_port(transparent_for=())
        bank_full = Signal(2)
        w_bank = Signal()
        w_chan = Signal(range(max(2, p.c_max)))  # never zero-width
        t_take = Signal()
        m.d.comb += [
            it.i.eq(self.i_tile.payload.d),
            self.i_tile.ready.eq(tiles_open & ~bank_full.bit_select(w_bank, 1)),
            t_take.eq(self.i_tile.valid & self.i_tile.ready),
        ]
        last_chan = w_chan == channels - 1
        # The transform is adds only; its result goes straight into the bank on the accepting
        # edge, so a bank is readable the cycle after its last channel arrives (this keeps
        # K = 1 layers at one channel per cycle).
        m.d.comb += [
            v_wr.en.eq(t_take), v_wr.data.eq(it.o),
            v_wr.addr.eq(Mux(w_bank, p.c_max, 0) + w_chan),
        ]
        with m.If(t_take):
            m.d.sync += w_chan.eq(Mux(last_chan, 0, w_chan + 1))
            with m.If((self.i_tile.payload.last != last_chan) |
                      (self.i_tile.payload.end & ~last_chan)):
                m.d.sync += self.error.eq(1)
            with m.If(self.i_tile.payload.end):
                # The layer's tiles are complete: the next tiles wait for a new configuration.
                # (Filters need no such mark: exactly K*C are taken per configuration.)
                m.d.sync += tiles_open.eq(0)
            with m.If(last_chan):
                m.d.sync += w_bank.eq(~w_bank)
        set_full = Signal(2)
        m.d.comb += set_full.eq(Mux(t_take & last_chan, 1 << w_bank, 0))

        # --- Compute: issue one (filter, channel) pair per cycle ------------------------------
        c_bank = Signal()
        k_cnt = Signal(range(max(2, p.k_max)))
        c_cnt = Signal(range(max(2, p.c_max)))
        u_rptr = Signal(range(max(2, p.k_max * p.c_max)))
        issue = Signal()
        first_c = c_cnt == 0
        last_c = c_cnt == channels - 1
        last_k = k_cnt == filters - 1
        can_issue = bank_full.bit_select(c_bank, 1) & filters_loaded & \
            (~first_c | (results.free != 0))
        clear_full = Signal(2)
        m.d.comb += [
            issue.eq(can_issue),
            results.reserve.eq(issue & first_c),
            u_rd.addr.eq(u_rptr),
            v_rd.addr.eq(Mux(c_bank, p.c_max, 0) + c_cnt),
            clear_full.eq(Mux(issue & last_c & last_k, 1 << c_bank, 0)),
        ]
        m.d.sync += bank_full.eq((bank_full | set_full) & ~clear_full)
        with m.If(issue):
            m.d.sync += [c_cnt.eq(Mux(last_c, 0, c_cnt + 1)),
                         u_rptr.eq(Mux(last_c & last_k, 0, u_rptr + 1))]
            with m.If(last_c):
                m.d.sync += k_cnt.eq(Mux(last_k, 0, k_cnt + 1))
                with m.If(last_k):
                    m.d.sync += c_bank.eq(~c_bank)

        # Pipeline tags: (first channel, last channel, last filter), aligned with products.
        tags = delay(m, Cat(issue & first_c, issue & last_c, issue & last_c & last_k),
                     ENGINE_PRODUCT_CYCLES, name="tag")
        # Cycle t+1: U' and V words on the read ports. Cycle t+2: products.
        prod = Signal(data.ArrayLayout(signed(p.product_width), 16), reset_less=True)
        for n in range(16):
            m.d.sync += prod[n].eq(u_rd.data[n] * v_rd.data[n])
        # Cycle t+3: channel sums (wrapping to m_width; see params).
        acc = Signal(data.ArrayLayout(signed(p.m_width), 16), reset_less=True)
        for n in range(16):
            m.d.sync += acc[n].eq(Mux(tags[0], 0, acc[n]) + prod[n])
        done = Signal()
        done_last = Signal()
        m.d.sync += [done.eq(tags[1]), done_last.eq(tags[2])]
        # Cycle t+4: A^T M A (registered); t+5: >> 2 into the result buffer.
        m.submodules.output_transform = ot = OutputTransform2D(p.m_width)
        m.d.comb += ot.i.eq(acc)
        y4 = Signal(data.ArrayLayout(signed(p.m_width), 4), reset_less=True)
        y_valid = Signal()
        y_last = Signal()
        m.d.sync += [y4.eq(ot.o), y_valid.eq(done), y_last.eq(done_last)]
        m.d.comb += [results.w_en.eq(y_valid), results.w_data.last.eq(y_last)]
        for n in range(4):
            # Exact: y4 = 4Y modulo 2**m_width, and m_width <= acc_width + 2.
            m.d.comb += results.w_data.y[n].eq(y4[n] >> 2)

        # --- Configuration (only when idle) ----------------------------------------------
        # Idle: the current layer is closed (`end` taken) and no tile is stored or arriving.
        # Pairs already issued do not read the layer shape again, and their U' words were
        # read before any new filter can be written.
        m.d.comb += busy.eq(tiles_open | (bank_full != 0) | (w_chan != 0))
        cfg = self.i_cfg.payload
        cfg_take = Signal()
        m.d.comb += [self.i_cfg.ready.eq(~busy), cfg_take.eq(self.i_cfg.valid & ~busy)]
        with m.If(cfg_take):
            with m.If(~in_range(cfg.channels, 1, p.c_max) | ~in_range(cfg.filters, 1, p.k_max)):
                m.d.sync += self.error.eq(1)
            with m.Else():
                m.d.sync += [channels.eq(cfg.channels), filters.eq(cfg.filters),
                             u_wptr.eq(0), f_chan.eq(0), f_filt.eq(0), f_all.eq(0),
                             filters_loaded.eq(0), configured.eq(1), tiles_open.eq(1),
                             c_cnt.eq(0), k_cnt.eq(0), u_rptr.eq(0)]
        return m
