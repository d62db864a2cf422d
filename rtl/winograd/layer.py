"""3x3 convolution layer around the Winograd tile engine: line buffers, tiling, padding."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring

from ..common.params import Validated
from ..common.pipeline import select
from .engine import WinogradF23
from .layer_parts import Collector, LayerShape, LineBuffer, TileFormer
from .params import WinogradParams
from .ports import signature

__all__ = ["WinogradConv"]


class WinogradConv(Validated, wiring.Component):
    r"""3x3 stride-1 convolution of an H x W x C feature map with K filters (Winograd F(2x2,3x3)).

    ::

        i_cfg -> LayerShape (shape, tile count, engine configuration)
        i_pixel (raster order) -> LineBuffer (6 rows) -> TileFormer: 4x4 windows, step 2
        (zero outside the map: `same` padding and odd edges), one channel per beat ->
        WinogradF23 tile engines (round-robin) -> Collector (mask, last) -> o

    The pieces are in :mod:`.layer_parts`.

    Parameters
    ----------
    params : WinogradParams
        ``h_max``/``w_max`` size the line buffer; ``c_max``/``k_max``/widths as the engine.

    Members
    -------
    i_cfg : In(stream.Signature(StructLayout({height, width, channels, filters, same})))
        Layer shape: H in 1..h_max and W in 1..w_max with H', W' >= 1 (``valid``: H, W >= 3),
        C in 1..c_max, K in 1..k_max; ``same`` selects zero padding (H' = H) instead of
        ``valid`` (H' = H - 2). Accepted when the previous layer has been fully output.
        Invalid shapes set ``error`` and are ignored.
    i_filter : In(stream.Signature(...))
        K*C filters, exactly as :class:`~.engine.WinogradF23` takes them (k outer).
    i_pixel : In(stream.Signature(StructLayout({x, last})))
        The feature map in raster order (row 0 first, column 0 first), one pixel per beat:
        ``x`` has ``c_max`` lanes of signed ``data_width`` (lanes >= C ignored); ``last`` on
        pixel (H-1, W-1) (a mismatch sets ``error``). At most H*W pixels are taken.
    o : Out(stream.Signature(StructLayout({y, mask, last})))
        One beat per (output tile, filter): tiles in raster order over the 2x2 tile grid
        (ceil(H'/2) x ceil(W'/2)), filters 0..K-1 inner. Lane n of ``y`` is output pixel
        (2i + n // 2, 2j + n % 2) of filter k, signed ``acc_width``, wrapped; ``mask`` bit n
        says whether that pixel exists (odd H' or W' cut the last tile row/column);
        ``last`` on the layer's final beat.
    error : Out(1)
        Sticky malformed-input flag (this wrapper's or the engine's); reset clears it.

    With ``engines`` = E > 1, tiles go round-robin to E tile engines (the last round padded
    with all-zero tiles whose outputs are dropped) and the outputs are collected in the same
    order, so ``o`` is identical for every E.

    Throughput: each tile takes max(K*C / E, C + 5) cycles in steady state (window read plus
    one channel per cycle into an engine, overlapped with the engines' K*C cycles); pixels
    are taken one per cycle while the line buffer has room. Synchronous reset at any time
    returns to idle.
    """

    @classmethod
    def validate(cls, params):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        if not isinstance(params, WinogradParams):
            raise TypeError(f"params must be WinogradParams, not {params!r}")

    def __init__(self, params):
        self.params = p = params
        self.engines = [WinogradF23(p) for _ in range(p.engines)]
        self.engine = self.engines[0]
        super().__init__(signature(p))

    def manifest_info(self):
        """Return timing, protocol notes and port roles for the JSON manifest."""
        p = self.params
        return {
            "latency": {"engine_issue_to_o": self.engine.latency, "reset_to_ready": 0,
                        "last_pixel_to_last_output_one_tile":
                            f"{5 + self.engine.latency} + C + K*C"},
            "throughput": {
                "cycles_per_tile": f"max(K*C/{p.engines}, C+5) in steady state",
                "tile_engines": p.engines,
                "multipliers": 16 * p.engines,
                "direct_multiplies_equivalent_per_cycle": 36 * p.engines,
            },
            "protocol": [
                ("Send i_cfg (H, W, C, K, same) when idle, then K*C filters on i_filter "
                "(k outer, c inner), and the H x W pixels on i_pixel in raster order."),
                ("o: one beat per (2x2 output tile, filter): tiles in raster order, filters "
                "inner; lane n = output (2i + n//2, 2j + n%2); mask marks existing pixels."),
                "error is sticky: bad i_cfg values or a misplaced i_pixel.last; reset clears.",
            ],
            "roles": {
                "i_cfg": "layer shape: height, width, channels, filters, same padding",
                "i_filter": self.engine.manifest_info()["roles"]["i_filter"],
                "i_pixel": f"x: one pixel, {p.c_max} x signed {p.data_width}-bit channels; "
                           "last: final pixel",
                "o": f"y: 2x2 output tile, 4 x signed {p.acc_width}-bit; mask: existing "
                     "pixels; last: final beat of the layer",
                "error": "sticky malformed-input flag",
            },
        }

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.params
        engines = self.engines
        for e, eng in enumerate(engines):
            m.submodules[f"engine{e}"] = eng
        m.submodules.shape = shape = LayerShape(p)
        m.submodules.line_buffer = lines = LineBuffer(p)
        m.submodules.tile_former = former = TileFormer(p)
        m.submodules.collector = collector = Collector(p)
        s = shape.shape
        finish = Signal()
        m.d.comb += finish.eq(collector.done & lines.all_in)

        wiring.connect(m, wiring.flipped(self.i_cfg), shape.i_cfg)
        wiring.connect(m, wiring.flipped(self.i_pixel), lines.i_pixel)
        wiring.connect(m, wiring.flipped(self.o), collector.o)
        m.d.comb += [
            shape.finish.eq(finish),
            lines.height.eq(s.height), lines.width.eq(s.width),
            lines.accept.eq(shape.active & shape.engines_ready),
            lines.free_limit.eq(former.free_limit), lines.clear.eq(finish),
            lines.rd_addr.eq(former.rd_addr), lines.rd_base.eq(former.rd_base),
            former.shape.eq(s), former.in_row.eq(lines.in_row),
            former.rd_rows.eq(lines.rd_rows), former.active.eq(shape.active),
            former.start.eq(shape.active & shape.engines_ready & shape.counted),
            collector.shape.eq(s), collector.clear.eq(finish),
            collector.counted.eq(shape.counted),
            shape.outputs_waiting.eq(Cat(e.o.valid for e in engines).any()),
            self.error.eq(Cat(shape.error, lines.error, *(e.error for e in engines)).any()),
        ]
        # Filters go to every engine at once (all engines hold the same K*C words).
        all_ready = Signal()
        m.d.comb += [all_ready.eq(Cat(e.i_filter.ready for e in engines).all()),
                     self.i_filter.ready.eq(all_ready)]
        for e, eng in enumerate(engines):
            m.d.comb += [
                eng.i_filter.valid.eq(self.i_filter.valid & all_ready),
                eng.i_filter.payload.eq(self.i_filter.payload),
                eng.i_cfg.valid.eq(shape.engine_cfg[e]),
                eng.i_cfg.payload.channels.eq(s.channels),
                eng.i_cfg.payload.filters.eq(s.filters),
                shape.engine_cfg_ready[e].eq(eng.i_cfg.ready),
                # The former's tile goes to its target engine; all engines see the payload.
                eng.i_tile.valid.eq(former.tile.valid & (former.target == e)),
                eng.i_tile.payload.eq(former.tile.payload),
            ]
            wiring.connect(m, eng.o, getattr(collector, f"i_{e}"))
        m.d.comb += former.tile.ready.eq(select([e.i_tile.ready for e in engines],
                                                former.target))
        return m
