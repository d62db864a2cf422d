"""Parameters of the integrated NPU: its engines (nested block parameters) and memory sizes.

Memories, all sized here and all addressed in words:

- activation scratchpad: two banks of ``act_words`` words, each word ``lanes`` int8 values
  (one channel group of one pixel); unified word addresses ``0 .. 2 * act_words - 1``,
  bank = ``address // act_words``. A layer reads one bank and writes the other.
- weight scratchpad: ``wgt_words`` words of ``lanes`` int8 values.
- accumulators: ``acc_words`` words of ``lanes`` int32 sums, one per output pixel of the
  convolution in flight (a ``CONV`` on the systolic array has at most ``acc_words``
  output pixels; the compiler splits bigger layers into bands of output rows; the Winograd
  engine keeps none).
- requantization table: ``tab_entries`` entries, one per output channel (bias, multiplier,
  shift, output zero point, clamp bounds).
- instruction memory: ``imem_words`` instructions of :data:`~.isa.INSN_BITS` bits.

Arithmetic is int8 x int8 -> int32 (wrapping) everywhere: the engines' accumulators are
32 bits wide, as the ONNX and TFLite integer operators define them.
"""

import hashlib
from dataclasses import dataclass

from ..common.params import Params, flag, nested, param
from ..sparse.params import SparseParams
from ..systolic.params import Dataflow, Multiplier, SystolicParams
from ..winograd.params import FilterInput, WinogradParams

__all__ = ["NpuParams", "params_hash"]


