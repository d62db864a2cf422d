"""Port layouts of the sparse engine and its decoder, as functions of the parameters.

Host code (benches, workloads, the manifest) reads these instead of building the engine.
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum, stream
from amaranth.lib.wiring import In, Out

from .params import INDEX_BITS, RUN_BITS, WEIGHT_WIDTH

__all__ = [
    "CFG_LAYOUT", "CfgOp", "act_item_layout", "act_layout", "codebook_layout",
    "decoder_signature", "entry_layout", "out_layout", "pair_layout", "signature",
]


class CfgOp(enum.Enum, shape=2):
    """Operation of an ``i_cfg`` beat (the op-code numbers are part of the contract)."""

    #: addr = rows (1..rows_max), data = cols (1..cols_max); pe must be 0.
    SHAPE = 0
    #: addr = codebook index (1..15), data = signed 16-bit weight; pe must be 0.
    CODEBOOK = 1
    #: pe, addr = column (0..cols_max), data = pointer (0..entries_max).
    POINTER = 2
    #: pe, addr = entry address (0..entries_max-1), data = entry byte (0..255).
    ENTRY = 3


#: i_cfg payload: a fixed 40-bit layout whatever the parameters, so host tools need none.
CFG_LAYOUT = data.StructLayout({"op": CfgOp, "pe": unsigned(6), "addr": unsigned(16),
                                "data": unsigned(16)})


def act_layout(p):
    """``i_act``: ``act_lanes`` activations (signed ``act_width``) and ``last``."""
    return data.StructLayout({"a": data.ArrayLayout(signed(p.act_width), p.act_lanes),
                              "last": 1})


def out_layout(p):
    """``o``: one output word (signed ``acc_width``) and ``last``."""
    return data.StructLayout({"y": signed(p.acc_width), "last": 1})


def signature(p):
    """Members of :class:`~.engine.SparseMatVec`."""
    return {
        "i_cfg": In(stream.Signature(CFG_LAYOUT)),
        "i_act": In(stream.Signature(act_layout(p))),
        "o": Out(stream.Signature(out_layout(p))),
        "error": Out(1),
        "pe_active": Out(p.n_pe),
    }


def act_item_layout(p):
    """One queued activation inside a PE: its column and value."""
    return data.StructLayout({"col": range(max(2, p.cols_max)), "act": signed(p.act_width)})


def entry_layout(p):
    """Return the decoder input: entry byte, column-start flag, activation."""
    return data.StructLayout({"entry": unsigned(INDEX_BITS + RUN_BITS), "first": 1,
                              "act": signed(p.act_width)})


def pair_layout(p):
    """Return the decoder output: local accumulator row, decoded weight, activation."""
    return data.StructLayout({"row": range(max(2, p.rows_pe_max)),
                              "weight": signed(WEIGHT_WIDTH), "act": signed(p.act_width)})


def codebook_layout():
    """Codebook write: index and signed 16-bit value."""
    return data.StructLayout({"index": unsigned(INDEX_BITS), "value": signed(WEIGHT_WIDTH)})


def decoder_signature(p):
    """Members of :class:`~.decoder.RelIndexDecoder`."""
    return {
        "i": In(stream.Signature(entry_layout(p))),
        "o": Out(stream.Signature(pair_layout(p))),
        "codebook": In(stream.Signature(codebook_layout())),
        "rows": In(range(p.rows_max + 1), init=p.rows_max),
        "error": Out(1),
        "busy": Out(1),
        "consistent": Out(1),
    }
