"""The ISA spec's host side: assembler, disassembler, program file, README table.

The program-file fuzzer is seeded and bounded (a few hundred mutants per run): every
malformed file ends in a ProgramError, never another exception.
"""

import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from npugen.rtl.npu.isa import INSN_BITS, ISA_VERSION, OPCODES, TABLE_ENTRY, Op, insn_layout
from npugen.rtl.npu.params import NpuParams, params_hash
from npugen.sim.formats.program import (
    MAX_INSNS,
    Program,
    ProgramError,
    assemble,
    disassemble,
    from_bytes,
    header_for,
    isa_markdown,
    table_words,
    tensor_of,
    tensor_words,
    to_bytes,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def random_fields(rng, spec):
    values = {}
    for f in spec.fields:
        lo, hi = f.range
        values[f.name] = int(rng.integers(lo, hi + 1))
    return values


@pytest.mark.parametrize("spec", OPCODES, ids=[s.op.name for s in OPCODES])
def test_assemble_round_trip(seed, spec):
    rng = np.random.default_rng(seed)
    for _ in range(50):
        values = random_fields(rng, spec)
        word = assemble(spec.op, **values)
        assert 0 <= word < 1 << INSN_BITS
        assert word & 0xF == int(spec.op) and (word >> 4) & 0xF == ISA_VERSION
        op, decoded = disassemble(word)
        assert op is spec.op
        assert decoded == {"version": ISA_VERSION, **values}


def test_fields_are_packed_in_spec_order():
    """Bit positions written out for CONV: mode at 8, src at 10, dst at 26, ..."""
    word = assemble(Op.CONV, engine=1, mode=2, src=0x1234, dst=0xABCD, wgt=0, tab=0, in_h=0,
                    in_w=0, cin=0, cout=0, out_h=0, out_w=0, kernel=0, stride=0, pad_t=0,
                    pad_l=0, zp_in=-1)
    assert (word >> 8) & 0x3 == 2
    assert (word >> 10) & 0xFFFF == 0x1234
    assert (word >> 26) & 0xFFFF == 0xABCD
    offset = 8 + sum(f.width for f in OPCODES[Op.CONV].fields[:-2])  # zp_in, then engine
    assert (word >> offset) & 0xFF == 0xFF and word >> (offset + 8) == 1
    assert insn_layout(Op.CONV).size == INSN_BITS


@pytest.mark.parametrize("fields,message", [
    ({"params_hash": 1 << 32}, r"HEADER.params_hash must be an integer in 0..4294967295"),
    ({"params_hash": -1}, r"HEADER.params_hash must be an integer in 0..4294967295"),
    ({"params_hash": 1.0}, r"not 1.0"),
    ({}, r"missing: params_hash"),
    ({"params_hash": 0, "src": 1}, r"unknown: src"),
])
def test_assemble_errors(fields, message):
    with pytest.raises(ValueError, match=message):
        assemble("header", **fields)


def test_assemble_unknown_op():
    with pytest.raises(ValueError, match="op must be one of HALT, HEADER"):
        assemble("jump")


def test_disassemble_unknown_opcode():
    with pytest.raises(ProgramError, match="opcode must be one of .* not 15"):
        disassemble(0x1F)


def test_signed_field_range():
    spec = OPCODES[Op.CONV]
    zp = next(f for f in spec.fields if f.name == "zp_in")
    assert zp.range == (-128, 127)
    good = random_fields(np.random.default_rng(0), spec)
    with pytest.raises(ValueError, match=r"CONV.zp_in must be an integer in -128..127, not 128"):
        assemble(Op.CONV, **{**good, "zp_in": 128})


def test_table_entry_packing():
    entry = {"bias": -5, "multiplier": (1 << 31) - 1, "shift": -31, "zero_point": -128,
             "lo": -128, "hi": 127}
    (word,) = table_words([entry])
    assert word & 0xFFFFFFFF == (-5) & 0xFFFFFFFF
    assert (word >> 32) & 0x7FFFFFFF == (1 << 31) - 1
    view = TABLE_ENTRY.from_bits(word)
    assert {k: getattr(view, k) for k in entry} == entry


def test_readme_isa_table_is_generated_from_the_spec():
    text = README.read_text()
    assert isa_markdown() in text, "README's ISA table is stale: paste isa_markdown()"


def sample_program(p):
    return Program(params_hash=params_hash(p),
                   insns=[header_for(p), assemble(Op.HALT)],
                   segments=[("act", 3, [1, 2, 3]), ("wgt", 0, [0xFFFFFFFFFFFFFFFF]),
                             ("tab", 1, table_words([{"bias": 1, "multiplier": 1 << 30,
                                                      "shift": 0, "zero_point": 0,
                                                      "lo": -128, "hi": 127}]))])


def test_program_file_round_trip():
    p = NpuParams()
    program = sample_program(p)
    blob = to_bytes(program, p.lanes)
    assert from_bytes(blob, p.lanes) == program


def _with_crc(body):
    return body + struct.pack("<I", zlib.crc32(body))


def test_program_file_limits_checked_before_allocating():
    p = NpuParams()
    header = b"NPUP" + struct.pack("<HHIII", ISA_VERSION, 0, 0, MAX_INSNS + 1, 0)
    with pytest.raises(ProgramError, match="instruction count"):
        from_bytes(_with_crc(header), p.lanes)
    header = b"NPUP" + struct.pack("<HHIII", ISA_VERSION, 0, 0, 1, 1) + bytes(32)
    segment = struct.pack("<B3xII", 1, 0, 0xFFFFFFFF)
    with pytest.raises(ProgramError, match="runs past the end"):
        from_bytes(_with_crc(header + segment), p.lanes)


def test_program_file_fuzz(seed):
    """Bit flips (with and without a recomputed CRC), truncation, extension: ProgramError."""
    p = NpuParams()
    blob = to_bytes(sample_program(p), p.lanes)
    rng = np.random.default_rng(seed)
    outcomes = {"error": 0, "parsed": 0}
    for i in range(400):
        data = bytearray(blob)
        kind = i % 4
        if kind == 0:
            bit = int(rng.integers(0, len(data) * 8))
            data[bit // 8] ^= 1 << (bit % 8)
        elif kind == 1:
            bit = int(rng.integers(0, (len(data) - 4) * 8))
            data[bit // 8] ^= 1 << (bit % 8)
            data = bytearray(_with_crc(bytes(data[:-4])))
        elif kind == 2:
            data = data[:int(rng.integers(0, len(data)))]
        else:
            data = bytearray(_with_crc(bytes(data[:-4]) + bytes(rng.integers(0, 256, 9))))
        try:
            parsed = from_bytes(bytes(data), p.lanes)
        except ProgramError:
            outcomes["error"] += 1
        else:
            outcomes["parsed"] += 1
            assert kind == 1  # only a CRC-consistent edit of a payload byte can parse
            assert isinstance(parsed, Program)
    print(f"seed {seed}: {outcomes}")
    assert outcomes["error"] >= 300


def test_isa_table_lists_every_opcode():
    table = isa_markdown()
    for spec in OPCODES:
        assert re.search(rf"\| {int(spec.op)} \| `{spec.op.name}` \|", table)


def test_tensor_of_reads_activation_words():
    """Hand-packed words (lane 0 lowest byte, lanes beyond C ignored), then round trips."""
    # 1 x 2 pixels, 3 channels, 2 lanes: words (pixel, group) = [c0 c1], [c2 pad]
    words = [0x02_FF, 0x7F_80, 0x00_01, 0x55_81]  # pad lanes hold junk: must be dropped
    got = tensor_of(words, (1, 2, 3), 2)
    assert got.tolist() == [[[-1, 2, -128], [1, 0, -127]]]
    rng = np.random.default_rng(3)
    for lanes in (1, 3, 4, 8):
        x = rng.integers(-128, 128, size=(3, 2, 5))
        assert np.array_equal(tensor_of(tensor_words(x, lanes), x.shape, lanes), x)
    with pytest.raises(ValueError, match="a 1x2x3 tensor is 4 words, not 3"):
        tensor_of(words[:3], (1, 2, 3), 2)
