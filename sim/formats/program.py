"""NPU programs on the host: assembler, disassembler, the program file and the ISA table.

Everything here derives from the ISA spec :mod:`npugen.rtl.npu.isa`; instructions are
packed with the same :func:`~npugen.rtl.npu.isa.insn_layout` the RTL decoder views them
through (``Layout.const(...).as_bits()``).

Program file, version 1 (integers little-endian)::

    offset  size        field
    0       4           magic b"NPUP"
    4       2           ISA version
    6       2           reserved, 0
    8       4           params hash of the NPU the program is for (params_hash)
    12      4           number of instructions n (1..MAX_INSNS)
    16      4           number of data segments s (0..MAX_SEGMENTS)
    20      32*n        instructions, INSN_BITS / 8 bytes each
    ...     per segment: memory (1 byte: 0 act, 1 wgt, 2 tab), reserved (3 bytes, 0),
                        word address (4), word count (4), then count * word_bytes bytes
    end-4   4           CRC-32 (zlib) of every byte before it

:func:`from_bytes` checks each count against the limits and the bytes present before it
allocates, so a malformed file is a :class:`ProgramError` in time proportional to its size.
"""

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from npugen.rtl.npu.isa import (
    INSN_BITS,
    ISA_VERSION,
    OPCODES,
    TABLE_ENTRY,
    Op,
    cfg_words,
    decode,
    insn_layout,
    spec_of,
)
from npugen.rtl.npu.params import NpuParams, params_hash

__all__ = [
    "MAGIC", "MAX_INSNS", "MAX_SEGMENTS", "MEMORIES", "Program", "ProgramError", "assemble",
    "cfg_beat_words", "disassemble", "from_bytes", "header_for", "isa_markdown", "table_words",
    "tensor_words", "to_bytes", "weight_words",
]

MAGIC = b"NPUP"
MAX_INSNS = 4096
MAX_SEGMENTS = 4096
INSN_BYTES = INSN_BITS // 8
#: Segment memory ids, in file order.
MEMORIES = ("act", "wgt", "tab")
TAB_BYTES = (TABLE_ENTRY.size + 7) // 8


class ProgramError(ValueError):
    """A malformed program, or a program for another ISA version or another NPU."""


def assemble(op, **fields):
    """Encode one instruction as an int of :data:`INSN_BITS` bits.

    ``op`` is an :class:`~npugen.rtl.npu.isa.Op` or its name; every field of the opcode
    must be given (and nothing else), each within its width. ``version`` defaults to
    :data:`ISA_VERSION` (a test may give another).
    """
    if isinstance(op, str):
        if op.upper() not in Op.__members__:
            raise ValueError(f"op must be one of {', '.join(Op.__members__)}, not {op!r}")
        op = Op[op.upper()]
    spec = spec_of(op)
    version = fields.pop("version", ISA_VERSION)
    names = [f.name for f in spec.fields]
    unknown = sorted(set(fields) - set(names))
    missing = [n for n in names if n not in fields]
    if unknown or missing:
        raise ValueError(f"{spec.op.name} takes fields {', '.join(names) or 'none'}; "
                         + (f"unknown: {', '.join(unknown)}" if unknown else "")
                         + ("; " if unknown and missing else "")
                         + (f"missing: {', '.join(missing)}" if missing else ""))
    for f in spec.fields:
        value = fields[f.name]
        lo, hi = f.range
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                or not lo <= value <= hi:
            raise ValueError(f"{spec.op.name}.{f.name} must be an integer in {lo}..{hi}, "
                             f"not {value!r}")
    values = {"opcode": int(op), "version": version, **{k: int(v) for k, v in fields.items()}}
    return insn_layout(op).const(values).as_bits()


def disassemble(word):
    """Decode an instruction word: ``(Op, {field: value})`` (fields as signed/unsigned ints).

    Raises :class:`ProgramError` for an unknown opcode.
    """
    try:
        return decode(word)
    except ValueError as error:
        raise ProgramError(str(error)) from None


def table_words(entries):
    """Pack requantization table entries (dicts of :data:`TABLE_ENTRY` fields) to ints."""
    return [TABLE_ENTRY.const(dict(e)).as_bits() for e in entries]


