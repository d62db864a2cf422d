"""Stream beats of the sparse engine: the model load, activation vectors, results.

The builders return payload values in the layouts of :mod:`npugen.rtl.sparse.ports`;
:func:`~.beats.pack` turns them into port words. Benches and the link workload build their
traffic with these functions only.
"""

import numpy as np

from npugen.rtl.sparse.ports import CfgOp

from .compress import check_structure

__all__ = [
    "DECODER_STREAMS", "STREAMS", "act_beats", "codebook_beats", "entry_beats", "load_program",
    "out_beats", "pair_beats", "parse_out", "parse_pairs",
]


def load_program(enc):
    """Return the ``i_cfg`` beats that load ``enc`` (an :class:`~.compress.EncodedMatrix`).

    SHAPE, the 16 CODEBOOK entries, then per PE its ``cols + 1`` POINTERs and its ENTRYs.
    Each beat is ``{op, pe, addr, data}`` with ``op`` the integer value of
    :class:`~npugen.rtl.sparse.ports.CfgOp` and ``data`` the 16-bit pattern (codebook values
    in two's complement).
    """
    check_structure(enc)
    beats = [{"op": CfgOp.SHAPE.value, "pe": 0, "addr": enc.rows, "data": enc.cols}]
    beats += [{"op": CfgOp.CODEBOOK.value, "pe": 0, "addr": i, "data": v & 0xFFFF}
              for i, v in enumerate(enc.codebook)]
    for p in range(enc.n_pe):
        beats += [{"op": CfgOp.POINTER.value, "pe": p, "addr": j, "data": int(v)}
                  for j, v in enumerate(enc.ptr[p])]
        beats += [{"op": CfgOp.ENTRY.value, "pe": p, "addr": a, "data": int(v)}
                  for a, v in enumerate(enc.entries[p])]
    return beats


def act_beats(p, x):
    """``i_act`` beats of activation vector ``x``: ``act_lanes`` per beat, zero-padded."""
    lanes = p.act_lanes
    x = [int(v) for v in x]
    count = -(-len(x) // lanes)
    x += [0] * (count * lanes - len(x))
    return [{"a": x[b * lanes:(b + 1) * lanes], "last": int(b == count - 1)}
            for b in range(count)]


def out_beats(p, y):
    """Return the ``o`` beats of result vector ``y``: ``last`` on the final row."""
    return [{"y": int(v), "last": int(i == len(y) - 1)} for i, v in enumerate(y)]


def parse_out(p, beats):
    """``(y, last)`` arrays from received ``o`` beats."""
    return (np.array([b["y"] for b in beats], dtype=np.int64),
            np.array([b["last"] for b in beats], dtype=np.int64))


#: The builder of every input stream and the parser of every output stream, by port name.
STREAMS = {"i_cfg": load_program, "i_act": act_beats, "o": parse_out}


# The relative-index decoder alone (one PE's entry stream).

def codebook_beats(p, codebook):
    """Return decoder ``codebook`` beats: one write per index, in index order."""
    return [{"index": k, "value": int(v)} for k, v in enumerate(codebook)]


def entry_beats(p, columns):
    """Return decoder ``i`` beats for ``columns``, a list of ``(entries, act)``.

    ``first`` marks each column's first entry.
    """
    return [{"entry": int(e), "first": int(k == 0), "act": int(act)}
            for entries, act in columns for k, e in enumerate(entries)]


def pair_beats(pairs):
    """Return decoder ``o`` beats for model pairs ``(local row, weight, act)``."""
    return [{"row": r, "weight": w, "act": a} for r, w, a in pairs]


def parse_pairs(p, beats):
    """``(local row, weight, act)`` tuples from received decoder ``o`` beats."""
    return [(b["row"], b["weight"], b["act"]) for b in beats]


#: The decoder's stream builders and parser, by port name.
DECODER_STREAMS = {"i": entry_beats, "codebook": codebook_beats, "o": parse_pairs}
