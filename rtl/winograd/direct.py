"""Direct 3x3 convolution tile engine: the multiplier-count baseline for Winograd."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..common.params import Validated
from .params import WinogradParams, signed_bits

__all__ = ["DirectConvTile"]


class DirectConvTile(Validated, wiring.Component):
    """Direct convolution at the Winograd engine's output rate: 2x2 outputs per channel-cycle.

    Each beat brings one channel of a 4x4 input tile and the matching 3x3 filter; 36
    multipliers form the four 9-term dot products, which accumulate over the channels.

    Members
    -------
    i : In(stream.Signature(StructLayout({d, g, last})))
        ``d``: 16 lanes (4x4 row-major), ``g``: 9 lanes (3x3 row-major), signed
        ``data_width``; ``last`` on the final channel.
    o : Out(stream.Signature(ArrayLayout(signed(acc_width), 4)))
        (y00, y01, y10, y11) of the tile, wrapped to ``acc_width``.

    One channel per cycle; latency 3 cycles (products, sums, accumulate). Backpressure on
    ``o`` stalls the whole pipeline (a global enable: this engine exists to be measured).
    """

    @classmethod
    def validate(cls, params):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        if not isinstance(params, WinogradParams):
            raise TypeError(f"params must be WinogradParams, not {params!r}")

    def __init__(self, params):
        self.params = p = params
        self.in_layout = data.StructLayout({
            "d": data.ArrayLayout(signed(p.data_width), 16),
            "g": data.ArrayLayout(signed(p.data_width), 9), "last": 1})
        super().__init__({
            "i": In(stream.Signature(self.in_layout)),
            "o": Out(stream.Signature(data.ArrayLayout(signed(p.acc_width), 4))),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.params
        n = p.data_width
        prod_w = 2 * n
        sum_w = signed_bits(9 << (2 * n - 2))
        run = Signal()
        m.d.comb += [run.eq(~self.o.valid | self.o.ready), self.i.ready.eq(run)]
        d, g = self.i.payload.d, self.i.payload.g
        prods = [[Signal(signed(prod_w), name=f"p{q}_{t}") for t in range(9)] for q in range(4)]
        v1, last1, v2, last2 = Signal(), Signal(), Signal(), Signal()
        sums = [Signal(signed(sum_w), name=f"s{q}") for q in range(4)]
        acc = [Signal(signed(p.acc_width), name=f"acc{q}") for q in range(4)]
        first = Signal(init=1)
        with m.If(run):
            m.d.sync += [v1.eq(self.i.valid), last1.eq(self.i.payload.last),
                         v2.eq(v1), last2.eq(last1)]
            for q in range(4):
                r0, c0 = q // 2, q % 2
                for t in range(9):
                    u, v = divmod(t, 3)
                    m.d.sync += prods[q][t].eq(d[(r0 + u) * 4 + c0 + v] * g[t])
                m.d.sync += sums[q].eq(sum(prods[q]))
            with m.If(v2):
                for q in range(4):
                    m.d.sync += acc[q].eq(Mux(first, 0, acc[q]) + sums[q])
                m.d.sync += first.eq(last2)
            m.d.sync += self.o.valid.eq(v2 & last2)
        for q in range(4):
            m.d.comb += self.o.payload[q].eq(acc[q])
        return m
