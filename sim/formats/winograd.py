"""Stream beats of the Winograd layer and its tile engine.

The builders return payload values in the layouts of :mod:`npugen.rtl.winograd.ports`;
:func:`~.beats.pack` turns them into port words. Benches and the link workload build their
traffic with these functions only. Feature maps are ``(H, W, C)``, filters ``(K, C, 3, 3)``,
outputs ``(H', W', K)``, as in :mod:`npugen.sim.models.winograd`.
"""

import numpy as np

from npugen.rtl.winograd.params import FilterInput

from ..models.winograd import filter_transform, tile_origins

__all__ = [
    "ENGINE_STREAMS", "STREAMS", "cfg_beat", "engine_cfg_beat", "engine_out_beats",
    "filter_beats", "out_beats", "parse_engine_out", "parse_out", "pixel_beats", "tile_beats",
]


def cfg_beat(p, h, w, c, k, padding):
    """Return the layer's ``i_cfg`` beat: each field holds the value itself (not value-1)."""
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', not {padding!r}")
    return {"height": h, "width": w, "channels": c, "filters": k,
            "same": int(padding == "same")}


def filter_beats(p, w):
    """``i_filter`` beats for filters ``w`` (K, C, 3, 3): filter k outer, channel c inner.

    ``g`` (raw 3x3, row-major) when the hardware transforms, ``u`` (U' = G' g G'^T, 4x4
    row-major) when ``filter_input`` is ``transformed``: this is the host-side transform.
    """
    w = np.asarray(w)
    k, c = w.shape[:2]
    if p.filter_input is FilterInput.RAW:
        return [{"g": [int(v) for v in w[i, j].flatten()]} for i in range(k) for j in range(c)]
    u = filter_transform(p, w)
    return [{"u": [int(v) for v in u[i, j].flatten()]} for i in range(k) for j in range(c)]


def pixel_beats(p, x):
    """``i_pixel`` beats of feature map ``x`` (H, W, C) in raster order; lanes >= C are 0."""
    x = np.asarray(x)
    h, w, c = x.shape
    return [{"x": [int(x[r, q, ch]) if ch < c else 0 for ch in range(p.c_max)],
             "last": int(r == h - 1 and q == w - 1)} for r in range(h) for q in range(w)]


def out_beats(p, y):
    """Return the layer's ``o`` beats for output ``y`` (H', W', K), in the documented order.

    One beat per (2x2 output tile, filter): tiles in raster order, filters inner. Lane n is
    output pixel (2i + n // 2, 2j + n % 2); where that pixel does not exist (odd H' or W')
    the lane is None (its value is unspecified) and its ``mask`` bit is 0.
    """
    y = np.asarray(y)
    ho, wo, k = y.shape
    tiles = tile_origins(ho, wo)
    beats = []
    for n, (i, j) in enumerate(tiles):
        for f in range(k):
            lanes, mask = [], 0
            for q in range(4):
                r, c = i + q // 2, j + q % 2
                inside = r < ho and c < wo
                lanes.append(int(y[r, c, f]) if inside else None)
                mask |= inside << q
            beats.append({"y": lanes, "mask": mask,
                          "last": int(n == len(tiles) - 1 and f == k - 1)})
    return beats


def parse_out(p, beats, shape=None):
    """Return the output map ``y`` (H', W', K) from received layer ``o`` beats.

    ``shape`` is (H', W', K); without it, only the masked lanes are returned, as
    ``out_beats`` writes them (None where ``mask`` is 0), for word-by-word comparison.
    """
    if shape is None:
        return [{"y": [v if (b["mask"] >> q) & 1 else None for q, v in enumerate(b["y"])],
                 "mask": b["mask"], "last": b["last"]} for b in beats]
    ho, wo, k = shape
    y = np.zeros(shape, dtype=np.int64)
    for n, (i, j) in enumerate(tile_origins(ho, wo)):
        for f in range(k):
            beat = beats[n * k + f]
            for q in range(4):
                r, c = i + q // 2, j + q % 2
                if r < ho and c < wo:
                    y[r, c, f] = beat["y"][q]
    return y


def engine_cfg_beat(p, c, k):
    """Return the tile engine's ``i_cfg`` beat: channels and filters of the layer."""
    return {"channels": c, "filters": k}


def tile_beats(p, tiles, end=True):
    """Return tile engine ``i_tile`` beats for ``tiles`` (N, 4, 4, C): C beats per tile.

    ``last`` marks channel C-1, ``end`` the final beat when ``end`` (it closes the layer).
    """
    tiles = np.asarray(tiles)
    n, c = len(tiles), tiles.shape[-1]
    return [{"d": [int(v) for v in t[:, :, ch].flatten()], "last": int(ch == c - 1),
             "end": int(end and ch == c - 1 and i == n - 1)}
            for i, t in enumerate(tiles) for ch in range(c)]


def engine_out_beats(p, y):
    """Tile engine ``o`` beats for one tile's outputs ``y`` (2, 2, K): one per filter."""
    y = np.asarray(y)
    k = y.shape[2]
    return [{"y": [int(v) for v in y[:, :, i].flatten()], "last": int(i == k - 1)}
            for i in range(k)]


def parse_engine_out(p, beats):
    """Output tiles ``(n, 2, 2)`` from received tile engine ``o`` beats (filters in order)."""
    return np.array([b["y"] for b in beats], dtype=np.int64).reshape(len(beats), 2, 2)


#: The builder of every input stream and the parser of every output stream, by port name.
STREAMS = {"i_cfg": cfg_beat, "i_filter": filter_beats, "i_pixel": pixel_beats,
           "o": parse_out}
#: The same for the tile engine alone.
ENGINE_STREAMS = {"i_cfg": engine_cfg_beat, "i_filter": filter_beats, "i_tile": tile_beats,
                  "o": parse_engine_out}
