"""Weight-stationary systolic array (TPU v1 style) with double-buffered weight tiles."""

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring

from ..common.params import Validated
from ..common.pipeline import delay, ram_delay
from ..common.result_buffer import ResultBuffer
from .mul import attach_multipliers, multiplier_latency
from .params import BufferRam, Dataflow, Multiplier, SystolicParams
from .pe import WsBroadcastPE, WsPE, ws_psum_width
from .ports import (
    out_layout,
    signature,
    ws_broadcast_min_tile_vectors,
    ws_broadcast_pipeline_cycles,
    ws_buffer_depth,
    ws_column_stages,
    ws_latency,
    ws_lock_cycles,
    ws_min_tile_vectors,
    ws_pipeline_cycles,
)

__all__ = ["WsArray"]


class WsArray(Validated, wiring.Component):
    r"""Weight-stationary ``rows x cols`` array: ``y = a @ W + psum`` per activation vector.

    ::

        i_act.a[0] ──[1 reg]─────> PE00 -> PE01 -> ... -> PE0c     the column sums grow
        i_act.a[1] ──[2 regs]────> PE10 -> PE11 -> ... -> PE1c     down the columns at
           ...                       |       |              |      their exact width
        i_act.a[r] ──[r+1 regs]──> PEr0 -> PEr1 -> ... -> PErc     (16..19 bits for 8
                                     |       |              |      int8 rows), leave at
                                  [c-1]   [c-2] ...       [0]      the bottom, are de-
                                     +- i_act.psum, delayed -+      skewed, and meet the
                                     |  (acc_width adders)   |      delayed psum in one
                                     v                       v      acc_width adder per
                                          result buffer -> o        column
        i_weight: rows beats (row 0 first), shifted up the shadow-weight chains, column c
        one cycle after column c - 1 (each column's weights delayed to match)

    Parameters
    ----------
    params : SystolicParams
        With ``dataflow == Dataflow.WS``.
    psum : bool
        Add ``i_act.psum`` (default). False: the port is ignored (``y = a @ W``) and its
        delay line and adders are not built: a user that accumulates after the array
        (:class:`~npugen.rtl.npu.conv.ConvUnit`) saves ``cols x acc_width`` flip-flops per
        cycle of latency (registers on iCE40, block RAM or LUT RAM elsewhere).
    buffered : bool
        Results leave through the credit-counted result buffer (default). False: no buffer
        (no block RAM, ``ResultBuffer.read_latency`` cycles less latency); ``o.ready`` is
        ignored and the consumer must take ``o`` in every cycle it is valid.
    broadcast : bool
        Each row's activation goes to every PE of the row in the same cycle
        (:class:`~.pe.WsBroadcastPE`) instead of PE to PE: no activation register per PE,
        the columns' sums leave together (no de-skew registers, no output register), and
        with ``multiplier=ice40`` the active weights are the ``SB_MAC16`` blocks' B
        registers (the two PEs of a block sit in one row and swap together, so ``cols``
        must be even). No shadow registers either: a tile's ``rows`` weight beats go in
        with its first vector, one per cycle, each reaching its row as the vector does, so
        ``i_weight`` must not pause inside a tile's beats, and tiles start at least
        :func:`~.ports.ws_broadcast_min_tile_vectors` vectors apart. Latency
        :func:`~.ports.ws_broadcast_pipeline_cycles`. Needs ``psum=False`` and
        ``buffered=False`` (the NPU's CONV unit, whose weight reader reads one word per
        cycle). For small arrays: a row's activation fans out to ``cols`` multipliers.
        Default False.

    Members
    -------
    i_weight : In(stream.Signature(ArrayLayout(signed(w_width), cols)))
        One weight tile is ``rows`` beats, beat r = ``W[r, :]``. It loads into the PEs'
        shadow registers while the previous tile computes (double buffering); the stream
        stalls while a loaded tile waits for its first activation, and for ``rows - 3``
        cycles after that while the swap passes the rows.
    i_act : In(stream.Signature(StructLayout({a, psum, last})))
        ``a``: ``rows`` activations (signed ``a_width``); ``psum``: ``cols`` partial sums
        (signed ``acc_width``, tie to zero when not chaining; ignored with ``psum=False``);
        ``last``: this is the final
        vector for the current weight tile, the next vector uses the next tile. The first
        vector of a tile waits until that tile is fully loaded.
    o : Out(stream.Signature(StructLayout({y, last})))
        ``y[c] = psum[c] + sum_r a[r] * W[r, c]`` wrapped to ``acc_width`` bits (no
        ``psum[c]`` with ``psum=False``), one vector per ``i_act`` vector, in order;
        ``last`` is copied from the input. With ``buffered=False`` ``o.ready`` is ignored.

    Latency ``latency`` cycles from an accepted ``i_act`` vector to its result on ``o``;
    throughput one vector per cycle after the fill, so PE utilisation tends to 100% on long
    streams with back-to-back tiles. Backpressure on ``o`` only stops admission: the array
    itself never stalls (credit-counted result buffer; ``buffered=False``: no backpressure).
    Synchronous reset at any time returns to idle: no tile loaded, nothing in flight,
    nothing stale emitted.

    Area and speed: the partial sums inside a column carry only the bits the products so far
    can need (:func:`~.pe.ws_psum_width`); ``i_act.psum`` is added once per column, at
    ``acc_width``, below the last row. No control signal fans out over the whole grid: the
    swap travels PE to PE as a registered tag, each column's shadow shift has a register of
    its own, and the handshakes decide from registered state in one or two LUT levels, so
    the grid's clock is set by the multiply-add, not by the control.
    """

    @classmethod
    def validate(cls, params, *, psum=True, buffered=True, broadcast=False):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        if not isinstance(params, SystolicParams) or params.dataflow is not Dataflow.WS:
            raise TypeError(f"params must be SystolicParams with dataflow ws, not {params!r}")
        for name, value in (("psum", psum), ("buffered", buffered), ("broadcast", broadcast)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
        if broadcast and (psum or buffered):
            raise ValueError("broadcast=True needs psum=False and buffered=False")
        if broadcast and params.multiplier is Multiplier.ICE40 and params.cols % 2:
            raise ValueError(f"broadcast=True with multiplier=ice40 needs an even cols (two "
                             f"PEs of a row per SB_MAC16), not {params.cols}")

    def __init__(self, params, *, psum=True, buffered=True, broadcast=False):
        self.params = params
        self.psum = psum
        self.buffered = buffered
        self.broadcast = broadcast
        super().__init__(signature(params))

    # Timing, from the structure below (checked by the benches); see npugen.rtl.systolic.ports.
    @property
    def latency(self):
        """Cycles from ``i_act`` handshake to the result's first cycle on ``o``."""
        if self.broadcast:
            return ws_broadcast_pipeline_cycles(self.params)
        return ws_latency(self.params) if self.buffered else ws_pipeline_cycles(self.params)

    @property
    def min_tile_vectors(self):
        """Shortest tile (in vectors) that lets the next tile start without a bubble."""
        if self.broadcast:
            return ws_broadcast_min_tile_vectors(self.params)
        return ws_min_tile_vectors(self.params)

    def manifest_info(self):
        """Return timing, protocol notes and port roles for the JSON manifest."""
        p = self.params
        return {
            "latency": {"i_act_to_o": self.latency, "reset_to_ready": 0,
                        "weight_lock_after_swap": max(1, p.rows - 2)},
            "throughput": {
                "vectors_per_cycle": 1,
                "macs_per_cycle": p.macs,
                "weight_tile_beats": p.rows,
                "min_vectors_per_tile_without_stall": self.min_tile_vectors,
            },
            "protocol": [
                f"Load a weight tile as {p.rows} beats on i_weight, beat r = W[r, :].",
                ("Stream activation vectors on i_act; set last on the final vector of a tile. "
                "The next vector uses the next loaded tile (double-buffered)."),
                ("o carries y = a @ W + psum per vector, in order, wrapped to acc_width bits; "
                "o.last copies i_act.last."),
                ("Tie i_act.psum to zero when not chaining partial sums." if self.psum else
                 "i_act.psum is ignored (psum=False): y = a @ W."),
            ] + ([] if self.buffered else [
                ("No result buffer (buffered=False): o.ready is ignored; take o whenever "
                 "it is valid.")]),
            "roles": {
                "i_weight": f"one row of a weight tile, {p.cols} x signed {p.w_width}-bit",
                "i_act": f"a: {p.rows} x signed {p.a_width}-bit activations; psum: {p.cols} x "
                         f"signed {p.acc_width}-bit partial sums; last: final vector of a tile",
                "o": f"y: {p.cols} x signed {p.acc_width}-bit results; last: copied from i_act",
            },
        }

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        if self.broadcast:
            return self._elaborate_broadcast(m)
        p = self.params
        rows, cols = p.rows, p.cols

        act_take = Signal()  # an activation vector enters
        if self.buffered:
            m.submodules.results = results = ResultBuffer(
                out_layout(p), depth=ws_buffer_depth(p), max_reserve=1, ram=p.result_ram)
            wiring.connect(m, wiring.flipped(self.o), results.o)
            can_reserve = results.can_reserve
            m.d.comb += results.reserve.eq(act_take)
            out_valid, out = results.w_en, results.w_data
        else:  # the consumer takes every result: o is the pipeline's last register
            can_reserve = Const(1)
            out_valid, out = self.o.valid, self.o.payload

        # Tile bookkeeping. need_swap: the next vector starts a tile. filled: the shadow
        # registers hold a whole tile (no more weights until the swap); settled: filled,
        # and its last shift has landed (the swap may go). lock_t: the cycles until the swap
        # has passed the PEs the next shift would overwrite, as a thermometer code (bit i
        # set while more than i cycles remain), so "locked" is a register.
        need_swap = Signal(init=1)
        filled = Signal()
        settled = Signal()
        beat = Signal(range(max(rows, 2)))  # never zero-width (rows == 1)
        beat_last = Signal(init=rows == 1)  # beat == rows - 1, registered
        lock_cycles = ws_lock_cycles(p)
        lock_t = Signal(lock_cycles, name="lock_t") if lock_cycles else None
        locked = lock_t[0] if lock_cycles else Const(0)

        # Next-state logic written out flat, at most two LUT levels from registers, and
        # every signal that enters the grid leaves a register near this logic: the tile's
        # handshakes must not limit a grid that runs at the DSP blocks' speed.
        # a_ok: an activation is offered and has a result slot; w_ok: a weight is offered
        # and the last swap has passed.
        a_ok = Signal()
        w_ok = Signal()
        swap = Signal()
        w_take = Signal()
        m.d.comb += [
            a_ok.eq(self.i_act.valid & can_reserve),
            w_ok.eq(self.i_weight.valid & ~locked),
            self.i_act.ready.eq(can_reserve & (~need_swap | settled)),
            act_take.eq(a_ok & (~need_swap | settled)),
            swap.eq(a_ok & need_swap & settled),
            self.i_weight.ready.eq(~filled & ~locked),
            w_take.eq(w_ok & ~filled),
        ]
        m.d.sync += [
            # settled implies filled; the first filled cycle cannot swap.
            filled.eq(Mux(settled, ~(a_ok & need_swap), filled | (w_ok & beat_last))),
            settled.eq(filled & ~swap),
            need_swap.eq(Mux(act_take, self.i_act.payload.last, need_swap)),
        ]
        if lock_cycles:
            m.d.sync += lock_t.eq(Mux(swap, (1 << lock_cycles) - 1, lock_t >> 1))
        with m.If(w_take):
            m.d.sync += [beat.eq(beat + 1), beat_last.eq(beat == rows - 2 if rows > 1 else 1)]
            with m.If(beat_last):
                m.d.sync += [beat.eq(0), beat_last.eq(rows == 1)]
        # The swap tag: one register here, then each row's skew chain, then PE to PE along
        # the row, so PE(r, c) sees it r + c cycles after PE(0, 0). The shift: one register
        # here, then a chain with one register per column, each driving its column's
        # shadow registers (column c one cycle after column c - 1): no shift enable spans
        # the array, and the registers are distinct, so no tool merges them back into one.
        shift_q = Signal()
        swap_q = Signal()
        m.d.sync += [shift_q.eq(w_take), swap_q.eq(swap)]
        shift_col = []
        for c in range(cols):
            reg = Signal(name=f"shift_col{c}")
            m.d.sync += reg.eq(shift_col[-1] if shift_col else shift_q)
            shift_col.append(reg)

        # Row-major order: an iCE40 dual multiplier serves PE(r, c) and PE(r, c + 1).
        pe = _pe_grid(m, p, WsPE)

        for r in range(rows):
            # Row r enters r cycles late, so it meets the partial sum coming down; one more
            # register for everyone takes the handshake logic off the grid's inputs.
            a_skew = delay(m, self.i_act.payload.a[r], r + 1, name=f"a_skew{r}",
                           reset_less=True)
            swap_skew = delay(m, swap_q, r, name=f"swap_skew{r}")
            for c in range(cols):
                left = pe[r][c - 1] if c else None
                if r == rows - 1:
                    # A beat accepted in cycle u shifts column c in cycle u + 2 + c: its
                    # weight for that column waits as long.
                    w_src = delay(m, self.i_weight.payload[c], 2 + c, name=f"w_skew{c}",
                                  reset_less=True)
                else:
                    w_src = pe[r + 1][c].w_out
                m.d.comb += [
                    pe[r][c].a_in.eq(left.a_out if left else a_skew),
                    pe[r][c].swap_in.eq(left.swap_out if left else swap_skew),
                    pe[r][c].w_shift.eq(shift_col[c]),
                    pe[r][c].w_in.eq(w_src),
                ]
                if r > 0:
                    m.d.comb += pe[r][c].psum_in.eq(pe[r - 1][c].psum_out)

        # Vector t (accepted in cycle t) reaches PE(r, c) in cycle t+1+r+c; its column sum
        # leaves PE(rows-1, c) in cycle t+rows+c+2+L, and is de-skewed to t+rows+cols+1+L
        # (+ E, ws_column_stages: registers every column gets), where it meets i_act.psum
        # delayed as long; the sum is registered once more.
        # The partial sums wait in a memory (one pointer for all columns), not in
        # cols * acc_width * psum_delay flip-flops (4608 of the 8x8 array's 10634): in the
        # result buffer's block RAM kind when that is a vendor one (result_ram=ecp5: DP16KD,
        # no fabric), else in LUT RAM. iCE40 has no LUT RAM, so its builds
        # (multiplier=ice40) keep the registers.
        extra = ws_column_stages(p)
        psum_delay = rows + cols + 1 + multiplier_latency(p) + extra
        psum_in = self.i_act.payload.psum
        if not self.psum:
            psum_late = None
        elif p.multiplier is Multiplier.ICE40:
            psum_late = delay(m, psum_in.as_value(), psum_delay, name="psum_delay",
                              reset_less=True)
        else:
            psum_late = ram_delay(
                m, psum_in.as_value(), psum_delay, name="psum_delay",
                block_ram=None if p.result_ram is BufferRam.INFERRED else p.result_ram)
        if psum_late is not None:
            psum_late = psum_in.shape()(psum_late)
        for c in range(cols):
            column = delay(m, pe[rows - 1][c].psum_out, cols - 1 - c + extra,
                           name=f"y_deskew{c}", reset_less=True)
            y = Signal(signed(p.acc_width), name=f"y{c}", reset_less=True)
            m.d.sync += y.eq(column if psum_late is None else psum_late[c] + column)
            m.d.comb += out.y[c].eq(y)

        m.d.comb += [
            out_valid.eq(delay(m, act_take, ws_pipeline_cycles(p), name="valid")),
            out.last.eq(delay(m, act_take & self.i_act.payload.last,
                              ws_pipeline_cycles(p), name="last")),
        ]
        return m

    def _elaborate_broadcast(self, m):
        """Build the row-broadcast array (``broadcast=True``): weights in lockstep, no shadows.

        A vector that starts a tile (the first, or the one after a ``last``) enters in cycle t
        only together with the tile's beat 0 on ``i_weight``, and only when the tile before
        has taken all its beats; beats 1 .. rows-1 are then taken in cycles t+1 .. t+rows-1,
        one per cycle, so ``i_weight`` must stay valid through them (a tile's beats never
        pause: the NPU's weight reader reads one word per cycle). Tiles start at least
        :func:`~.ports.ws_broadcast_min_tile_vectors` cycles apart.

        The vector reaches row r in cycle t+r (row 0 with row 1, in t+1: its products need
        no register) with the swap tag, and beat r reaches row r's weight bus in the same
        cycle (straight from ``i_weight`` for rows 1 and up, through one register for row 0),
        where the swap loads it: the multipliers' B registers with ``ice40``, else a fabric
        register per PE; there are no shadow registers and no input registers (the grid's
        first registers take the handshake logic: for small FPGAs). The column sums leave
        the last row in cycle t + ws_broadcast_pipeline_cycles, straight onto ``o``.
        """
        p = self.params
        rows, cols = p.rows, p.cols
        out_valid, out = self.o.valid, self.o.payload
        spacing = ws_broadcast_min_tile_vectors(p)
        need_swap = Signal(init=1)  # the next vector starts a tile
        left = Signal(range(spacing))  # cycles until the next tile may start
        loading = left != 0
        start = Signal()  # a tile's first vector (and its beat 0) enters
        act_take = Signal()
        m.d.comb += [
            self.i_act.ready.eq(~need_swap | (self.i_weight.valid & ~loading)),
            act_take.eq(self.i_act.valid & self.i_act.ready),
            start.eq(act_take & need_swap),
            # beat 0 with the first vector; beats 1 .. rows-1 in the cycles after it
            self.i_weight.ready.eq(Mux(loading, left > spacing - rows,
                                       need_swap & self.i_act.valid)),
        ]
        with m.If(start):
            m.d.sync += left.eq(spacing - 1)
        with m.Elif(loading):
            m.d.sync += left.eq(left - 1)
        with m.If(act_take):
            m.d.sync += need_swap.eq(self.i_act.payload.last)
        # Rows 1 and up take beat r straight from i_weight as their swap comes; row 0 a
        # cycle after beat 0 (it swaps with row 1), so its beat waits in one register.
        bus0 = delay(m, self.i_weight.payload.as_value(), 1, name="w_bus0", reset_less=True)

        # Row-major order: an iCE40 dual multiplier serves PE(r, c) and PE(r, c + 1), which
        # swap in the same cycle (cols is even), so its B register holds both weights.
        pe = _pe_grid(m, p, WsBroadcastPE, load_b=p.multiplier is Multiplier.ICE40)
        weights = self.i_weight.payload.shape()
        for r in range(rows):
            # Row 0's PEs have no sum register (their product goes straight down), so row 0
            # takes its activation and swap a cycle late, with row 1.
            late = r == 0
            a_skew = delay(m, self.i_act.payload.a[r], r + late, name=f"a_skew{r}",
                           reset_less=True)
            swap_skew = delay(m, start, r + late, name=f"swap_skew{r}")
            w_row = weights(bus0 if late else self.i_weight.payload.as_value())
            for c in range(cols):
                m.d.comb += [pe[r][c].a_in.eq(a_skew), pe[r][c].swap_in.eq(swap_skew),
                             pe[r][c].w_in.eq(w_row[c])]
                if r > 0:
                    m.d.comb += pe[r][c].psum_in.eq(pe[r - 1][c].psum_out)
        cycles = ws_broadcast_pipeline_cycles(p)
        for c in range(cols):
            m.d.comb += out.y[c].eq(pe[rows - 1][c].psum_out)
        m.d.comb += [
            out_valid.eq(delay(m, act_take, cycles, name="valid")),
            out.last.eq(delay(m, act_take & self.i_act.payload.last, cycles, name="last")),
        ]
        return m


def _pe_grid(m, p, pe_class, *, load_b=False):
    """Add ``rows x cols`` PEs of ``pe_class`` to ``m`` (``pe_<r>_<c>``) with multipliers.

    Each row's partial sums are as narrow as its products so far allow
    (:func:`~.pe.ws_psum_width`); the multipliers serve the PEs in row-major order
    (:func:`~.mul.attach_multipliers`, ``load_b`` passed on). Returns the grid, ``[r][c]``.
    """
    pe = [[None] * p.cols for _ in range(p.rows)]
    for r in range(p.rows):
        for c in range(p.cols):
            m.submodules[f"pe_{r}_{c}"] = pe[r][c] = pe_class(
                p, psum_in_width=ws_psum_width(p, r - 1) if r else 0,
                psum_out_width=ws_psum_width(p, r))
    attach_multipliers(m, p, [pe[r][c] for r in range(p.rows) for c in range(p.cols)],
                       load_b=load_b)
    return pe
