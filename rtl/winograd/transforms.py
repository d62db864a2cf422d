"""Winograd F(2x2, 3x3) transforms as add/subtract networks (no multipliers).

1-D kernels, applied to columns and then rows for the 2-D transforms:

- input   ``B^T x``:  (x0 - x2,  x1 + x2,  x2 - x1,  x1 - x3)
- filter  ``G' g`` :  (2 g0,  g0 + g1 + g2,  g0 - g1 + g2,  2 g2)      (G' = 2G)
- output  ``A^T m``:  (m0 + m1 + m2,  m1 - m2 - m3)

Amaranth widens every sum, so no intermediate overflows; the 2-D results are truncated to
the widths of :class:`~.params.WinogradParams`, which hold the derived bounds.
Tiles are row-major lane arrays: lane ``4*r + c`` (or ``3*r + c`` for 3x3, ``2*r + c`` for
2x2) holds row r, column c.
"""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..common.params import Validated

__all__ = [
    "FilterTransform2D", "InputTransform2D", "OutputTransform2D", "filter_1d", "input_1d",
    "output_1d",
]


def input_1d(x):
    """``B^T x`` for four values."""
    return [x[0] - x[2], x[1] + x[2], x[2] - x[1], x[1] - x[3]]


def filter_1d(g):
    """``G' g`` for three values (G' = 2G)."""
    return [g[0] << 1, g[0] + g[1] + g[2], g[0] - g[1] + g[2], g[2] << 1]


def output_1d(m):
    """``A^T m`` for four values."""
    return [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]


def _filter_1d_start(g):
    """:func:`filter_1d`'s first step: ``(g0, g0 + g2, g1, g2)``."""
    return [g[0], g[0] + g[2], g[1], g[2]]


def _filter_1d_finish(w):
    """... and its second: ``(2 w0, w1 + w2, w1 - w2, 2 w3)``."""
    return [w[0] << 1, w[1] + w[2], w[1] - w[2], w[3] << 1]


def _output_1d_start(m):
    """:func:`output_1d`'s first step: ``(m0 + m1, m2, m1 - m2, m3)``."""
    return [m[0] + m[1], m[2], m[1] - m[2], m[3]]


def _output_1d_finish(w):
    """... and its second: ``(w0 + w1, w2 - w3)``."""
    return [w[0] + w[1], w[2] - w[3]]


def _separable(kernel, tile, rows, cols):
    """Apply ``kernel`` down each column, then along each row; return row-major lanes."""
    columns = [kernel([tile[r * cols + c] for r in range(rows)]) for c in range(cols)]
    out_rows = len(columns[0])
    mid = [[columns[c][r] for c in range(cols)] for r in range(out_rows)]
    return [v for row in mid for v in kernel(row)]


def _separable_registered(m, kernel, tile, rows, cols, shape):
    """:func:`_separable` with the column pass in a register of ``shape`` lanes."""
    columns = [kernel([tile[r * cols + c] for r in range(rows)]) for c in range(cols)]
    out_rows = len(columns[0])
    mid = Signal(data.ArrayLayout(shape, out_rows * cols), reset_less=True)
    for c, column in enumerate(columns):
        m.d.sync += [mid[r * cols + c].eq(v) for r, v in enumerate(column)]
    return [v for r in range(out_rows) for v in kernel([mid[r * cols + c] for c in range(cols)])]


def _separable_split(m, steps, tile, rows, cols, shape):
    """:func:`_separable` with each pass made of ``steps``, registered between steps.

    A register of ``shape`` lanes after every step but the row pass's last: ``2 *
    len(steps) - 1`` in all.
    """
    lanes = tile
    # Column pass: lanes row-major, (rows x cols) -> (n x cols) per step.
    for step in steps:
        columns = [step([lanes[r * cols + c] for r in range(rows)]) for c in range(cols)]
        rows = len(columns[0])
        reg = Signal(data.ArrayLayout(shape, rows * cols), reset_less=True)
        for c, column in enumerate(columns):
            m.d.sync += [reg[r * cols + c].eq(v) for r, v in enumerate(column)]
        lanes = [reg[n] for n in range(rows * cols)]
    # Row pass: (rows x cols) -> (rows x n) per step.
    for i, step in enumerate(steps):
        out = [v for r in range(rows) for v in step(lanes[r * cols:(r + 1) * cols])]
        cols = len(out) // rows
        if i == len(steps) - 1:
            return out
        reg = Signal(data.ArrayLayout(shape, rows * cols), reset_less=True)
        m.d.sync += [reg[n].eq(v) for n, v in enumerate(out)]
        lanes = [reg[n] for n in range(rows * cols)]


class _Transform(wiring.Component):
    def __init__(self, in_shape, in_lanes, out_shape, out_lanes, registered=False):
        self.registered = registered
        super().__init__({
            "i": In(data.ArrayLayout(in_shape, in_lanes)),
            "o": Out(data.ArrayLayout(out_shape, out_lanes)),
        })

    @property
    def latency(self):
        """Cycles from ``i`` to ``o``: 0, or 1 with ``registered``."""
        return int(self.registered)


