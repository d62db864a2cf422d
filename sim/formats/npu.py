"""Beats of the NPU's ports: 32-bit command words in, 32-bit reply words out.

The words themselves are built and parsed by :mod:`npugen.sim.host.npu` (commands, program
loading, status); on the streams they are plain unsigned integers.
"""

__all__ = ["STREAMS", "command_beats", "reply_words"]

MASK32 = (1 << 32) - 1


def command_beats(p, words):
    """Return the ``i`` beats of command ``words`` (ints)."""
    out = []
    for w in words:
        if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= MASK32:
            raise ValueError(f"command words must be integers in 0..{MASK32}, not {w!r}")
        out.append(w)
    return out


def reply_words(p, beats):
    """Return the reply words (ints) of ``o`` beats."""
    return [int(b) for b in beats]


#: Beat builder (input) or parser (output) per stream port.
STREAMS = {"i": command_beats, "o": reply_words}
