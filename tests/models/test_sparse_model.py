"""Deep Compression encoder/decoder and the sparse engine model vs Python-int loops."""

import struct
import zlib

import numpy as np
import pytest

from npugen.rtl.sparse import SparseParams
from npugen.sim.formats.compress import (
    FormatError,
    decode,
    decode_indices,
    encode,
    from_bytes,
    prune,
    share_weights,
    to_bytes,
)
from npugen.sim.formats.sparse import act_beats
from npugen.sim.models.intmath import signed_range
from npugen.sim.models.sparse import dense_weights, entries_read, sparse_matvec, useful_macs


def _random_idx(nrng, rows, cols, density):
    w = nrng.integers(1, 16, size=(rows, cols))
    return np.where(nrng.random((rows, cols)) < density, w, 0)


# ---- pruning and weight sharing ----

def test_prune_keeps_largest_magnitudes(seed):
    nrng = np.random.default_rng(seed)
    w = nrng.normal(size=(30, 20))
    for density in (0.0, 0.1, 0.5, 1.0):
        out = prune(w, density)
        keep = int(round(density * w.size))
        assert np.count_nonzero(out) == keep
        if 0 < keep < w.size:
            assert np.abs(out[out != 0]).min() >= np.abs(w[out == 0]).max()
        assert np.array_equal(out[out != 0], w[out != 0])


@pytest.mark.parametrize("density", [-0.1, 1.5, "half", True])
def test_prune_wrong_density(density):
    with pytest.raises(ValueError, match="density must be"):
        prune(np.ones((2, 2)), density)


def test_share_weights_clusters(seed):
    nrng = np.random.default_rng(seed)
    w = prune(nrng.normal(scale=0.1, size=(40, 30)), 0.25)
    w_idx, cb, frac = share_weights(w)
    assert cb[0] == 0 and len(cb) == 16 and 0 <= frac <= 15
    assert np.array_equal(w_idx == 0, w == 0), "index 0 exactly where the weight is zero"
    assert w_idx.max() <= 15
    assert cb.min() >= -32768 and cb.max() <= 32767
    # Every weight sits nearer its own centroid than any other (k-means fixed point) ...
    approx = cb[w_idx] / (1 << frac)
    err = np.abs(approx - w)[w != 0]
    assert err.max() < (w.max() - w.min()) / 8
    # ... and the codebook is deterministic.
    again = share_weights(w)
    assert np.array_equal(again[0], w_idx) and np.array_equal(again[1], cb)


def test_share_weights_fraction_bits():
    w = np.array([[0.0, 1.5, -3.9], [2.0, 0.0, 0.25]])
    w_idx, cb, frac = share_weights(w, bits=4)
    # Largest |centroid| 3.9 < 4 needs 2 integer bits + sign: 13 fraction bits.
    assert frac == 13
    assert sorted(cb[w_idx][w != 0] / 2**13) == pytest.approx(sorted(w[w != 0]), abs=2**-13)
    _, cb2, frac2 = share_weights(w, bits=2, frac_bits=4)
    assert frac2 == 4 and np.count_nonzero(cb2) <= 3
    with pytest.raises(ValueError, match="bits must be in 1..4"):
        share_weights(w, bits=5)
    with pytest.raises(ValueError, match="frac_bits must be in 0..15"):
        share_weights(w, frac_bits=16)
    with pytest.raises(ValueError, match="outside int16"):
        share_weights(w * 1000, frac_bits=15)


def test_share_weights_all_zero():
    w_idx, cb, _ = share_weights(np.zeros((3, 4)))
    assert not w_idx.any() and not cb.any()


# ---- encoding ----

