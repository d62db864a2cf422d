"""Deep Compression for the sparse engine: pruning, weight sharing, EIE's CSC encoding.

Pipeline: ``prune`` (magnitude pruning to a target density) -> ``share_weights`` (k-means
over the non-zeros, 16-bit fixed-point codebook, index 0 = zero) -> ``encode`` (per-PE
compressed sparse columns with 4-bit relative row indices) -> ``to_bytes`` (versioned file
layout). ``decode`` and ``from_bytes`` invert the last two steps and reject malformed input
with :class:`FormatError`.

Encoding (EIE, Han et al. 2016): global row ``i`` belongs to PE ``i % n_pe`` as local row
``i // n_pe``. For each PE and column the non-zero rows are stored in increasing order as
8-bit entries ``run << 4 | index``: ``index`` (low nibble) is the codebook index, ``run``
(high nibble) the number of zero local rows since the previous entry of the column (since
local row 0 for the first entry). A run longer than 15 first emits padding entries ``15 << 4
| 0``: each stands for 15 zero rows plus one zero weight (index 0), i.e. advances 16 rows. A run
of ``r`` zeros therefore costs ``r // 16`` padding entries and leaves ``r % 16`` for the run
field of the real entry. Trailing zeros of a column cost nothing. Per PE, ``ptr`` has
``cols + 1`` entries: column ``j`` is ``entries[ptr[j]:ptr[j+1]]``.

Byte layout, version 1 (all integers little-endian)::

    offset  size            field
    0       4               magic b"NPUS"
    4       1               version (1)
    5       1               index bits (4)
    6       1               fraction bits f of the codebook (0..15): weight = value / 2**f
    7       1               reserved, 0
    8       2               n_pe (1..MAX_PE)
    10      2               reserved, 0
    12      4               rows (1..MAX_DIM)
    16      4               cols (1..MAX_DIM)
    20      32              codebook: 16 x int16, entry 0 must be 0
    52      4*n_pe*(cols+1) column pointers, PE-major: ptr[p][0..cols] as uint32
    ...     sum ptr[p][cols] entries, PE-major, one byte each
    end-4   4               CRC-32 (zlib) of every byte before it

Reading is bounded: :func:`from_bytes` checks every size field against the documented limits
and against the bytes actually present before it allocates anything, and checks the
relative indices without building the dense matrix, so any input, however malformed, costs
time and memory in proportion to its own size and ends in a result or a
:class:`FormatError`. Only :func:`decode` and :func:`decode_indices` build the dense
``rows x cols`` matrix (at most ``MAX_DENSE`` elements).
"""

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from npugen.rtl.sparse.params import INDEX_BITS, RUN_BITS, WEIGHT_WIDTH

from ..models.intmath import signed_range

__all__ = [
    "FORMAT_VERSION", "MAGIC", "MAX_DENSE", "MAX_DIM", "MAX_PE", "EncodedMatrix", "FormatError",
    "check_indices", "check_structure", "decode", "decode_indices", "encode", "from_bytes",
    "prune", "share_weights", "to_bytes",
]

MAGIC = b"NPUS"
FORMAT_VERSION = 1
#: Largest number of rows or columns a file may declare (the engine's own limit is 4096).
MAX_DIM = 1 << 16
#: Largest number of processing elements a file may declare (the engine's limit is 64).
MAX_PE = 4096
#: Largest dense matrix (elements) :func:`decode` builds.
MAX_DENSE = 1 << 26
_HEADER = struct.Struct("<4sBBBBHHII")
_CODEBOOK = struct.Struct("<16h")
CODEBOOK_SIZE = 1 << INDEX_BITS
MAX_RUN = (1 << RUN_BITS) - 1


class FormatError(ValueError):
    """Malformed encoded matrix: truncated, inconsistent or of an unknown version."""


def prune(w, density):
    """Magnitude pruning: keep the ``round(density * size)`` largest ``|w|``, zero the rest.

    Ties are broken by position (row-major, earlier first), so the result is deterministic.
    """
    w = np.asarray(w, dtype=np.float64)
    if isinstance(density, bool) or not isinstance(density, (int, float)) \
            or not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be a number in 0..1, not {density!r}")
    keep = int(round(density * w.size))
    order = np.argsort(-np.abs(w), axis=None, kind="stable")
    out = np.zeros_like(w)
    idx = order[:keep]
    out.flat[idx] = w.flat[idx]
    return out


def _choose_frac(values):
    """Largest fraction width f in 0..15 with every round(v * 2**f) inside int16."""
    lo, hi = signed_range(WEIGHT_WIDTH)
    for f in range(WEIGHT_WIDTH - 1, -1, -1):
        q = np.round(np.asarray(values) * (1 << f))
        if q.size == 0 or (q.min() >= lo and q.max() <= hi):
            return f
    raise ValueError(f"weights up to {np.abs(values).max()} do not fit signed 16-bit integers")


