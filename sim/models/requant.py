"""Golden models of requantization: an int32 accumulator to an int8 (or narrower) output.

Three named runtimes, three roundings (``../shared`` has the derivations; the tests check
each model against a straightforward reference over the int32 edges and 10^6 random pairs):

``ort``
    onnxruntime's CPU kernels (MLAS ``MlasRequantizeOutput``): ``float32(acc)``, one float32
    multiply by the float32 scale, clamp, round half to even, add the zero point. The scale
    is given as its exact float32 value ``mantissa * 2**exponent`` (24-bit mantissa with the
    leading one, see :func:`float32_scale`). Modelled in integers: each float32 rounding is
    a round-half-to-even of the exact value to 24 significant bits.
``tflite``
    TFLite's integer single rounding (a ``TFLITE_SINGLE_ROUNDING`` build; the closest of the
    three to LiteRT's reference ``FULLY_CONNECTED``, not equal to it):
    ``(acc * q + 2**(30 - s)) >> (31 - s)`` with ``q`` in ``[2**30, 2**31)`` (the
    multiplier is ``q * 2**(s - 31)``): the exact product rounded half up (towards
    +infinity), then zero point and clamp. Measured against LiteRT 2.3 (docs/compiler.md,
    "Which rounding LiteRT uses"): its default path on x86-64, XNNPACK, does *not* round
    this way but in float32, exactly as ``ort``.
``gemmlowp``
    TFLite's reference kernels and TFLite Micro, double rounding:
    ``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc * 2**max(s, 0), q),
    max(-s, 0))``. ``acc * 2**s`` wraps to int32 (as the C code does on two's complement
    machines); the high multiply rounds ties towards +infinity (its nudge is ``2**30`` for
    a non-negative product and ``1 - 2**30`` for a negative one, followed by C's truncating
    division) and saturates only for ``INT32_MIN * INT32_MIN``; the division by a power of
    two rounds half away from zero.

Every function is vectorised over numpy arrays (int64 inside, no floating point) and
returns int64 values in ``[lo, hi]``.
"""

import numpy as np

__all__ = ["SHIFT_RANGE", "float32_scale", "quantize_multiplier", "requantize",
           "requantize_gemmlowp", "requantize_ort", "requantize_tflite"]

#: Valid ``s`` of the tflite and gemmlowp multipliers ``q * 2**(s - 31)``: the right shift
#: ``31 - s`` stays in 1..62 (a 64-bit product) for tflite; gemmlowp takes the same range.
SHIFT_RANGE = (-31, 30)

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def float32_scale(scale):
    """Return ``(mantissa, exponent)`` with ``mantissa * 2**exponent == float32(scale)``.

    ``mantissa`` has 24 bits (``2**23 <= mantissa < 2**24``). Only positive, normal float32
    values are scales (a zero, negative, infinite, NaN or subnormal scale raises ValueError).
    """
    bits = int(np.array(scale, dtype=np.float32).view(np.uint32))
    sign, biased, fraction = bits >> 31, (bits >> 23) & 0xFF, bits & 0x7FFFFF
    if sign or biased == 0 or biased == 0xFF:
        raise ValueError(f"scale must be a positive normal float32, not {scale!r}")
    return (1 << 23) | fraction, biased - 127 - 23


def quantize_multiplier(scale):
    """TFLite's ``QuantizeMultiplier``: ``(q, s)`` with ``q * 2**(s - 31) ~= scale``.

    ``q`` in ``[2**30, 2**31)``, rounded half away from zero from the double ``scale``;
    raises ValueError when ``s`` falls outside :data:`SHIFT_RANGE`.
    """
    scale = float(scale)
    if not scale > 0:
        raise ValueError(f"scale must be positive, not {scale!r}")
    fraction, s = np.frexp(scale)  # scale = fraction * 2**s, fraction in [0.5, 1)
    q = int(np.sign(fraction) * np.floor(abs(fraction) * (1 << 31) + 0.5))  # std::round
    if q == 1 << 31:
        q //= 2
        s += 1
    s = int(s)
    if not SHIFT_RANGE[0] <= s <= SHIFT_RANGE[1]:
        raise ValueError(f"scale {scale!r} needs shift {s}, outside {SHIFT_RANGE}")
    return q, s


