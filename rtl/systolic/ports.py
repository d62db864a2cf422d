"""Port layouts and timing of the systolic array, as functions of its parameters.

Host code (benches, workloads, the manifest) reads these instead of building the array.
"""

from amaranth.hdl import signed
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from ..common.pipeline import tree_levels
from ..common.result_buffer import ResultBuffer
from .mul import multiplier_latency
from .params import Dataflow, Multiplier

__all__ = [
    "act_layout", "in_layout", "os_buffer_depth", "os_latency", "os_pipeline_cycles",
    "out_layout", "signature", "weight_layout", "ws_broadcast_min_tile_vectors",
    "ws_broadcast_pipeline_cycles",
    "ws_broadcast_product_cycles", "ws_buffer_depth", "ws_latency",
    "ws_column_stages", "ws_lock_cycles", "ws_min_tile_vectors", "ws_pipeline_cycles",
]


def weight_layout(p):
    """WS ``i_weight``: one row of a weight tile, ``cols`` signed ``w_width`` lanes."""
    return data.ArrayLayout(signed(p.w_width), p.cols)


def act_layout(p):
    """WS ``i_act``: ``a`` (rows activations), ``psum`` (cols partial sums), ``last``."""
    return data.StructLayout({
        "a": data.ArrayLayout(signed(p.a_width), p.rows),
        "psum": data.ArrayLayout(signed(p.acc_width), p.cols),
        "last": 1,
    })


def in_layout(p):
    """OS ``i``: column k of A (``a``, rows lanes), row k of B (``b``, cols lanes), ``last``."""
    return data.StructLayout({
        "a": data.ArrayLayout(signed(p.a_width), p.rows),
        "b": data.ArrayLayout(signed(p.w_width), p.cols),
        "last": 1,
    })


def out_layout(p):
    """``o`` of both dataflows: ``y`` (cols lanes of signed ``acc_width``) and ``last``."""
    return data.StructLayout({
        "y": data.ArrayLayout(signed(p.acc_width), p.cols),
        "last": 1,
    })


def signature(p):
    """Members of the array ``p`` describes (WS: i_weight, i_act, o; OS: i, o)."""
    if p.dataflow is Dataflow.WS:
        return {"i_weight": In(stream.Signature(weight_layout(p))),
                "i_act": In(stream.Signature(act_layout(p))),
                "o": Out(stream.Signature(out_layout(p)))}
    return {"i": In(stream.Signature(in_layout(p))),
            "o": Out(stream.Signature(out_layout(p)))}


# Weight-stationary timing (derived from WsArray's structure; the benches check it exactly).

def ws_column_stages(p):
    """Return how many registers every column has between its last PE and its adder.

    One with ``multiplier=ice40``: on the iCE40 UP5K the route from the last column's PE
    into the 32-bit carry chain of the adder (3.5 of 17 ns) set Fmax; elsewhere none (the
    ECP5 arrays are limited by other paths, and the flip-flops count against their budget).
    """
    return 1 if p.multiplier is Multiplier.ICE40 else 0


def ws_pipeline_cycles(p):
    """Cycles from accepting an activation vector to writing its result."""
    # Input register, rows + cols grid stages, the multiplier, column stages, the psum adder.
    return p.rows + p.cols + multiplier_latency(p) + ws_column_stages(p) + 2


def ws_broadcast_product_cycles(p):
    """Cycles from a row-broadcast PE's activation to its product (``WsBroadcastPE``).

    The multiplier's latency; one more where the operand registers are in the fabric (with
    ``multiplier=ice40`` they are the DSP block's own A and B registers, inside its latency).
    """
    latency = multiplier_latency(p)
    return latency if p.multiplier is Multiplier.ICE40 else latency + 1


def ws_broadcast_pipeline_cycles(p):
    """Cycles from accepting an activation vector to its result (``WsArray(broadcast=True)``).

    Row ``r``'s ``r`` skew registers (row 0 has one, and swaps with row 1), the product, the
    partial sum's register in each row below the first; no input register, no column skew,
    no de-skew, no output register.
    """
    return p.rows + ws_broadcast_product_cycles(p)


def ws_broadcast_min_tile_vectors(p):
    """Shortest tile (in vectors) of a row-broadcast array (``WsArray(broadcast=True)``).

    A tile's ``rows`` weight beats go in one per cycle from its first vector on, so tiles
    start at least ``rows`` cycles apart; at least 2, so that a pixel's partial sum is
    never read in the cycle its previous one is written (the NPU's accumulators).
    """
    return max(p.rows, 2)


def ws_latency(p):
    """Cycles from an ``i_act`` handshake to the result's first cycle on ``o``."""
    return ws_pipeline_cycles(p) + ResultBuffer.read_latency


def ws_lock_cycles(p):
    """Cycles after a swap during which ``i_weight`` must wait.

    The swap (registered once) reaches PE(r, c) in cycle t+1+r+c (t: the swap vector's
    handshake) and copies the shadow on the edge ending that cycle. A weight accepted in
    cycle u shifts column c on the edge ending u+2+c (the shift passes a register and one
    per column). A shift on the copy's edge is still safe (the copy sees the old value), so
    column c may shift from cycle t+rows+c on, after its last copy: the loader may accept
    from cycle t+rows-2, a lock of rows-3 cycles after t (none below 4 rows).
    """
    return max(0, p.rows - 3)


def ws_min_tile_vectors(p):
    """Shortest tile (in vectors) that lets the next tile start without a bubble.

    The next tile loads from cycle t+1+lock for ``rows`` beats; its last shift lands in
    every column before its own swap can go, two cycles after its last beat: with a steady
    weight stream, tiles of at least this many vectors run back to back at one per cycle.
    """
    return ws_lock_cycles(p) + p.rows + 2


def ws_buffer_depth(p):
    """Return the result buffer depth: the credit round trip, so no bubbles at full rate."""
    # +1 for the credit round trip, and the slack of the lagging count behind can_reserve.
    return (ws_pipeline_cycles(p) + ResultBuffer.read_latency + 1
            + ResultBuffer.can_reserve_slack(1))


# Output-stationary timing.

def os_pipeline_cycles(p):
    """Cycles from accepting a ``last`` beat to writing row 0 of the result."""
    return p.cols + 1 + multiplier_latency(p) + tree_levels(p.rows)


def os_latency(p):
    """Cycles from the ``last`` beat's handshake to row 0 of the result on ``o``."""
    return os_pipeline_cycles(p) + ResultBuffer.read_latency


def os_buffer_depth(p):
    """Return the result buffer depth: one tile plus the credit round trip."""
    return os_pipeline_cycles(p) + ResultBuffer.read_latency + p.rows + 1