def _pack(values):
    return sum((int(v) & 0xFF) << (8 * i) for i, v in enumerate(values))


def tensor_words(x, lanes):
    """Activation words of an ``(h, w, c)`` int8 tensor (HWC, channel groups of ``lanes``)."""
    x = np.asarray(x, dtype=np.int64)
    h, w, c = x.shape
    g = -(-c // lanes)
    padded = np.zeros((h, w, g * lanes), dtype=np.int64)
    padded[:, :, :c] = x
    return [_pack(row) for row in padded.reshape(h * w * g, lanes)]


def tensor_of(words, shape, lanes):
    """Return the ``(h, w, c)`` int8 tensor (int64 values) of its activation words.

    The inverse of :func:`tensor_words` (lanes beyond ``c`` are dropped).
    """
    h, w, c = shape
    g = -(-c // lanes)
    if len(words) != h * w * g:
        raise ValueError(f"a {h}x{w}x{c} tensor is {h * w * g} words, not {len(words)}")
    values = np.array([[(int(word) >> (8 * i)) & 0xFF for i in range(lanes)]
                       for word in words], dtype=np.int64)
    values = np.where(values >= 128, values - 256, values)
    return values.reshape(h, w, g * lanes)[:, :, :c]


def weight_words(w, lanes):
    """Weight words of ``(cout, cin, k, k)`` int8 weights in the ISA's tile order."""
    w = np.asarray(w, dtype=np.int64)
    cout, cin, k, _ = w.shape
    g_in, g_out = -(-cin // lanes), -(-cout // lanes)
    padded = np.zeros((g_out * lanes, g_in * lanes, k, k), dtype=np.int64)
    padded[:cout, :cin] = w
    # (j, l, g, r, ky, kx) -> (j, ky, kx, g, r, l)
    tiles = padded.reshape(g_out, lanes, g_in, lanes, k, k).transpose(0, 4, 5, 2, 3, 1)
    return [_pack(row) for row in tiles.reshape(-1, lanes)]


def cfg_beat_words(beats, lanes):
    """Weight words of sparse-engine configuration beats, as ``SPFC`` reads them.

    ``beats``: dicts ``{op, pe, addr, data}`` (:func:`npugen.sim.formats.sparse.
    load_program`). Beat ``k`` fills words ``k * n .. k * n + n - 1``, ``n =
    cfg_words(lanes)``, with ``op | pe << 2 | addr << 8 | data << 24`` (word 0 lowest).
    """
    n, bits = cfg_words(lanes), 8 * lanes
    words = []
    for b in beats:
        fields = {k: int(b[k]) for k in ("op", "pe", "addr", "data")}
        for name, width in (("op", 2), ("pe", 6), ("addr", 16), ("data", 16)):
            if not 0 <= fields[name] < 1 << width:
                raise ValueError(f"beat {name} must be in 0..{(1 << width) - 1}, not "
                                 f"{fields[name]}")
        value = fields["op"] | fields["pe"] << 2 | fields["addr"] << 8 | fields["data"] << 24
        words += [(value >> (bits * i)) & ((1 << bits) - 1) for i in range(n)]
    return words


@dataclass
class Program:
    """Instructions plus the data they need, for the NPU whose params hash it names.

    ``segments``: ``(memory, word_address, words)`` with ``memory`` in :data:`MEMORIES` and
    ``words`` a list of ints (act/wgt words: ``lanes`` bytes, lane 0 lowest; tab: packed
    :data:`TABLE_ENTRY`).
    """

    params_hash: int
    insns: list
    segments: list = field(default_factory=list)
    version: int = ISA_VERSION

    def check_for(self, p):
        """Raise :class:`ProgramError` unless this program is for ISA version and NPU ``p``."""
        if self.version != ISA_VERSION:
            raise ProgramError(f"program is for ISA version {self.version}; this npugen "
                               f"speaks version {ISA_VERSION}")
        if self.params_hash != params_hash(p):
            raise ProgramError(f"program was compiled for an NPU with params hash "
                               f"{self.params_hash:08x}; this one is {params_hash(p):08x}")
        if len(self.insns) > p.imem_words:
            raise ProgramError(f"program has {len(self.insns)} instructions; the NPU's "
                               f"instruction memory holds {p.imem_words}")

    def load_into(self, model):
        """Write the program into ``model`` (an ``NpuModel``) after :meth:`check_for`.

        Data segments first, then the instructions from instruction word 0.
        """
        self.check_for(model.p)
        for memory, address, words in self.segments:
            try:
                model.write(memory, address, words)
            except ValueError as error:
                raise ProgramError(f"segment: {error}") from None
        model.write("imem", 0, self.insns)


def _word_bytes(memory, lanes):
    return TAB_BYTES if memory == "tab" else lanes


def to_bytes(program, lanes):
    """Serialise ``program`` (act/wgt words of ``lanes`` bytes)."""
    out = bytearray(MAGIC)
    out += struct.pack("<HHIII", program.version, 0, program.params_hash, len(program.insns),
                       len(program.segments))
    for word in program.insns:
        out += int(word).to_bytes(INSN_BYTES, "little")
    for memory, address, words in program.segments:
        size = _word_bytes(memory, lanes)
        out += struct.pack("<B3xII", MEMORIES.index(memory), address, len(words))
        for word in words:
            out += int(word).to_bytes(size, "little")
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


def from_bytes(blob, lanes):
    """Parse a program file (see the module text); :class:`ProgramError` if malformed."""
    blob = bytes(blob)
    if len(blob) < 24 or blob[:4] != MAGIC:
        raise ProgramError("not an npugen program (bad magic or too short)")
    if zlib.crc32(blob[:-4]) != struct.unpack_from("<I", blob, len(blob) - 4)[0]:
        raise ProgramError("program CRC-32 mismatch (file corrupted)")
    version, reserved, phash, n, s = struct.unpack_from("<HHIII", blob, 4)
    if reserved:
        raise ProgramError("reserved header field is not 0")
    if not 1 <= n <= MAX_INSNS or not 0 <= s <= MAX_SEGMENTS:
        raise ProgramError(f"instruction count {n} or segment count {s} out of range "
                           f"(1..{MAX_INSNS}, 0..{MAX_SEGMENTS})")
    body = len(blob) - 4
    pos = 20
    if pos + n * INSN_BYTES > body:
        raise ProgramError(f"{n} instructions do not fit in {len(blob)} bytes")
    insns = [int.from_bytes(blob[pos + i * INSN_BYTES:pos + (i + 1) * INSN_BYTES], "little")
             for i in range(n)]
    pos += n * INSN_BYTES
    segments = []
    for _ in range(s):
        if pos + 12 > body:
            raise ProgramError("segment header runs past the end of the file")
        memory, address, count = struct.unpack_from("<B3xII", blob, pos)
        if memory >= len(MEMORIES):
            raise ProgramError(f"segment memory id {memory} unknown (0..{len(MEMORIES) - 1})")
        size = _word_bytes(MEMORIES[memory], lanes)
        pos += 12
        if pos + count * size > body:
            raise ProgramError(f"segment of {count} words runs past the end of the file")
        words = [int.from_bytes(blob[pos + i * size:pos + (i + 1) * size], "little")
                 for i in range(count)]
        segments.append((MEMORIES[memory], address, words))
        pos += count * size
    if pos != body:
        raise ProgramError(f"{body - pos} bytes after the last segment")
    return Program(params_hash=phash, insns=insns, segments=segments, version=version)


def isa_markdown():
    """Return the README's ISA table, generated from the spec."""
    lines = [(f"ISA version {ISA_VERSION}; {INSN_BITS}-bit instructions: opcode bits 0-3, "
              "version bits 4-7, then the fields from bit 8 in this order."), "",
             "| opcode | name | engine | fields (bits) | meaning |",
             "|---:|---|---|---|---|"]
    for spec in OPCODES:
        fields = ", ".join(f"`{f.name}`{'s' if f.signed else ''}{f.width}" for f in spec.fields)
        lines.append(f"| {int(spec.op)} | `{spec.op.name}` | {spec.engine or '-'} | "
                     f"{fields or '-'} | {spec.help} |")
    return "\n".join(lines)


def header_for(p):
    """Return the ``HEADER`` instruction a program for NPU ``p`` starts with."""
    if not isinstance(p, NpuParams):
        raise TypeError(f"p must be NpuParams, not {type(p).__name__}")
    return assemble(Op.HEADER, params_hash=params_hash(p))
