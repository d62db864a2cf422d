"""Integer primitives with named semantics, exact in int64.

numpy traps these helpers avoid: int8 ``+`` and ``@`` wrap silently and ``astype(np.int8)``
wraps instead of saturating. Everything here widens to int64 first and then wraps or checks
on purpose.
"""

import numpy as np

__all__ = ["as_int64", "check_signed", "signed_range", "wrap"]


def signed_range(bits):
    """Return ``(lo, hi)``, the inclusive range of a ``bits``-bit two's-complement integer."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def as_int64(x):
    """Convert to an int64 array, refusing floats and values outside int64."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iub" and not (arr.dtype == object or arr.size == 0):
        raise TypeError(f"expected integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def check_signed(name, x, bits):
    """Return ``x`` as int64 after checking that every element fits ``bits`` signed bits."""
    arr = as_int64(x)
    lo, hi = signed_range(bits)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"{name} must hold {bits}-bit signed values in {lo}..{hi}")
    return arr


def wrap(x, bits):
    """Two's-complement wraparound to ``bits`` bits (what hardware truncation does).

    Valid for any int64 input and 1 <= bits <= 63.
    """
    if not 1 <= bits <= 63:
        raise ValueError(f"bits must be in 1..63, not {bits!r}")
    half = np.int64(1 << (bits - 1))
    x = np.asarray(x, dtype=np.int64) & np.int64((1 << bits) - 1)
    # Sign extension without forming 2**bits (which would not fit int64 for bits == 63).
    return ((x ^ half) - half).astype(np.int64)