@dataclass(frozen=True, kw_only=True)
class NpuParams(Params, block="npu"):
    """Parameters of the NPU (:mod:`npugen.rtl.npu`)."""

    @property
    def macs(self):
        """Multiply-accumulates per cycle at full utilisation (the systolic array's)."""
        return self.systolic.macs if self.systolic is not None else 0

    @property
    def slug(self):
        """Short unique name for module names, build folders and test ids."""
        s = self.systolic
        engine = "pool" if s is None else s.slug.removeprefix("systolic_ws_").split("_a8")[0]
        engine += s.slug.split("acc32", 1)[1] if s is not None else ""
        rq = f"_rq{self.requant_lanes}" if self.requant_lanes else ""
        rq += "_rqs" if self.requant_serial else ""
        rq += "_spw" if self.wgt_spram else ""
        rq += "" if self.avgpool else "_noavg"
        rq += "_ss" if self.serial_setup else ""
        rq += "_bc" if self.array_broadcast else ""
        rq += "_pa" if self.pool_on_array else ""
        rq += "_ort" if self.requant_ort_only else ""
        rq += "_cq" if self.requant_compact else ""
        ad = f"_ad{self.add_units}" if self.add_units != 1 else ""
        sp = self.sparse
        sp = (f"_sp{sp.n_pe}r{sp.rows_max}c{sp.cols_max}e{sp.entries_max}q{sp.queue_depth}"
              + ("x" if sp.primitives.value == "ecp5" else "")) if sp is not None else ""
        wg = self.winograd
        wg = (f"_wg{wg.c_max}k{wg.k_max}" + ("x" if wg.primitives.value == "ecp5" else "")
              ) if wg is not None else ""
        return (f"npu_l{self.lanes}_{engine}_a{self.act_words}w{self.wgt_words}"
                f"c{self.acc_words}t{self.tab_entries}i{self.imem_words}{rq}{ad}{sp}{wg}")

    @property
    def act_addr_bits(self):
        """Bits of an activation word address (both banks: ``2 * act_words`` words).

        The window units add their address terms modulo ``2**act_addr_bits``: every
        address they read lies below ``2 * act_words``, so the sum's low bits are the
        address, whatever the terms' own widths.
        """
        return (2 * self.act_words - 1).bit_length()

    @property
    def post_lanes(self):
        """Requantization units (``requant_lanes``, or ``lanes`` when that is 0)."""
        return self.requant_lanes or self.lanes

    lanes: int = param(8, "int8 values per scratchpad word: the channels of one channel group "
                          "(equals the systolic array's rows)", lo=1, hi=64)
    act_words: int = param(2048, "words per activation scratchpad bank (two banks)",
                           lo=16, hi=32768)
    wgt_words: int = param(4096, "words of the weight scratchpad", lo=16, hi=65536)
    acc_words: int = param(1024, "accumulator words (output pixels of one CONV on the array)",
                           lo=2, hi=16384)
    requant_lanes: int = param(0, "requantization units working in parallel (a divisor of "
                                  "lanes; 0 = lanes)", lo=0, hi=64)
    wgt_spram: bool = flag(False, "weight scratchpad in iCE40 UP5K SB_SPRAM256KA blocks (16384 "
                                  "x 16 bits each, ceil(lanes / 2) of them; wgt_words up to "
                                  "16384)")
    avgpool: bool = flag(True, "global average pool unit (AVGPOOL; false: left out, the "
                               "instruction stops with ENGINE)")
    serial_setup: bool = flag(False, "the instruction checker's per-instruction products, "
                                     "CONV's and MAXPOOL's set-up included, on one "
                                     "shift-add multiplier (no DSP block; 111 more cycles "
                                     "per instruction at 4 lanes, 2 fewer per CONV and "
                                     "MAXPOOL set-up) for small FPGAs")
    array_broadcast: bool = flag(False, "the systolic array's rows broadcast to every "
                                        "column and each tile's weights go in with its first "
                                        "vector (WsArray broadcast=True: no activation or "
                                        "shadow weight registers, no output de-skew; with "
                                        "multiplier=ice40 the weights in the DSP blocks' B "
                                        "registers, even lanes) for small FPGAs")
    pool_on_array: bool = flag(False, "MAXPOOL on the CONV unit and the systolic array "
                                      "(identity weights, a lane-wise max into the "
                                      "accumulators; no pooling unit of its own): a MAXPOOL "
                                      "then has at most acc_words output pixels (the compiler "
                                      "splits bigger ones into bands); needs serial_setup "
                                      "and array_broadcast; "
                                      "for small FPGAs")
    requant_ort_only: bool = flag(False, "requantization only as onnxruntime rounds (ort; "
                                         "CONV, AVGPOOL and SPFC in the tflite or gemmlowp "
                                         "mode stop with ENGINE); with requant_serial a "
                                         "narrower unit, a value every 22 cycles; for small "
                                         "FPGAs")
    requant_serial: bool = flag(False, "serial requantization units (one value every 23 "
                                       "cycles, about half the LUTs, no DSP block; at most "
                                       "20 units) for small FPGAs")
    requant_compact: bool = flag(False, "with requant_serial and requant_ort_only: units "
                                        "that shift a step at a time (CompactRequantizer: a "
                                        "value every 34 cycles, about 220 iCE40 logic cells "
                                        "fewer each) for the smallest boards")
    add_units: int = param(1, "QLinearAdd units for ADD, one int8 element per cycle each (a "
                              "divisor of lanes; 0 = no ADD)", lo=0, hi=64)
    tab_entries: int = param(256, "entries of the per-channel requantization table",
                             lo=2, hi=4096)
    imem_words: int = param(64, "instructions the instruction memory holds", lo=2, hi=4096)
    systolic: SystolicParams | None = nested(
        SystolicParams, "systolic array for convolutions and matrix products (none: left out)",
        default=SystolicParams(rows=8, cols=8), optional=True)
    winograd: WinogradParams | None = nested(
        WinogradParams, "Winograd tile engine for 3x3 stride-1 convolutions (CONV with engine "
        "1; in the NPU: data_width 8, acc_width 32, one engine, raw filters; h_max and w_max "
        "unused; needs the systolic array)", optional=True)
    sparse: SparseParams | None = nested(
        SparseParams, "sparse engine for pruned, weight-shared fully connected layers (SPFC; "
        "in the NPU: act_width 16, acc_width 32, act_lanes = lanes, one accumulator bank, "
        "no relu; switched on, act_width and act_lanes default to those)", optional=True)

    @classmethod
    def switched_on(cls, name):
        """Return a switched-on sparse engine's defaults: the only values the NPU accepts.

        ``act_width`` 16 and ``act_lanes`` = the default ``lanes`` (:meth:`_build` follows a
        given ``lanes``).
        """
        if name == "sparse":
            lanes = {n: d for n, _, d in cls.specs()}["lanes"]
            return SparseParams(act_width=16, act_lanes=lanes)
        return super().switched_on(name)

    @classmethod
    def _build(cls, values, prefix):
        """Build as :meth:`Params._build` does; a sparse engine's ``act_lanes`` follows ``lanes``.

        Only when the engine is switched on, ``act_lanes`` is not given itself and ``lanes``
        is a value the engine can take (else the checks name ``lanes`` or ``act_lanes``).
        """
        path = prefix + "sparse"
        lanes = values.get(prefix + "lanes")
        act_lanes = {n: s for n, s, _ in SparseParams.specs()}["act_lanes"]
        takes = (isinstance(lanes, int) and not isinstance(lanes, bool)
                 and act_lanes.lo <= lanes <= act_lanes.hi)
        if takes and cls._switched(values, path, None):
            values = {f"{path}.act_lanes": lanes, **values}
        return super()._build(values, prefix)

    def check(self):
        """Cross-field rules: engines that exist; int8 operands, int32 sums; WS array.

        Without the systolic array the NPU still pools (a CONV stops with error ENGINE).
        """
        wg = self.winograd
        if wg is not None:
            # int8 operands, int32 sums; the unit feeds one tile engine raw filters
            for name, want, why in (
                    ("data_width", 8, "int8 inputs and weights"),
                    ("acc_width", 32, "int32 sums, as the ONNX and TFLite operators"),
                    ("engines", 1, "the NPU feeds one tile engine"),
                    ("filter_input", FilterInput.RAW, "the weights are CONV's raw 3x3 taps")):
                if getattr(wg, name) != want:
                    shown = want.value if isinstance(want, FilterInput) else want
                    got = getattr(wg, name)
                    raise ValueError(f"winograd.{name} must be {shown} in the NPU ({why}), "
                                     f"not {got.value if isinstance(got, FilterInput) else got}")
            if self.systolic is None:
                raise ValueError("winograd needs the systolic array (systolic none): CONV's "
                                 "checks and every other convolution run on it")
            if self.requant_serial:
                raise ValueError("winograd needs the pipelined requantizers (requant_serial "
                                 "false): the engine gives four output words per 2x2 tile "
                                 "and channel group, faster than serial units take them")
        sp = self.sparse
        if sp is not None:
            # x - zp_in spans 9 bits; the requantization clamps (no engine relu); the unit
            # hands the engine one scratchpad word per beat and one vector per instruction.
            for name, want, why in (
                    ("act_width", 16, "x - zp_in takes 9 bits"),
                    ("acc_width", 32, "int32 sums, as the ONNX and TFLite operators"),
                    ("act_lanes", self.lanes, "one scratchpad word per beat; = lanes"),
                    ("acc_banks", 1, "one vector per instruction"),
                    ("relu", False, "the requantization clamps")):
                if getattr(sp, name) != want:
                    raise ValueError(f"sparse.{name} must be {want} in the NPU ({why}), not "
                                     f"{getattr(sp, name)}")
        if self.requant_lanes and self.lanes % self.requant_lanes:
            raise ValueError(f"requant_lanes must divide lanes ({self.lanes}) or be 0, not "
                             f"{self.requant_lanes}")
        if self.requant_compact and not (self.requant_serial and self.requant_ort_only):
            raise ValueError("requant_compact needs requant_serial and requant_ort_only (the "
                             "compact unit is a serial unit that rounds only as ort)")
        # (a unit's interval: 23 cycles, 22 with requant_ort_only, less 3)
        most = 19 if self.requant_ort_only else 20
        if self.requant_serial and self.post_lanes > most:
            raise ValueError(f"requant_serial takes at most {most} requantization units "
                             f"(requant_lanes, or lanes when that is 0): a part's table "
                             f"entries are read one per cycle between two of a unit's "
                             f"{most + 3}-cycle values, not {self.post_lanes}")
        if self.wgt_spram and (self.wgt_words > 16384 or self.lanes > 8):
            raise ValueError(f"wgt_spram holds at most 16384 words of at most 8 lanes (the "
                             f"UP5K's four SB_SPRAM256KA blocks), not wgt_words "
                             f"{self.wgt_words} of lanes {self.lanes}")
        if self.add_units and self.lanes % self.add_units:
            raise ValueError(f"add_units must divide lanes ({self.lanes}) or be 0, not "
                             f"{self.add_units}")
        s = self.systolic
        if self.pool_on_array and (s is None or not self.serial_setup
                                   or not self.array_broadcast):
            raise ValueError("pool_on_array needs the systolic array, serial_setup and "
                             "array_broadcast (MAXPOOL runs on the CONV unit with the "
                             "checker's window fields, and its identity weights go in with "
                             "each tile's first vector)")
        if s is not None:
            for name in ("rows", "cols"):
                if getattr(s, name) != self.lanes:
                    raise ValueError(f"systolic.{name} must equal lanes ({self.lanes}), not "
                                     f"{getattr(s, name)} (the array takes and gives one "
                                     "scratchpad word per cycle)")
            if s.dataflow is not Dataflow.WS:
                raise ValueError(f"systolic.dataflow must be ws in the NPU, not "
                                 f"{s.dataflow.value}")
            if self.array_broadcast and s.multiplier is Multiplier.ICE40 and self.lanes % 2:
                raise ValueError(f"array_broadcast with systolic.multiplier ice40 needs an "
                                 f"even lanes (two PEs of a row per SB_MAC16), not "
                                 f"{self.lanes}")
            for name, want in (("a_width", 8), ("w_width", 8), ("acc_width", 32)):
                if getattr(s, name) != want:
                    raise ValueError(f"systolic.{name} must be {want} in the NPU, not "
                                     f"{getattr(s, name)}")

    def device_problem(self, family):
        """Return the first engine's reason it cannot be built for ``family``, or None."""
        if self.wgt_spram and family != "ice40":
            return "wgt_spram=true is for ice40 devices (the UP5K's SB_SPRAM256KA)"
        for engine in (self.systolic, self.winograd, self.sparse):
            problem = engine.device_problem(family) if engine is not None else None
            if problem:
                return problem
        return None


def params_hash(p):
    """32-bit fingerprint of ``p`` (first 4 bytes of SHA-256 of its JSON), as an int.

    A program carries the hash of the NPU it was compiled for; the ``HEADER`` instruction
    makes the hardware compare it with its own and stop on a mismatch.
    """
    if not isinstance(p, NpuParams):
        raise TypeError(f"p must be NpuParams, not {type(p).__name__}")
    return int.from_bytes(hashlib.sha256(p.to_json().encode()).digest()[:4], "big")
