"""Frames of the UART host link (protocol in :mod:`npugen.rtl.link.protocol`), host side."""

import binascii

from npugen.rtl.link import protocol as P

__all__ = ["crc16", "frame"]


def crc16(data):
    """CRC-16/CCITT-FALSE of ``data`` (the protocol's check)."""
    return binascii.crc_hqx(bytes(data), 0xFFFF)


def frame(seq, cmd, port, length, payload=b""):
    """Encode one frame: sync, header (``seq`` first), payload and the CRC, high byte first."""
    if not 0 <= seq <= P.SEQ_MAX:
        raise ValueError(f"seq must be in 0..{P.SEQ_MAX}, not {seq!r}")
    body = bytes([seq, cmd, port, length & 0xFF, length >> 8]) + bytes(payload)
    return bytes([P.SYNC]) + body + crc16(body).to_bytes(2, "big")