class InputTransform2D(_Transform):
    """``V = B^T d B`` of a 4x4 tile.

    Combinational, or with ``registered`` the column pass ``B^T d`` (16 values, each |.| <=
    2**data_width, held in ``v_width`` bits) in a register: ``o`` is the transform of ``i``
    of the previous cycle.

    Members
    -------
    i : In(ArrayLayout(signed(data_width), 16))
    o : Out(ArrayLayout(signed(v_width), 16)), |V| <= 2**(data_width+1).
    """

    def __init__(self, params, *, registered=False):
        self.v_width = params.v_width
        super().__init__(signed(params.data_width), 16, signed(params.v_width), 16, registered)

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        tile = [self.i[n] for n in range(16)]
        if self.registered:
            out = _separable_registered(m, input_1d, tile, 4, 4, signed(self.v_width))
        else:
            out = _separable(input_1d, tile, 4, 4)
        m.d.comb += [self.o[n].eq(v) for n, v in enumerate(out)]
        return m


class FilterTransform2D(Validated, _Transform):
    """``U' = G' g G'^T`` (= 4U) of a 3x3 filter.

    Combinational, or with ``registered`` the column pass ``G' g`` (12 values, each |.| <=
    3 * 2**(data_width-1), held in ``u_width`` bits) in a register: ``o`` is the transform of
    ``i`` of the previous cycle. With ``split`` as well, each pass is two steps with a
    register between them (``(g0, g0 + g2, g1, g2)``, then ``(2 w0, w1 + w2, w1 - w2,
    2 w3)``: one adder per output and step; every partial value within |U'|'s bound below):
    ``o`` is the transform of ``i`` three cycles before (``latency`` 3).

    Members
    -------
    i : In(ArrayLayout(signed(data_width), 9))
    o : Out(ArrayLayout(signed(u_width), 16)), |U'| <= 9 * 2**(data_width-1).
    """

    @classmethod
    def validate(cls, params, *, registered=False, split=False):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        if split and not registered:
            raise ValueError("FilterTransform2D: split=True needs registered=True")

    def __init__(self, params, *, registered=False, split=False):
        self.u_width = params.u_width
        self.split = split
        super().__init__(signed(params.data_width), 9, signed(params.u_width), 16, registered)

    @property
    def latency(self):
        """Cycles from ``i`` to ``o``: 0, 1 with ``registered``, 3 with ``split``."""
        return 3 if self.split else int(self.registered)

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        tile = [self.i[n] for n in range(9)]
        if self.split:
            out = _separable_split(m, [_filter_1d_start, _filter_1d_finish], tile, 3, 3,
                                   signed(self.u_width))
        elif self.registered:
            out = _separable_registered(m, filter_1d, tile, 3, 3, signed(self.u_width))
        else:
            out = _separable(filter_1d, tile, 3, 3)
        m.d.comb += [self.o[n].eq(v) for n, v in enumerate(out)]
        return m


class OutputTransform2D(Validated, _Transform):
    """``A^T M A`` of a 4x4 Winograd-domain tile, result wrapped to ``width``.

    Combinational, or with ``registered`` the column pass ``A^T M`` (eight sums of three,
    wrapped to ``width``: exact, as the result is taken modulo 2**width) in a register:
    ``o`` is the transform of ``i`` of the previous cycle. With ``split`` as well, each
    sum of three is two steps with a register between them (a sum of two, then the third
    term), so no path holds two adders in a row: ``o`` is the
    transform of ``i`` three cycles before (``latency`` 3), one tile per cycle.

    Members
    -------
    i : In(ArrayLayout(signed(width), 16))
    o : Out(ArrayLayout(signed(width), 4)), equal to 4Y modulo 2**width.
    """

    @classmethod
    def validate(cls, width, *, registered=False, split=False):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        if split and not registered:
            raise ValueError("OutputTransform2D: split=True needs registered=True")

    def __init__(self, width, *, registered=False, split=False):
        self.width = width
        self.split = split
        super().__init__(signed(width), 16, signed(width), 4, registered)

    @property
    def latency(self):
        """Cycles from ``i`` to ``o``: 0, 1 with ``registered``, 3 with ``split``."""
        return 3 if self.split else int(self.registered)

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        tile = [self.i[n] for n in range(16)]
        if self.split:  # every step wraps to width: exact modulo 2**width
            out = _separable_split(m, [_output_1d_start, _output_1d_finish], tile, 4, 4,
                                   signed(self.width))
        elif self.registered:  # the column pass wraps to width: exact modulo 2**width
            out = _separable_registered(m, output_1d, tile, 4, 4, signed(self.width))
        else:
            out = _separable(output_1d, tile, 4, 4)
        m.d.comb += [self.o[n].eq(v) for n, v in enumerate(out)]
        return m