def test_encode_small_example():
    """Hand-checked: PE 0 holds rows 0, 2, 4; PE 1 rows 1, 3."""
    w_idx = np.array([[0, 3], [5, 0], [0, 0], [0, 0], [7, 1]])
    enc = encode(w_idx, 2)
    # PE 0, local rows (0, 1, 2) = global (0, 2, 4): col 0 has 7 at local 2 (run 2);
    # col 1 has 3 at local 0 (run 0) and 1 at local 2 (run 1).
    assert list(enc.entries[0]) == [2 << 4 | 7, 0 << 4 | 3, 1 << 4 | 1]
    assert list(enc.ptr[0]) == [0, 1, 3]
    # PE 1, local rows (0, 1) = global (1, 3): col 0 has 5 at local 0; col 1 empty.
    assert list(enc.entries[1]) == [5]
    assert list(enc.ptr[1]) == [0, 1, 1]


@pytest.mark.parametrize(("run", "paddings"), [(15, 0), (16, 1), (31, 1), (32, 2), (120, 7)])
def test_padding_entries(run, paddings):
    """A run of r zeros costs r // 16 padding entries (15 << 4 | 0) and a run field r % 16."""
    w_idx = np.zeros((run + 1, 1), dtype=np.int64)
    w_idx[run, 0] = 9
    enc = encode(w_idx, 1)
    assert list(enc.entries[0]) == [0xF0] * paddings + [(run % 16) << 4 | 9]
    assert np.array_equal(decode_indices(enc), w_idx)


@pytest.mark.parametrize("n_pe", [1, 2, 3, 4, 8, 64])
@pytest.mark.parametrize("density", [0.0, 0.01, 0.1, 0.5, 1.0])
def test_roundtrip(n_pe, density, seed):
    nrng = np.random.default_rng(seed)
    rows, cols = int(nrng.integers(1, 150)), int(nrng.integers(1, 40))
    w_idx = _random_idx(nrng, rows, cols, density)
    cb = nrng.integers(-32768, 32768, size=16)
    cb[0] = 0
    cb[1], cb[2] = -32768, 32767
    enc = encode(w_idx, n_pe, codebook=cb, frac_bits=7)
    assert np.array_equal(decode_indices(enc), w_idx)
    assert np.array_equal(decode(enc), cb[w_idx])
    back = from_bytes(to_bytes(enc))
    assert np.array_equal(decode(back), cb[w_idx])
    assert (back.rows, back.cols, back.n_pe, back.frac_bits) == (rows, cols, n_pe, 7)
    assert np.count_nonzero(w_idx) <= enc.stored


def test_entry_count_brute_force(seed):
    """Stored entries = non-zeros + sum over runs of run // 16, counted per PE column."""
    nrng = np.random.default_rng(seed)
    w_idx = _random_idx(nrng, 200, 7, 0.05)
    for n_pe in (1, 3, 8):
        enc = encode(w_idx, n_pe)
        want = 0
        for p in range(n_pe):
            for j in range(7):
                last = -1
                for r, v in enumerate(w_idx[p::n_pe, j]):
                    if v:
                        want += 1 + (r - last - 1) // 16
                        last = r
        assert enc.stored == want


def test_encode_wrong_input():
    with pytest.raises(ValueError, match="codebook indices in 0..15"):
        encode(np.array([[16]]), 1)
    with pytest.raises(ValueError, match="2-D integer matrix"):
        encode(np.array([0.5]), 1)
    with pytest.raises(ValueError, match="n_pe must be in"):
        encode(np.zeros((2, 2), dtype=int), 0)
    with pytest.raises(ValueError, match=r"codebook\[0\] is reserved"):
        encode(np.zeros((2, 2), dtype=int), 1, codebook=[1] * 16)


# ---- byte layout: malformed input never decodes to a wrong matrix ----

def _blob(seed=1):
    nrng = np.random.default_rng(seed)
    return to_bytes(encode(_random_idx(nrng, 40, 10, 0.3), 4))


def _fix_crc(blob):
    return blob[:-4] + struct.pack("<I", zlib.crc32(blob[:-4]))


def test_bytes_header():
    blob = _blob()
    assert blob[:4] == b"NPUS" and blob[4] == 1
    assert struct.unpack_from("<HHII", blob, 8) == (4, 0, 40, 10)


