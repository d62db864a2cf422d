"""The NPU's instruction set: the one spec behind the decoder, assembler, simulator and docs.

Every instruction is :data:`INSN_BITS` bits. Bits ``[0:4]`` hold the opcode, bits ``[4:8]``
the ISA version; the opcode's fields follow from bit 8 in the order :data:`OPCODES` lists
them (least significant first), and the unused high bits are zero. The RTL decoder views
an instruction word through :func:`insn_layout`, the host assembler packs with the same
layout, the instruction-level simulator reads the fields by name, and the README's ISA
table is generated from :data:`OPCODES` (a test keeps it in step).

The design is in order: one macro-instruction (a whole layer) at a time; the engines,
the im2col address generator and the requantization pipeline overlap inside an
instruction, not across instructions. Data layouts (word addresses, see
:mod:`.params`):

- activation tensor ``H x W x C`` at word ``a``: pixel ``(y, x)``, channel group ``g``
  (channels ``g * lanes .. g * lanes + lanes - 1``, lane ``c % lanes``) at word
  ``a + (y * W + x) * G + g`` with ``G = ceil(C / lanes)``; lanes beyond ``C`` are
  written as 0 and never read as data.
- convolution weights ``Cout x Cin x K x K`` at word ``w``, in the order the systolic array
  loads them: one weight tile (``lanes`` words) per output-channel group ``j``, kernel
  position ``(ky, kx)`` and input-channel group ``g``; word
  ``w + (((j * K + ky) * K + kx) * G_in + g) * lanes + r`` holds in lane ``l`` the weight of
  output channel ``j * lanes + l`` for input channel ``g * lanes + r`` (zeros beyond
  ``Cout`` and ``Cin``); ``G_out * K * K * G_in * lanes`` words in all.
- requantization table: entry ``t + co`` for output channel ``co`` (:data:`TABLE_ENTRY`).

Arithmetic: products int8 x int8, sums and the bias add wrap modulo 2**32 (``ADD`` mode 1:
an exact 34-bit sum, which equals XNNPACK's int32 one for every constant set XNNPACK
derives). ``CONV`` fills
the padding with the input zero point ``zp_in`` (the compiler folds ``-zp_in * sum(w)``
into the bias, so the convolution is exact); ``MAXPOOL`` ignores its padding. ``ADD``
mode 0 works on float32 bit patterns held in its instruction (onnxruntime's ``QLinearAdd``),
mode 1 on integer multipliers, a bias and a shift (XNNPACK's int8 add, LiteRT's default),
modes 2 and 3 on three TFLite multipliers and shifts (TFLite's reference add, rounded twice
or once); :mod:`npugen.rtl.npu.qladd`.
"""

import enum
from dataclasses import dataclass

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

__all__ = [
    "CFG_BITS", "FIELD_BASE", "INSN_BITS", "ISA_VERSION", "OPCODES", "TABLE_ENTRY",
    "WINDOW_BASE_BITS",
    "ErrorCode", "Field", "Op", "OpSpec", "cfg_words", "decode", "insn_layout", "spec_of",
]

#: Bump on any change of an encoding, a field or a semantic rule.
ISA_VERSION = 6

#: Width of one instruction word.
INSN_BITS = 256

#: First bit of the opcode-specific fields (opcode: bits 0-3, version: bits 4-7).
FIELD_BASE = 8

#: Bits of one sparse-engine configuration beat as ``SPFC`` finds it in the weight
#: scratchpad (the engine's ``CFG_LAYOUT``: op bits 0-1, pe 2-7, addr 8-23, data 24-39).
CFG_BITS = 40