def share_weights(w, bits=4, *, frac_bits=None, iterations=100):
    """Weight sharing by k-means over the non-zeros of ``w`` (Deep Compression).

    ``2**bits - 1`` clusters, centroids initialised linearly over ``[min, max]`` of the
    non-zeros (Deep Compression's best initialisation), Lloyd iterations until the assignment
    is stable or ``iterations`` ran; an empty cluster keeps its centroid. No random state is
    involved, so the result is deterministic. Centroids are then quantized to signed 16-bit
    fixed point with ``frac_bits`` fraction bits (default: the most that keeps every centroid
    inside int16), rounded to nearest with ties to even (``numpy.round``).

    Returns ``(w_idx, codebook, frac_bits)``: ``w_idx`` int64 codebook indices (0 where ``w``
    is zero), ``codebook`` 16 int64 values with ``codebook[0] == 0``, entries beyond
    ``2**bits - 1`` zero. The quantized matrix is ``codebook[w_idx]`` (in units of
    ``2**-frac_bits``).
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= INDEX_BITS:
        raise ValueError(f"bits must be in 1..{INDEX_BITS}, not {bits!r}")
    w = np.asarray(w, dtype=np.float64)
    nz = w != 0
    values = w[nz]
    k = (1 << bits) - 1
    w_idx = np.zeros(w.shape, dtype=np.int64)
    codebook = np.zeros(CODEBOOK_SIZE, dtype=np.int64)
    if values.size == 0:
        return w_idx, codebook, (WEIGHT_WIDTH - 1 if frac_bits is None else frac_bits)
    centroids = np.linspace(values.min(), values.max(), k)
    assign = None
    for _ in range(iterations):
        new = np.argmin(np.abs(values[:, None] - centroids[None, :]), axis=1)
        if assign is not None and np.array_equal(new, assign):
            break
        assign = new
        for c in range(k):
            members = values[assign == c]
            if members.size:
                centroids[c] = members.mean()
    if frac_bits is None:
        frac_bits = _choose_frac(centroids)
    elif isinstance(frac_bits, bool) or not isinstance(frac_bits, int) \
            or not 0 <= frac_bits <= WEIGHT_WIDTH - 1:
        raise ValueError(f"frac_bits must be in 0..{WEIGHT_WIDTH - 1}, not {frac_bits!r}")
    lo, hi = signed_range(WEIGHT_WIDTH)
    q = np.round(centroids * (1 << frac_bits))
    if q.min() < lo or q.max() > hi:
        raise ValueError(f"frac_bits={frac_bits} puts centroids outside int16; use fewer")
    codebook[1:k + 1] = q.astype(np.int64)
    w_idx[nz] = assign + 1
    return w_idx, codebook, frac_bits


@dataclass(frozen=True)
class EncodedMatrix:
    """A matrix in EIE's per-PE CSC format (see the module docstring).

    ``ptr`` is an int64 array of shape ``(n_pe, cols + 1)``; ``entries`` a tuple of ``n_pe``
    uint8 arrays.
    """

    rows: int
    cols: int
    n_pe: int
    codebook: tuple
    frac_bits: int
    ptr: np.ndarray
    entries: tuple

    def pe_rows(self, pe):
        """Return the local row count of PE ``pe``: rows ``i < rows`` with ``i % n_pe == pe``."""
        return len(range(pe, self.rows, self.n_pe))

    @property
    def stored(self):
        """Stored entries over all PEs, padding included."""
        return int(sum(len(e) for e in self.entries))

    def column(self, pe, col):
        """Entries of ``col`` in PE ``pe``."""
        return self.entries[pe][self.ptr[pe][col]:self.ptr[pe][col + 1]]


def _check_codebook(codebook):
    cb = np.asarray(codebook, dtype=np.int64).reshape(-1)
    lo, hi = signed_range(WEIGHT_WIDTH)
    if cb.size != CODEBOOK_SIZE:
        raise ValueError(f"codebook must have {CODEBOOK_SIZE} entries, not {cb.size}")
    if cb.min() < lo or cb.max() > hi:
        raise ValueError(f"codebook values must be in {lo}..{hi}")
    if cb[0] != 0:
        raise ValueError(f"codebook[0] is reserved for zero, not {cb[0]}")
    return tuple(int(v) for v in cb)


def encode(w_idx, n_pe, *, codebook=None, frac_bits=0):
    """Encode a matrix of codebook indices (0 = zero weight) for ``n_pe`` PEs.

    ``codebook`` defaults to the identity ``0..15`` (handy for tests). Returns an
    :class:`EncodedMatrix`.
    """
    w_idx = np.asarray(w_idx)
    if w_idx.ndim != 2 or w_idx.dtype.kind not in "iu":
        raise ValueError(f"w_idx must be a 2-D integer matrix, not {w_idx.dtype} {w_idx.shape}")
    if w_idx.size and (w_idx.min() < 0 or w_idx.max() >= CODEBOOK_SIZE):
        raise ValueError(f"w_idx values must be codebook indices in 0..{CODEBOOK_SIZE - 1}")
    if isinstance(n_pe, bool) or not isinstance(n_pe, int) or not 1 <= n_pe <= 65535:
        raise ValueError(f"n_pe must be in 1..65535, not {n_pe!r}")
    if not 0 <= frac_bits <= WEIGHT_WIDTH - 1:
        raise ValueError(f"frac_bits must be in 0..{WEIGHT_WIDTH - 1}, not {frac_bits!r}")
    cb = _check_codebook(range(CODEBOOK_SIZE) if codebook is None else codebook)
    rows, cols = w_idx.shape
    ptr = np.zeros((n_pe, cols + 1), dtype=np.int64)
    entries = []
    for p in range(n_pe):
        local = w_idx[p::n_pe, :]
        out = []
        for j in range(cols):
            last = -1
            for r in np.flatnonzero(local[:, j]):
                run = int(r) - last - 1
                while run > MAX_RUN:
                    out.append(MAX_RUN << INDEX_BITS)  # padding: 15 zeros + a zero weight
                    run -= MAX_RUN + 1
                out.append(run << INDEX_BITS | int(local[r, j]))
                last = int(r)
            ptr[p, j + 1] = len(out)
        entries.append(np.array(out, dtype=np.uint8))
    return EncodedMatrix(rows, cols, n_pe, cb, frac_bits, ptr, tuple(entries))


def check_structure(enc):
    """Raise FormatError unless the shape, pointers and entries of ``enc`` are consistent."""
    if not (1 <= enc.rows <= MAX_DIM and 1 <= enc.cols <= MAX_DIM and 1 <= enc.n_pe <= MAX_PE):
        raise FormatError(f"bad shape {enc.rows}x{enc.cols} with n_pe={enc.n_pe}: rows and "
                          f"cols must be in 1..{MAX_DIM}, n_pe in 1..{MAX_PE}")
    ptr = np.asarray(enc.ptr)
    if ptr.shape != (enc.n_pe, enc.cols + 1) or len(enc.entries) != enc.n_pe:
        raise FormatError(f"pointer table has shape {ptr.shape}, expected "
                          f"{(enc.n_pe, enc.cols + 1)}")
    first = np.flatnonzero(ptr[:, 0] != 0)
    if first.size:
        p = int(first[0])
        raise FormatError(f"PE {p}: first column pointer is {ptr[p, 0]}, not 0")
    bad = np.argwhere(np.diff(ptr, axis=1) < 0)
    if bad.size:
        p, j = (int(v) for v in bad[0])
        raise FormatError(f"PE {p}: column pointer {j + 1} ({ptr[p, j + 1]}) is below "
                          f"pointer {j} ({ptr[p, j]})")
    for p in range(enc.n_pe):
        if ptr[p, -1] != len(enc.entries[p]):
            raise FormatError(f"PE {p}: last column pointer {ptr[p, -1]} does not match its "
                              f"{len(enc.entries[p])} entries (pointer out of range)")


def _local_rows(enc, p):
    """Local row of every entry of PE ``p`` (padding included), column by column."""
    entries = np.asarray(enc.entries[p], dtype=np.int64)
    steps = (entries >> INDEX_BITS) + 1
    total = np.cumsum(steps)
    ptr = np.asarray(enc.ptr[p], dtype=np.int64)
    counts = np.diff(ptr)
    # Each column's running sum restarts: subtract the sum up to the column's first entry.
    base = np.where(ptr[:-1] > 0, total[np.maximum(ptr[:-1] - 1, 0)] if total.size else 0, 0)
    return total - np.repeat(base, counts) - 1


def check_indices(enc):
    """Raise FormatError if a relative index runs past its PE's rows (no dense matrix)."""
    check_structure(enc)
    for p in range(enc.n_pe):
        if not len(enc.entries[p]):
            continue
        rows = _local_rows(enc, p)
        n_local = enc.pe_rows(p)
        over = np.flatnonzero(rows >= n_local)
        if over.size:
            k = int(over[0])
            j = int(np.searchsorted(enc.ptr[p], k, side="right")) - 1
            raise FormatError(f"PE {p} column {j} entry {k - int(enc.ptr[p][j])}: relative "
                              f"index runs to local row {int(rows[k])}, past the PE's "
                              f"{n_local} rows")