def _bit_length(x):
    """Bit length of non-negative int64 values (vectorised, integer only)."""
    x = np.asarray(x, dtype=np.int64)
    n = np.zeros(x.shape, dtype=np.int64)
    for step in (32, 16, 8, 4, 2, 1):
        big = (x >> step) != 0
        n = np.where(big, n + step, n)
        x = np.where(big, x >> step, x)
    return n + (x != 0)


def _round_shift_even(x, k):
    """``x / 2**k`` rounded half to even, for non-negative ``x`` and ``k >= 0`` (k <= 62)."""
    x = np.asarray(x, dtype=np.int64)
    k = np.asarray(k, dtype=np.int64)
    q = x >> k
    rem = x - (q << k)
    half = np.where(k > 0, np.int64(1) << np.maximum(k - 1, 0), 0)
    up = (k > 0) & ((rem > half) | ((rem == half) & ((q & 1) == 1)))
    return q + up


def _to_24_bits(mag):
    """Round non-negative ``mag`` to 24 significant bits: ``(m, e)``, ``m * 2**e``."""
    shift = np.maximum(_bit_length(mag) - 24, 0)
    return _round_shift_even(mag, shift), shift


def requantize_ort(acc, mantissa, exponent, zero_point, lo, hi):
    """Requantize as onnxruntime does (see the module text), exactly, in integers.

    ``acc``: int32 accumulators (bias included). ``mantissa``, ``exponent``: the float32
    scale (:func:`float32_scale`), scalars or per element. Products that would leave the
    float32 normal range do not occur for scales the compiler accepts
    (``2**-40 <= scale < 2**16``).
    """
    acc = np.asarray(acc, dtype=np.int64)
    neg = acc < 0
    mag = np.abs(acc)
    m_a, e_a = _to_24_bits(mag)  # float32(acc) = m_a * 2**e_a
    m_p, e_p = _to_24_bits(m_a * np.asarray(mantissa, dtype=np.int64))  # the float32 product
    e = e_a + e_p + np.asarray(exponent, dtype=np.int64)
    # Round to an integer, half to even. With e >= 0 the value is already an integer; a
    # non-zero one of 2**30 or more only matters as "beyond the clamp", so the left shift
    # stops at 30 (m_p < 2**25: no int64 overflow).
    right = np.clip(-e, 0, 62)
    rounded = np.where(e >= 0, m_p << np.clip(e, 0, 30), _round_shift_even(m_p, right))
    value = np.where(neg, -rounded, rounded)
    zp = np.asarray(zero_point, dtype=np.int64)
    return np.clip(value, np.asarray(lo) - zp, np.asarray(hi) - zp) + zp


def requantize_tflite(acc, q, s, zero_point, lo, hi):
    """TFLite integer single rounding (see the module text)."""
    acc = np.asarray(acc, dtype=np.int64)
    shift = 31 - np.asarray(s, dtype=np.int64)
    value = (acc * np.asarray(q, dtype=np.int64) + (np.int64(1) << (shift - 1))) >> shift
    zp = np.asarray(zero_point, dtype=np.int64)
    return np.clip(value + zp, lo, hi)


def _wrap32(x):
    return ((np.asarray(x, dtype=np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def requantize_gemmlowp(acc, q, s, zero_point, lo, hi):
    """TFLite reference / TFLite Micro double rounding (see the module text)."""
    acc = np.asarray(acc, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    q = np.asarray(q, dtype=np.int64)
    left = np.maximum(s, 0)
    right = np.maximum(-s, 0)
    a = _wrap32(acc << left)
    ab = a * q
    nudged = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))  # C division: truncate
    high = np.where((a == INT32_MIN) & (q == INT32_MIN), INT32_MAX, high)
    mask = (np.int64(1) << right) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (high < 0)
    value = (high >> right) + (remainder > threshold)
    zp = np.asarray(zero_point, dtype=np.int64)
    return np.clip(value + zp, lo, hi)


def requantize(mode, acc, multiplier, shift, zero_point, lo, hi):
    """Dispatch on ``mode`` (``ort``, ``tflite``, ``gemmlowp``).

    ``multiplier``/``shift`` are the float32 scale's mantissa and exponent for ``ort`` and
    ``q``/``s`` for the other two (the NPU's requantization table holds either).
    """
    models = {"ort": requantize_ort, "tflite": requantize_tflite,
              "gemmlowp": requantize_gemmlowp}
    if mode not in models:
        raise ValueError(f"mode must be one of {sorted(models)}, not {mode!r}")
    return models[mode](acc, multiplier, shift, zero_point, lo, hi)