def cfg_words(lanes):
    """Weight words per configuration beat: ``ceil(CFG_BITS / (8 * lanes))``."""
    return -(-CFG_BITS // (8 * lanes))


class Op(enum.IntEnum):
    """Opcodes. An all-zero instruction word is ``HALT`` (with the wrong version)."""

    HALT = 0
    HEADER = 1
    CONV = 2
    MAXPOOL = 3
    AVGPOOL = 4
    ADD = 5
    SPFC = 6


class ErrorCode(enum.IntEnum):
    """Why the NPU stopped (sticky until the next start or reset); 0 = no error."""

    NONE = 0
    #: The opcode is not one of :class:`Op`.
    OPCODE = 1
    #: The instruction's version field is not :data:`ISA_VERSION`.
    VERSION = 2
    #: ``HEADER``'s ``params_hash`` is not this NPU's.
    PARAMS = 3
    #: The instruction needs an engine this build does not have (a CONV with ``engine`` 1:
    #: the Winograd engine; or, with
    #: ``requant_ort_only``, a rounding mode its requantizers lack: 1 or 2).
    ENGINE = 4
    #: A size is zero, a kernel does not fit its padding, an output window reads nothing,
    #: a rounding mode is unknown, a CONV on the systolic array (with ``pool_on_array``
    #: also a MAXPOOL) has more output pixels than ``acc_words``, or a CONV on the
    #: Winograd engine (any output size) has a kernel
    #: other than 3, a stride other than 1, or more channels than the engine holds.
    SHAPE = 5
    #: A region runs past the end of its memory (or across the activation banks).
    ADDRESS = 6
    #: Input and output in the same activation bank.
    BANK = 7
    #: The program counter ran past the instruction memory without a ``HALT``.
    PC = 8
    #: An ``ADD``'s constants outside the range its unit is exact for: mode 0, the float32
    #: ``|rac|`` and ``|rbc|`` in ``[2**-64, 2**24)``, ``fixed`` zero or
    #: ``2**-100 <= |fixed| < 2**64``; mode 1, the integers ``|rac|, |rbc| <= 2**21``;
    #: modes 2 and 3, ``rac``, ``rbc``, ``fixed`` in ``[2**30, 2**31)``; every mode,
    #: ``lo <= hi``.
    CONST = 9
    #: The sparse engine refused its load (a configuration beat out of range) or its run (a
    #: column's pointers out of order, an entry past the matrix's rows), or the matrix it
    #: holds is not ``cout x cin``; an ``SPFC`` that stops so writes no activation.
    SPARSE = 10


@dataclass(frozen=True)
class Field:
    """One instruction field: name, width in bits, signedness, meaning."""

    name: str
    width: int
    signed: bool = False
    help: str = ""

    @property
    def shape(self):
        """The field's Amaranth shape."""
        return signed(self.width) if self.signed else unsigned(self.width)

    @property
    def range(self):
        """Inclusive ``(lo, hi)`` of the values the field holds."""
        if self.signed:
            return -(1 << (self.width - 1)), (1 << (self.width - 1)) - 1
        return 0, (1 << self.width) - 1


@dataclass(frozen=True)
class OpSpec:
    """One opcode: its fields (after opcode and version), the engine it needs, its meaning."""

    op: Op
    fields: tuple
    engine: str | None
    help: str

    def built_in(self, p):
        """Whether the NPU ``p`` has this opcode's engine (a parameter of None or 0: left out)."""
        if self.engine is None:
            return True
        value = getattr(p, self.engine)
        return value is not None and value != 0


_MODE = Field("mode", 2, help="rounding: 0 ort, 1 tflite, 2 gemmlowp (Rounding)")
_SRC = Field("src", 16, help="input tensor, activation word address")
_DST = Field("dst", 16, help="output tensor, activation word address (the other bank)")
_TAB = Field("tab", 12, help="first requantization table entry (one per output channel)")
_IN_H = Field("in_h", 8, help="input height")
_IN_W = Field("in_w", 8, help="input width")
_OUT_H = Field("out_h", 8, help="output height")
_OUT_W = Field("out_w", 8, help="output width")
_KERNEL = Field("kernel", 4, help="window K (K x K)")
_STRIDE = Field("stride", 4, help="window stride (both axes)")
_PAD_T = Field("pad_t", 4, help="padding rows above the input (< kernel)")
_PAD_L = Field("pad_l", 4, help="padding columns left of the input (< kernel)")

#: Bits of a window unit's row or column base ``o * stride`` (``o`` < ``out``) in a CONV or
#: MAXPOOL that passes the checker: its SHAPE rule keeps ``(out - 1) * stride`` below
#: ``in + pad``, at most ``255 + 15``. The input position ``base + k - pad`` (``k`` <
#: ``kernel``) then takes one bit more, signed.
WINDOW_BASE_BITS = ((1 << _IN_H.width) - 1 + (1 << _PAD_T.width) - 1).bit_length()

#: The instruction set, in opcode order.
OPCODES = (
    OpSpec(Op.HALT, (), None, "stop; status becomes done"),
    OpSpec(Op.HEADER, (Field("params_hash", 32, help="params_hash() of the NPU the program "
                                                     "was compiled for"),),
           None, "check the program was compiled for this NPU (error PARAMS if not)"),
    OpSpec(Op.CONV, (_MODE, _SRC, _DST, Field("wgt", 16, help="weights, weight word address"),
                     _TAB, _IN_H, _IN_W, Field("cin", 10, help="input channels"),
                     Field("cout", 10, help="output channels"), _OUT_H, _OUT_W, _KERNEL,
                     _STRIDE, _PAD_T, _PAD_L,
                     Field("zp_in", 8, signed=True, help="input zero point, fills padding"),
                     Field("engine", 1, help="0 the systolic array; 1 the Winograd engine "
                                             "(kernel 3, stride 1, cin <= winograd.c_max, "
                                             "cout <= winograd.k_max)")),
           "systolic", "convolution or matrix product on the systolic array (im2col on the "
           "fly) or, 3x3 stride 1, on the Winograd engine; acc = bias + sum(x * w) (int32, "
           "wrapping), then requantization per channel"),
    OpSpec(Op.MAXPOOL, (_SRC, _DST, _IN_H, _IN_W, Field("channels", 10, help="channels"),
                        _OUT_H, _OUT_W, _KERNEL, _STRIDE, _PAD_T, _PAD_L),
           None, "max over each K x K window (padding ignored); no requantization"),
    OpSpec(Op.AVGPOOL, (_MODE, _SRC, _DST, _TAB, _IN_H, _IN_W,
                        Field("channels", 10, help="channels")),
           "avgpool", "global average pool: acc = bias + sum over H x W of x (int32), then "
           "requantization per channel; output 1 x 1 x C"),
    OpSpec(Op.ADD, (Field("mode", 2, help="kernel: 0 onnxruntime's QLinearAdd (AVX2), 1 "
                                          "XNNPACK's int8 add (LiteRT), 2 TFLite's reference "
                                          "add (gemmlowp double rounding: TFLite Micro), 3 "
                                          "the same with single rounding"),
                    Field("src", 16, help="input tensor a, activation word address"),
                    Field("src_b", 16, help="input tensor b, in a's bank"), _DST,
                    Field("pixels", 16, help="pixels (H x W) of a, b and the output"),
                    Field("channels", 10, help="channels"),
                    Field("rac", 32, help="mode 0: float32 bits of scale_a / scale_out; "
                                          "mode 1: the int multiplier of a; modes 2, 3: "
                                          "q of a in [2**30, 2**31)"),
                    Field("rbc", 32, help="mode 0: float32 bits of scale_b / scale_out; "
                                          "mode 1: the int multiplier of b; modes 2, 3: "
                                          "q of b"),
                    Field("fixed", 32, help="mode 0: float32 bits of the zero-point term; "
                                            "mode 1: the int32 bias; modes 2, 3: q of the "
                                            "sum"),
                    Field("shift", 5, help="mode 1: right shift; modes 2, 3: a's right shift"),
                    Field("zp_out", 8, signed=True, help="modes 1-3: output zero point"),
                    Field("shift_b", 5, help="modes 2, 3: b's right shift"),
                    Field("shift_out", 5, help="modes 2, 3: the sum's right shift"),
                    Field("zp_a", 8, signed=True, help="modes 2, 3: a's zero point"),
                    Field("zp_b", 8, signed=True, help="modes 2, 3: b's zero point"),
                    Field("lo", 8, signed=True, help="every mode: output clamp, low end "
                                                     "(a fused activation)"),
                    Field("hi", 8, signed=True, help="every mode: output clamp, high end")),
           "add_units", "element-wise add, clamped to [lo, hi]. Mode 0 as onnxruntime's AVX2 "
           "QLinearAdd kernel: out = int8(fma(a, rac, fma(b, rbc, fixed))), float32 rounding, "
           "exact in integers; mode 1 as XNNPACK: out = sat8(((fixed + a * rac + b * rbc) >> "
           "shift) + zp_out); modes 2, 3 as TFLite's reference kernel: out = sat8(M(M((a - "
           "zp_a) << 20, rac, shift) + M((b - zp_b) << 20, rbc, shift_b), fixed, shift_out) + "
           "zp_out), M(x, q, e) = x * q / 2**(31 + e) rounded twice (2: the high multiply "
           "half up, then half away from zero) or once (3: half up)"),
    OpSpec(Op.SPFC, (_MODE, Field("src", 16, help="input vector (1 x 1 x cin), activation "
                                                  "word address"),
                     _DST, Field("wgt", 16, help="the matrix's configuration beats, weight "
                                                 "word address (cfg_words(lanes) words each)"),
                     Field("beats", 16, help="configuration beats (>= 1)"), _TAB,
                     Field("cin", 10, help="input channels = the matrix's columns"),
                     Field("cout", 10, help="output channels = the matrix's rows"),
                     Field("zp_in", 8, signed=True, help="input zero point, subtracted")),
           "sparse", "fully connected layer on the sparse engine: load the pruned, "
           "weight-shared matrix W (skipped when the engine holds this wgt/beats load and "
           "the weight scratchpad was not written since), then acc = bias + sum(W * (x - "
           "zp_in)) (int32, wrapping) over the non-zero x - zp_in only, then requantization "
           "per channel"),
)

_BY_OP = {spec.op: spec for spec in OPCODES}

#: One requantization table entry (the table memory's word).
TABLE_ENTRY = data.StructLayout({
    "bias": signed(32),
    "multiplier": unsigned(31),  # ort: the scale's 24-bit mantissa; tflite/gemmlowp: q
    "shift": signed(8),          # ort: the scale's exponent; tflite/gemmlowp: s
    "zero_point": signed(8),
    "lo": signed(8),
    "hi": signed(8),
})


def spec_of(op):
    """Return the :class:`OpSpec` of ``op`` (an :class:`Op` or its value)."""
    try:
        return _BY_OP[Op(op)]
    except ValueError:
        raise ValueError(f"op must be one of {', '.join(o.name for o in Op)}, "
                         f"not {op!r}") from None


def insn_layout(op):
    """Return the layout of ``op``'s instruction, :data:`INSN_BITS` wide.

    A :class:`~amaranth.lib.data.StructLayout`: opcode, version, the fields, then a zero
    ``reserved`` field up to :data:`INSN_BITS`.
    """
    spec = spec_of(op)
    fields = {"opcode": unsigned(4), "version": unsigned(4)}
    fields.update({f.name: f.shape for f in spec.fields})
    used = sum(f.width for f in spec.fields) + FIELD_BASE
    if used > INSN_BITS:  # pragma: no cover - a spec edit that does not fit
        raise ValueError(f"{spec.op.name} needs {used} bits, more than INSN_BITS={INSN_BITS}")
    if used < INSN_BITS:
        fields["reserved"] = unsigned(INSN_BITS - used)
    return data.StructLayout(fields)


def decode(word):
    """Split an instruction word into ``(Op, {"version": v, field: value, ...})``.

    Field values are ints (signed fields sign-extended). Raises ValueError for an opcode
    that is not one of :class:`Op`.
    """
    opcode = word & 0xF
    if opcode not in Op._value2member_map_:
        raise ValueError(f"opcode must be one of {', '.join(str(int(o)) for o in Op)}, "
                         f"not {opcode}")
    op = Op(opcode)
    view = insn_layout(op).from_bits(word)
    values = {"version": view.version}
    values.update({f.name: getattr(view, f.name) for f in spec_of(op).fields})
    return op, values