def decode_indices(enc):
    """Dense matrix of codebook indices; FormatError on any inconsistency."""
    check_indices(enc)
    if enc.rows * enc.cols > MAX_DENSE:
        raise ValueError(f"a {enc.rows} x {enc.cols} matrix is too large to decode densely "
                         f"(at most {MAX_DENSE} elements)")
    w_idx = np.zeros((enc.rows, enc.cols), dtype=np.int64)
    for p in range(enc.n_pe):
        entries = np.asarray(enc.entries[p], dtype=np.int64)
        if not entries.size:
            continue
        rows = _local_rows(enc, p)
        cols = np.repeat(np.arange(enc.cols), np.diff(np.asarray(enc.ptr[p])))
        index = entries & (CODEBOOK_SIZE - 1)
        keep = index != 0  # padding entries write nothing
        w_idx[rows[keep] * enc.n_pe + p, cols[keep]] = index[keep]
    return w_idx


def decode(enc):
    """Dense quantized matrix ``codebook[w_idx]`` (int64 fixed point, ``frac_bits``)."""
    return np.asarray(enc.codebook, dtype=np.int64)[decode_indices(enc)]


def to_bytes(enc):
    """Serialise ``enc`` in the version-1 byte layout (module docstring)."""
    check_structure(enc)
    out = bytearray(_HEADER.pack(MAGIC, FORMAT_VERSION, INDEX_BITS, enc.frac_bits, 0, enc.n_pe,
                                 0, enc.rows, enc.cols))
    out += _CODEBOOK.pack(*enc.codebook)
    out += np.asarray(enc.ptr, dtype="<u4").tobytes()
    for e in enc.entries:
        out += np.asarray(e, dtype=np.uint8).tobytes()
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


