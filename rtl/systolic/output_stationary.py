"""Output-stationary systolic array: each PE accumulates one element of ``A @ B``."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring

from ..common.params import Validated
from ..common.pipeline import delay, or_tree, tree_levels
from ..common.result_buffer import ResultBuffer
from .mul import attach_multipliers
from .params import Dataflow, SystolicParams
from .pe import OsPE
from .ports import os_buffer_depth, os_latency, out_layout, signature

__all__ = ["OsArray"]


class OsArray(Validated, wiring.Component):
    r"""Output-stationary ``rows x cols`` array: ``C = A @ B``, ``A`` rows x K, ``B`` K x cols.

    ::

                   i.b[0]   i.b[1]  ...  i.b[c]      (column c enters c cycles late)
                     v        v            v
        i.a[0] ──> PE00 --> PE01 --> ... PE0c       every PE: acc += a * b
        i.a[1] ─1─> PE10 --> PE11 --> ... PE1c       (row r enters r cycles late)
          ...        |        |            |
        done accumulators: one registered OR-tree per column (a finished tile's
        rows pass through it one per cycle), de-skew, result buffer -> o

    Parameters
    ----------
    params : SystolicParams
        With ``dataflow == Dataflow.OS``.

    Members
    -------
    i : In(stream.Signature(StructLayout({a, b, last})))
        Beat k carries column k of ``A`` (``a``, ``rows`` lanes, signed ``a_width``) and row
        k of ``B`` (``b``, ``cols`` lanes, signed ``w_width``); ``last`` marks k = K-1. Any
        K >= 1. The next tile's beats may follow at once, while the previous result drains.
        ``ready`` depends on ``payload.last``: a ``last`` beat waits until the result buffer
        has room for ``rows`` vectors and at least ``rows`` cycles have passed since the
        previous ``last`` (so tiles with K < rows are throttled to one per ``rows`` cycles,
        the rate at which results can leave).
    o : Out(stream.Signature(StructLayout({y, last})))
        ``rows`` vectors per tile, row 0 first: ``y[c] = sum_k A[r, k] * B[k, c]`` wrapped
        to ``acc_width`` bits; ``last`` marks row ``rows - 1``.

    Latency ``latency`` cycles from the ``last`` beat's handshake to row 0 on ``o``; rows
    follow one per cycle. Throughput: one beat per cycle for K >= rows, so utilisation is
    K / max(K, rows) after the fill. Backpressure on ``o`` only stops admission; the array
    never stalls. Synchronous reset at any time returns to idle with nothing stale emitted.
    """

    @classmethod
    def validate(cls, params):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        if not isinstance(params, SystolicParams) or params.dataflow is not Dataflow.OS:
            raise TypeError(f"params must be SystolicParams with dataflow os, not {params!r}")

    def __init__(self, params):
        self.params = params
        super().__init__(signature(params))

    @property
    def latency(self):
        """Cycles from the ``last`` beat's handshake to row 0 of the result on ``o``."""
        return os_latency(self.params)

    def manifest_info(self):
        """Return timing, protocol notes and port roles for the JSON manifest."""
        p = self.params
        return {
            "latency": {"last_beat_to_first_row": self.latency, "reset_to_ready": 0,
                        "drain_tree_levels": tree_levels(self.params.rows)},
            "throughput": {
                "beats_per_cycle": 1,
                "macs_per_cycle": p.macs,
                "result_rows_per_tile": p.rows,
                "min_cycles_per_tile": p.rows,
            },
            "protocol": [
                "Stream K >= 1 beats on i: beat k = (A[:, k], B[k, :]); last marks k = K-1.",
                (f"i.ready depends on i.payload.last: a last beat waits for room for {p.rows} "
                f"result rows and for {p.rows} cycles since the previous last beat."),
                (f"o carries {p.rows} rows per tile, row 0 first, wrapped to acc_width bits; "
                "o.last marks the final row."),
            ],
            "roles": {
                "i": f"a: column of A, {p.rows} x signed {p.a_width}-bit; b: row of B, "
                     f"{p.cols} x signed {p.w_width}-bit; last: final beat of a tile",
                "o": f"y: one row of C, {p.cols} x signed {p.acc_width}-bit; last: final row",
            },
        }

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.params
        rows, cols = p.rows, p.cols

        m.submodules.results = results = ResultBuffer(
            out_layout(p), depth=os_buffer_depth(p), max_reserve=rows, ram=p.result_ram)
        wiring.connect(m, wiring.flipped(self.o), results.o)

        # first: the next beat starts a tile. since_last: cycles since the last `last`
        # (saturating); two tiles' results must reach each column's OR-tree >= rows apart.
        first = Signal(init=1)
        since_last = Signal(range(rows + 1), init=rows)
        take = Signal()
        last_ok = Signal()
        m.d.comb += [
            last_ok.eq((results.free >= rows) & (since_last == rows)),
            self.i.ready.eq(~self.i.payload.last | last_ok),
            take.eq(self.i.valid & self.i.ready),
            results.reserve.eq(Mux(take & self.i.payload.last, rows, 0)),
        ]
        with m.If(since_last != rows):
            m.d.sync += since_last.eq(since_last + 1)
        with m.If(take):
            m.d.sync += first.eq(self.i.payload.last)
            with m.If(self.i.payload.last):
                m.d.sync += since_last.eq(1)

        pe = [[None] * cols for _ in range(rows)]
        for r in range(rows):
            for c in range(cols):
                m.submodules[f"pe_{r}_{c}"] = pe[r][c] = OsPE(p)
        attach_multipliers(m, p, [pe[r][c] for r in range(rows) for c in range(cols)])

        for r in range(rows):
            # Idle cycles feed a == 0, which adds nothing to any accumulator.
            a = Mux(take, self.i.payload.a[r], 0)
            a_skew = delay(m, a.as_signed(), r, name=f"a_skew{r}", reset_less=True)
            first_skew = delay(m, take & first, r, name=f"first_skew{r}")
            last_skew = delay(m, take & self.i.payload.last, r, name=f"last_skew{r}")
            for c in range(cols):
                left = pe[r][c - 1] if c > 0 else None
                m.d.comb += [
                    pe[r][c].a_in.eq(left.a_out if left else a_skew),
                    pe[r][c].first_in.eq(left.first_out if left else first_skew),
                    pe[r][c].last_in.eq(left.last_out if left else last_skew),
                ]
        for c in range(cols):
            b_skew = delay(m, self.i.payload.b[c], c, name=f"b_skew{c}", reset_less=True)
            for r in range(rows):
                m.d.comb += pe[r][c].b_in.eq(pe[r - 1][c].b_out if r > 0 else b_skew)

        # Drain: PE(r, c) is done in cycle T+r+c for a tile whose last beat was taken in T,
        # so each column presents one finished row per cycle; OR them together.
        for c in range(cols):
            items = []
            for r in range(rows):
                value = Mux(pe[r][c].done, pe[r][c].acc, 0)
                if c == 0:
                    # Column 0 also carries the row's valid and last-row flags.
                    value = Cat(value, pe[r][c].done, pe[r][c].done & (r == rows - 1))
                items.append(value)
            gathered = or_tree(m, items, name=f"drain{c}", reset_less=c != 0)
            gathered = delay(m, gathered, cols - 1 - c, name=f"y_deskew{c}",
                             reset_less=c != 0)
            m.d.comb += results.w_data.y[c].eq(gathered[:p.acc_width])
            if c == 0:
                m.d.comb += [
                    results.w_en.eq(gathered[p.acc_width]),
                    results.w_data.last.eq(gathered[p.acc_width + 1]),
                ]
        return m
