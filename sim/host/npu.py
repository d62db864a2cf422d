"""Host side of the NPU's command port: command words, reply parsing, program loading.

Pure functions over 32-bit words (:mod:`npugen.rtl.npu.protocol`): the same words go to the
Amaranth simulation, the Verilator bench and, framed, through the UART link.
"""

from npugen.rtl.npu.isa import ErrorCode
from npugen.rtl.npu.protocol import (
    MEMORY_IDS,
    STATUS_FIELDS,
    STATUS_WORDS,
    Command,
    HostError,
    chunks,
)

from ..models.npu import NpuState

__all__ = ["abort", "load_program", "read", "read_reply_words", "start", "status",
           "status_of", "unpack", "write"]

MASK32 = (1 << 32) - 1


def _command(cmd, memory=0, count=0, arg=0):
    if not 0 <= count < 1 << 24:
        raise ValueError(f"count must be in 0..{(1 << 24) - 1}, not {count}")
    return [int(cmd) | (int(memory) << 4) | (count << 8), arg & MASK32]


def _memory(memory):
    if memory not in MEMORY_IDS:
        raise ValueError(f"memory must be one of {', '.join(MEMORY_IDS)}, not {memory!r}")
    return MEMORY_IDS[memory]


def write(memory, address, words, lanes):
    """Command words that write ``words`` (packed ints) at ``address`` of ``memory``."""
    mid = _memory(memory)
    n = chunks(mid, lanes)
    out = _command(Command.WRITE, mid, len(words), address)
    for word in words:
        out += [(int(word) >> (32 * k)) & MASK32 for k in range(n)]
    return out


def read(memory, address, count):
    """Command words that read ``count`` words of ``memory`` from ``address``."""
    return _command(Command.READ, _memory(memory), count, address)


def read_reply_words(memory, count, lanes):
    """Reply words a READ of ``count`` words of ``memory`` produces."""
    return count * chunks(_memory(memory), lanes)


def unpack(memory, replies, lanes):
    """Memory words (ints) from a READ's reply words."""
    n = chunks(_memory(memory), lanes)
    if len(replies) % n:
        raise ValueError(f"{len(replies)} reply words are not a whole number of words")
    return [sum(int(replies[i + k]) << (32 * k) for k in range(n))
            for i in range(0, len(replies), n)]


def start(address=0):
    """Command words that start the program at instruction ``address``."""
    return _command(Command.START, arg=address)


def status():
    """Command words that ask for the status (:data:`STATUS_WORDS` reply words)."""
    return _command(Command.STATUS)


def abort():
    """Command words that stop a running program."""
    return _command(Command.ABORT)


def status_of(replies):
    """Parse a STATUS reply into a dict (state and codes as enums)."""
    if len(replies) != STATUS_WORDS:
        raise ValueError(f"a status reply is {STATUS_WORDS} words, not {len(replies)}")
    values = dict(zip(STATUS_FIELDS, (int(r) for r in replies), strict=True))
    word = values.pop("state")
    values.pop("reserved")
    values.update(state=NpuState(word & 3), error=ErrorCode((word >> 4) & 0xF),
                  host_error=HostError((word >> 8) & 0xF), version=(word >> 16) & 0xFF)
    values["pc"] &= 0xFFFF
    return values


def load_program(program, lanes):
    """Command words that load ``program``'s segments and its instructions (from word 0)."""
    out = []
    for memory, address, words in program.segments:
        out += write(memory, address, words, lanes)
    return out + write("imem", 0, program.insns, lanes)