def from_bytes(blob):
    """Parse the version-1 byte layout; FormatError on anything malformed, never a guess."""
    blob = bytes(blob)
    need = _HEADER.size + _CODEBOOK.size + 4
    if len(blob) < need:
        raise FormatError(f"truncated: {len(blob)} bytes, a header needs {need}")
    magic, version, index_bits, frac, res0, n_pe, res1, rows, cols = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise FormatError(f"bad magic {magic!r}, expected {MAGIC!r}")
    if version != FORMAT_VERSION:
        raise FormatError(f"unsupported format version {version}, this reader knows "
                          f"{FORMAT_VERSION}")
    if index_bits != INDEX_BITS or frac > WEIGHT_WIDTH - 1 or res0 or res1:
        raise FormatError(f"bad header: index bits {index_bits}, fraction bits {frac}, "
                          f"reserved {res0}/{res1}")
    if not (1 <= n_pe <= MAX_PE and 1 <= rows <= MAX_DIM and 1 <= cols <= MAX_DIM):
        raise FormatError(f"bad header: n_pe {n_pe} (1..{MAX_PE}), rows {rows} and cols "
                          f"{cols} (1..{MAX_DIM})")
    ptr_bytes = 4 * n_pe * (cols + 1)
    fixed = _HEADER.size + _CODEBOOK.size + ptr_bytes + 4
    if len(blob) < fixed:
        raise FormatError(f"truncated: {len(blob)} bytes, header and pointers need {fixed}")
    (crc,) = struct.unpack_from("<I", blob, len(blob) - 4)
    codebook = _CODEBOOK.unpack_from(blob, _HEADER.size)
    if codebook[0] != 0:
        raise FormatError(f"codebook[0] must be 0, not {codebook[0]}")
    start = _HEADER.size + _CODEBOOK.size
    ptr = np.frombuffer(blob, dtype="<u4", count=n_pe * (cols + 1), offset=start)
    ptr = ptr.astype(np.int64).reshape(n_pe, cols + 1)
    sizes = ptr[:, -1]
    if len(blob) != fixed + int(sizes.sum()):
        raise FormatError(f"truncated or oversized: {len(blob)} bytes, the pointers need "
                          f"{fixed + int(sizes.sum())}")
    if zlib.crc32(blob[:-4]) != crc:
        raise FormatError("CRC-32 mismatch: the data is corrupted")
    entries, pos = [], start + ptr_bytes
    for p in range(n_pe):
        entries.append(np.frombuffer(blob, dtype=np.uint8, count=int(sizes[p]), offset=pos))
        pos += int(sizes[p])
    enc = EncodedMatrix(rows, cols, n_pe, tuple(codebook), frac, ptr, tuple(entries))
    check_indices(enc)  # pointers and relative indices, without the dense matrix
    return enc
