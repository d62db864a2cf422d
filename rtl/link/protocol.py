"""The framed UART host protocol, version 1 (constants shared by the gateware and the host).

Every frame, in both directions::

    0xA5 | cmd | port | len_lo | len_hi | payload (0..n bytes) | check

``check`` makes the 8-bit sum of every byte from ``cmd`` to ``check`` zero. Requests:

=========  ====  ==================================================================
command    cmd   meaning
=========  ====  ==================================================================
WRITE      0x01  ``len`` beats (1..) for input stream ``port``; payload: each beat's
                 ``ceil(width / 8)`` bytes, least significant first. The link buffers
                 the frame and forwards the beats only if the check byte is right.
READ       0x02  up to ``len`` beats (1..) from output stream ``port``; no payload. The
                 link collects beats until it has ``len``, its buffer is full, or the
                 stream stays idle for ``idle_cycles``.
STATUS     0x03  ``port`` 0, ``len`` 0: flags and cycle counters.
RESET      0x04  ``port`` 0, ``len`` 0: reset the block and the counters.
=========  ====  ==================================================================

Replies use ``cmd | 0x80``: WRITE and RESET answer with ``len`` 0 once done; READ answers
with the number of beats in ``len`` and their bytes; STATUS answers with 13 bytes: flags
(bit 0: the block's ``error``; bit 1: a bad frame since the last STATUS), the free-running
cycle counter, the cycle of the first input beat and the cycle of the last output beat since
reset (each 32 bits, little-endian). A bad frame is ignored and answered with ``cmd`` 0xFF
and the error code in ``port``; the link then drops bytes until the line has been quiet for
``idle_cycles``, so the rest of a bad frame is never taken as a new one.
"""

__all__ = [
    "CMD_READ", "CMD_RESET", "CMD_STATUS", "CMD_WRITE", "ERRORS", "ERR_CHECK", "ERR_COMMAND",
    "ERR_LENGTH", "ERR_PORT", "ERR_TIMEOUT", "REPLY", "REPLY_ERROR", "STATUS_BYTES", "SYNC",
]

SYNC = 0xA5
CMD_WRITE, CMD_READ, CMD_STATUS, CMD_RESET = 0x01, 0x02, 0x03, 0x04
REPLY = 0x80
REPLY_ERROR = 0xFF
STATUS_BYTES = 13

ERR_CHECK, ERR_COMMAND, ERR_PORT, ERR_LENGTH, ERR_TIMEOUT = 1, 2, 3, 4, 5
ERRORS = {
    ERR_CHECK: "check byte mismatch",
    ERR_COMMAND: "unknown command",
    ERR_PORT: "no such port",
    ERR_LENGTH: "length out of range",
    ERR_TIMEOUT: "frame incomplete (line quiet mid-frame)",
}
