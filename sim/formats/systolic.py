"""Stream beats of the systolic array: what a host sends and how it reads the results.

The builders return payload values (dicts and lists of ints) in the layouts of
:mod:`npugen.rtl.systolic.ports`; :func:`~.beats.pack` turns them into port words. Benches and
the link workload build their traffic with these functions only.
"""

import numpy as np

__all__ = ["STREAMS", "act_beat", "act_beats", "os_beats", "out_beats", "parse_out",
           "weight_beats"]


def _ints(row):
    return [int(v) for v in row]


def weight_beats(p, w):
    """``i_weight`` beats of one WS weight tile ``w`` (rows x cols): beat r = ``w[r, :]``."""
    w = np.asarray(w)
    if w.shape != (p.rows, p.cols):
        raise ValueError(f"w must have shape ({p.rows}, {p.cols}), not {w.shape}")
    return [_ints(row) for row in w]


def act_beat(p, a, psum, last):
    """One WS ``i_act`` beat: activations ``a`` (rows), partial sums ``psum`` (cols)."""
    return {"a": _ints(a), "psum": _ints(psum), "last": int(bool(last))}


def act_beats(p, a, psum=None):
    """WS ``i_act`` beats for the M vectors of one tile: ``a`` is (M, rows), ``psum`` (M, cols).

    ``last`` marks the final vector (the next vector uses the next weight tile).
    """
    a = np.asarray(a)
    psum = np.zeros((len(a), p.cols), dtype=np.int64) if psum is None else np.asarray(psum)
    return [act_beat(p, a[m], psum[m], m == len(a) - 1) for m in range(len(a))]


def os_beats(p, a, b):
    """OS ``i`` beats of one tile: beat k = (``a[:, k]``, ``b[k, :]``), ``last`` on k = K-1."""
    a, b = np.asarray(a), np.asarray(b)
    k = a.shape[1]
    return [{"a": _ints(a[:, j]), "b": _ints(b[j]), "last": int(j == k - 1)} for j in range(k)]


def out_beats(p, y):
    """Return the ``o`` beats for result rows ``y`` (n, cols) of one tile.

    ``last`` is on the final row.

    WS: one row per ``i_act`` vector, ``last`` copied from the tile's last vector; OS: the
    tile's ``rows`` result rows.
    """
    y = np.asarray(y)
    return [{"y": _ints(row), "last": int(i == len(y) - 1)} for i, row in enumerate(y)]


def parse_out(p, beats):
    """``(y, last)`` arrays from received ``o`` beats: ``y`` (n, cols) int64, ``last`` (n,)."""
    y = np.array([b["y"] for b in beats], dtype=np.int64).reshape(len(beats), p.cols)
    return y, np.array([b["last"] for b in beats], dtype=np.int64)


#: The builder of every input stream and the parser of every output stream, by port name.
STREAMS = {"i_weight": weight_beats, "i_act": act_beats, "i": os_beats, "o": parse_out}
