"""Frames of the UART host link (protocol in :mod:`npugen.rtl.link.protocol`), host side."""

from npugen.rtl.link import protocol as P

__all__ = ["frame"]


def frame(cmd, port, length, payload=b""):
    """Encode one frame: sync, header, payload and the check byte."""
    body = bytes([cmd, port, length & 0xFF, length >> 8]) + bytes(payload)
    return bytes([P.SYNC]) + body + bytes([(-sum(body)) & 0xFF])
