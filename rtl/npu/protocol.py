"""The NPU's host protocol: 32-bit command words in, 32-bit reply words out.

Every command is two words, a header and an argument::

    header: bits 0-3 command, bits 4-7 memory (WRITE/READ), bits 8-31 count (memory words)
    argument: the first word address (WRITE/READ) or the start address (START); 0 otherwise

- ``WRITE``: followed by ``count`` memory words, each as :func:`chunks` 32-bit words, least
  significant first. No reply.
- ``READ``: the reply is ``count`` memory words, each as :func:`chunks` words.
- ``START``: run from instruction ``argument``. No reply.
- ``STATUS``: the reply is :data:`STATUS_WORDS` words (:data:`STATUS_FIELDS`).
- ``ABORT``: stop a running program (state IDLE, error cleared; the units are cleared a
  cycle later, before any next command takes effect). No reply.

A command the NPU cannot carry out (unknown command or memory, a region outside its memory,
a WRITE/READ/START while a program runs, a start address outside the instruction memory)
sets the sticky ``host_error`` (cleared by the next successful START or ABORT) and is
otherwise ignored - except that a WRITE still consumes its data words and a READ still
replies with ``count`` memory words of zeros, so the host's framing never slips.
"""

import enum

from .isa import INSN_BITS, TABLE_ENTRY

__all__ = ["MEMORY_IDS", "STATUS_FIELDS", "STATUS_WORDS", "Command", "HostError", "Memory",
           "chunks", "word_bits"]


class Command(enum.IntEnum):
    """Host command codes (header bits 0-3)."""

    WRITE = 1
    READ = 2
    START = 3
    STATUS = 4
    ABORT = 5


class Memory(enum.IntEnum):
    """Memory ids (header bits 4-7)."""

    ACT = 0
    WGT = 1
    TAB = 2
    IMEM = 3


#: Memory names as the host side (program segments, the simulator) spells them.
MEMORY_IDS = {"act": Memory.ACT, "wgt": Memory.WGT, "tab": Memory.TAB, "imem": Memory.IMEM}


class HostError(enum.IntEnum):
    """Why the last refused host command was refused (sticky; 0 = none)."""

    NONE = 0
    COMMAND = 1
    MEMORY = 2
    RANGE = 3
    BUSY = 4


#: STATUS reply, word by word.
STATUS_FIELDS = (
    "state",        # bits 0-1 state (NpuState), 4-7 error (ErrorCode), 8-11 host_error,
                    # 16-23 ISA version
    "pc",           # the failing instruction's address after an error, else the current
    "cycles",       # cycles since START (wrapping)
    "retired",      # instructions completed since START
    "busy_systolic",  # cycles the systolic array's unit was busy
    "busy_pool",    # cycles the pooling and ADD units were busy
    "params_hash",  # params_hash() of this NPU
    "busy_sparse",  # cycles the sparse engine's unit was busy
    "busy_winograd",  # cycles the Winograd engine's unit was busy
)
STATUS_WORDS = len(STATUS_FIELDS)


def word_bits(memory, lanes):
    """Bits of one word of ``memory`` (a :class:`Memory`)."""
    return {Memory.ACT: 8 * lanes, Memory.WGT: 8 * lanes, Memory.TAB: TABLE_ENTRY.size,
            Memory.IMEM: INSN_BITS}[Memory(memory)]


def chunks(memory, lanes):
    """32-bit words that carry one word of ``memory``."""
    return -(-word_bits(memory, lanes) // 32)
