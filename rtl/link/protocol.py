"""The framed UART host protocol, version 2 (constants shared by the gateware and the host).

Every frame, in both directions::

    0xA5 | seq | cmd | port | len_lo | len_hi | payload (0..n bytes) | crc_hi | crc_lo

``crc`` is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no
final XOR; Python: ``binascii.crc_hqx(data, 0xFFFF)``) of every byte from ``seq`` to the end
of the payload, sent most significant byte first. ``seq`` is 0..127, chosen by the host; the
reply to a request carries the request's ``seq``, so a host can tell a late reply from the
one it waits for. A ``seq`` byte of 0xA5 is read as a new sync byte, so a stray 0xA5 just
before a frame does not cost the frame.

=========  ====  ==================================================================
command    cmd   meaning
=========  ====  ==================================================================
WRITE      0x01  ``len`` beats (1..) for input stream ``port``; payload: each beat's
                 ``ceil(width / 8)`` bytes, least significant first. The link buffers
                 the frame and forwards the beats only once the CRC is right. A beat
                 the block does not take within ``stall_cycles`` ends the WRITE with
                 ERR_STALL (``len`` of that reply: the beats delivered).
READ       0x02  up to ``len`` beats (1..) from output stream ``port``; no payload. The
                 link collects beats until it has ``len``, its buffer is full, or the
                 stream stays idle for ``idle_cycles``.
STATUS     0x03  ``port`` 0, ``len`` 0: flags and cycle counters.
RESET      0x04  ``port`` 0, ``len`` 0: reset the block and the counters. Taken even
                 while a WRITE or READ is in progress (that request is abandoned).
INFO       0x05  ``port`` 0, ``len`` 0: the protocol version, the buffer size and the
                 width of every stream port.
=========  ====  ==================================================================

Replies use ``cmd | 0x80``: WRITE and RESET answer with ``len`` 0 once done; READ answers
with the number of beats in ``len`` and their bytes; STATUS answers with 13 bytes: flags
(bit 0: the block's ``error``; bit 1: a bad frame since the last STATUS; bit 2: a WRITE
stalled since the last STATUS; bit 3: the link was built without cycle counters, which then
read 0), the free-running cycle counter, the cycle of the first input beat and the cycle of
the last output beat since reset (each 32 bits, little-endian); INFO
answers with ``VERSION``, the number of input and output ports, the buffer size (16 bits),
then each input port's and each output port's payload width (16 bits each), little-endian.

A bad frame is answered with ``cmd`` 0xFF and the error code in ``port``. After an error in
the middle of a frame (header, length or CRC), the link drops bytes until the line has been
quiet for ``idle_cycles`` and only then answers, so the rest of a bad frame is never taken as
a new one. A frame that arrives while the link still works on the previous request is
answered with ERR_BUSY (its payload is dropped), unless it is a RESET.
"""

__all__ = [
    "CMD_INFO", "CMD_READ", "CMD_RESET", "CMD_STATUS", "CMD_WRITE", "ERRORS", "ERR_BUSY",
    "ERR_COMMAND", "ERR_CRC", "ERR_LENGTH", "ERR_PORT", "ERR_STALL", "ERR_TIMEOUT",
    "HEADER_BYTES", "REPLY", "REPLY_ERROR", "SEQ_MAX", "STATUS_BYTES", "SYNC", "VERSION",
]

VERSION = 2
SYNC = 0xA5
#: Largest sequence number (a seq byte above it is a bad header; 0xA5 is a sync byte).
SEQ_MAX = 0x7F
CMD_WRITE, CMD_READ, CMD_STATUS, CMD_RESET, CMD_INFO = 0x01, 0x02, 0x03, 0x04, 0x05
REPLY = 0x80
REPLY_ERROR = 0xFF
#: seq, cmd, port, len_lo, len_hi.
HEADER_BYTES = 5
STATUS_BYTES = 13

ERR_CRC, ERR_COMMAND, ERR_PORT, ERR_LENGTH, ERR_TIMEOUT, ERR_STALL, ERR_BUSY = range(1, 8)
ERRORS = {
    ERR_CRC: "CRC mismatch",
    ERR_COMMAND: "unknown command or sequence number",
    ERR_PORT: "no such port",
    ERR_LENGTH: "length out of range",
    ERR_TIMEOUT: "frame incomplete (line quiet mid-frame)",
    ERR_STALL: "the block stopped taking beats (WRITE abandoned)",
    ERR_BUSY: "the link was still busy with the previous request",
}