@pytest.mark.parametrize("cut", [0, 10, 51, 60, -5, -1])
def test_bytes_truncated(cut):
    with pytest.raises(FormatError, match="truncated"):
        from_bytes(_blob()[:cut])


def test_bytes_wrong_version_and_magic():
    blob = bytearray(_blob())
    blob[4] = 2
    with pytest.raises(FormatError, match="unsupported format version 2"):
        from_bytes(_fix_crc(bytes(blob)))
    with pytest.raises(FormatError, match="bad magic"):
        from_bytes(b"XXXX" + _blob()[4:])


def test_bytes_corrupted():
    blob = bytearray(_blob())
    blob[-10] ^= 0x40
    with pytest.raises(FormatError, match="CRC-32"):
        from_bytes(bytes(blob))


def test_bytes_pointer_out_of_range():
    blob = bytearray(_blob())
    # PE 0, pointer 3 set beyond the PE's entries.
    struct.pack_into("<I", blob, 52 + 4 * 3, 10_000)
    with pytest.raises(FormatError, match="pointer"):
        from_bytes(_fix_crc(bytes(blob)))


def test_bytes_relative_index_past_rows():
    w_idx = np.zeros((40, 2), dtype=np.int64)
    w_idx[36, 1] = 3  # PE 0 local row 9, the last of its 10 rows
    enc = encode(w_idx, 4)
    blob = bytearray(to_bytes(enc))
    entry_at = len(blob) - 4 - enc.stored
    assert blob[entry_at] == 9 << 4 | 3
    blob[entry_at] = 10 << 4 | 3  # run to local row 10: past the PE's rows
    with pytest.raises(FormatError, match="past the PE's 10 rows"):
        from_bytes(_fix_crc(bytes(blob)))


# ---- engine model vs Python loops ----

@pytest.mark.parametrize("act_width", [8, 16])
@pytest.mark.parametrize("acc_width", [16, 32, 48])
@pytest.mark.parametrize("relu", [False, True])
def test_matvec_vs_loops(act_width, acc_width, relu, seed):
    p = SparseParams(act_width=act_width, acc_width=acc_width, relu=relu, rows_max=50,
                     cols_max=60)
    nrng = np.random.default_rng(seed)
    w_idx = _random_idx(nrng, 50, 60, 0.4)
    cb = [0, -32768, 32767, *nrng.integers(-32768, 32768, size=13)]
    lo, hi = signed_range(act_width)
    x = nrng.integers(lo, hi + 1, size=60)
    x[:5] = lo
    y = sparse_matvec(p, dense_weights(cb, w_idx), x)
    for i in range(50):
        s = sum(int(cb[int(w_idx[i, j])]) * int(x[j]) for j in range(60))
        s = (s + (1 << (acc_width - 1))) % (1 << acc_width) - (1 << (acc_width - 1))
        assert y[i] == (max(s, 0) if relu else s), f"row {i}"


def test_matvec_shape_checks():
    p = SparseParams(rows_max=4, cols_max=4)
    with pytest.raises(ValueError, match="exceeds rows_max"):
        sparse_matvec(p, np.zeros((5, 4), dtype=int), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="x must have shape"):
        sparse_matvec(p, np.zeros((4, 4), dtype=int), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="8-bit signed"):
        sparse_matvec(p, np.zeros((4, 4), dtype=int), np.array([0, 0, 0, 128]))


def test_work_counts():
    w_idx = np.array([[1, 0, 2], [0, 0, 3]])
    x = np.array([5, 0, -1])
    assert useful_macs(w_idx, x) == 3
    enc = encode(w_idx, 2)
    assert entries_read(enc, x) == 3
    assert act_beats(SparseParams(act_lanes=2), [1, 2, 3]) == \
        [{"a": [1, 2], "last": 0}, {"a": [3, 0], "last": 1}]
