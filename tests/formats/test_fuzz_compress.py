"""Fuzzing the compressed-matrix file: every malformed input is a FormatError, quickly.

Seeded (the session seed; rerun with --seed), bounded: a few thousand mutants of valid files
(bit flips with and without a recomputed CRC, truncation, extension, header and pointer
edits). Each must parse into a matrix that passes every check, or raise FormatError: no
other exception, and a peak allocation bounded by a small multiple of the input's size (no
size field is trusted before it is checked against the bytes present).
"""

import random
import struct
import time
import tracemalloc
import zlib

import numpy as np

from npugen.sim.formats.compress import (
    MAX_DIM,
    FormatError,
    check_indices,
    decode,
    encode,
    from_bytes,
    to_bytes,
)

HEADER = struct.Struct("<4sBBBBHHII")


def _valid_files(nrng, count):
    files = []
    for _ in range(count):
        rows, cols = int(nrng.integers(1, 40)), int(nrng.integers(1, 12))
        density = float(nrng.choice([0.0, 0.05, 0.3, 1.0]))
        w = np.where(nrng.random((rows, cols)) < density, nrng.integers(1, 16, (rows, cols)), 0)
        cb = nrng.integers(-32768, 32768, 16)
        cb[0] = 0
        files.append(to_bytes(encode(w, int(nrng.integers(1, 5)), codebook=cb)))
    return files


def _with_crc(blob):
    body = bytes(blob[:-4])
    return body + struct.pack("<I", zlib.crc32(body))


def _mutants(rng, blob):
    b = bytearray(blob)
    kind = rng.randrange(8)
    if kind == 0:  # bit flips, CRC left alone
        for _ in range(rng.randrange(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == 1:  # bit flips, CRC recomputed (so only the structure checks can catch it)
        for _ in range(rng.randrange(1, 4)):
            b[rng.randrange(len(b) - 4)] ^= 1 << rng.randrange(8)
        return _with_crc(b)
    if kind == 2:  # truncation
        return bytes(b[:rng.randrange(len(b))])
    if kind == 3:  # extension
        return bytes(b) + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
    if kind == 4:  # a header size field set to an extreme, CRC recomputed
        field = rng.choice(["n_pe", "rows", "cols"])
        value = rng.choice([0, 1, 2, MAX_DIM, MAX_DIM + 1, 1 << 27, 1 << 31, (1 << 32) - 1])
        magic, ver, ib, frac, r0, n_pe, r1, rows, cols = HEADER.unpack_from(b)
        values = {"n_pe": n_pe, "rows": rows, "cols": cols}
        values[field] = value if field != "n_pe" else value & 0xFFFF
        HEADER.pack_into(b, 0, magic, ver, ib, frac, r0, values["n_pe"], r1, values["rows"],
                         values["cols"])
        return _with_crc(b)
    if kind == 5:  # a pointer edited, CRC recomputed
        n_pe, cols = HEADER.unpack_from(b)[5], HEADER.unpack_from(b)[8]
        k = rng.randrange(n_pe * (cols + 1))
        struct.pack_into("<I", b, 52 + 4 * k, rng.choice([0, 1, 7, 255, 1 << 20, (1 << 32) - 1]))
        return _with_crc(b)
    if kind == 6:  # an entry byte made a long run, CRC recomputed
        b[rng.randrange(52, len(b) - 4)] = 0xF0 | rng.randrange(16)
        return _with_crc(b)
    return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120)))  # garbage


def test_every_mutant_parses_or_is_a_format_error(seed):
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    files = _valid_files(nrng, 60)
    outcomes = {"ok": 0, "FormatError": 0}
    slowest = 0.0
    tracemalloc.start()
    try:
        for n in range(3000):
            blob = _mutants(rng, files[n % len(files)])
            tracemalloc.reset_peak()
            t0 = time.perf_counter()
            try:
                enc = from_bytes(blob)
            except FormatError:
                enc = None
            slowest = max(slowest, time.perf_counter() - t0)
            peak = tracemalloc.get_traced_memory()[1]
            assert peak < 64 * len(blob) + (1 << 20), (n, len(blob), peak)
            if enc is None:
                outcomes["FormatError"] += 1
                continue
            outcomes["ok"] += 1
            check_indices(enc)  # what parsed is consistent, and decodes
            assert decode(enc).shape == (enc.rows, enc.cols)
            assert to_bytes(enc) == blob, "a parsed file re-serialises to itself"
    finally:
        tracemalloc.stop()
    print(f"seed {seed}: {outcomes}, slowest {1000 * slowest:.1f} ms")
    assert outcomes["FormatError"] > 2000 and outcomes["ok"] > 20, outcomes


def test_huge_declared_shapes_are_rejected_before_any_allocation():
    """A 154-byte file declaring 2**31 or 2**27 rows: FormatError, nothing allocated."""
    blob = bytearray(to_bytes(encode(np.ones((4, 2), dtype=int), 1)))
    for rows in (1 << 31, 1 << 27, MAX_DIM + 1):
        struct.pack_into("<I", blob, 12, rows)
        tracemalloc.start()
        try:
            try:
                from_bytes(_with_crc(blob))
            except FormatError as exc:
                assert "rows" in str(exc)
            else:
                raise AssertionError("accepted")
            assert tracemalloc.get_traced_memory()[1] < 1 << 20
        finally:
            tracemalloc.stop()
