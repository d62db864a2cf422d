"""Lower a :class:`~.ir.Network` to an NPU program: memory plan, tables, instructions.

Memory plan (all checked against the NPU's params, each shortfall a :class:`LowerError`
naming the param to raise):

- activations: the input at word 0 of bank 0; layer ``n`` reads bank ``n % 2`` and writes
  the other bank, each tensor at its bank's first word (``H * W * ceil(C / lanes)`` words
  must fit ``act_words``).
- weights: every layer's tiles one after another from word 0 (``wgt_words``).
- table: one entry per output channel of every CONV and AVGPOOL, in layer order
  (``tab_entries``); the entry's bias is the model's bias with ``-zp_in * sum(w)`` folded
  in (int32, wrapping: exact, since the NPU pads with ``zp_in``).
- a CONV with more output pixels than ``acc_words`` is split into bands of output rows, one
  instruction each (same weights and table entries).
- instructions: ``HEADER``, the layers, ``HALT`` (``imem_words``).
"""

from dataclasses import dataclass

from npugen.rtl.npu.isa import Op
from npugen.rtl.npu.params import params_hash

from ..formats.program import (
    Program,
    assemble,
    header_for,
    table_words,
    weight_words,
)
from ..models.intmath import wrap
from ..models.requant import float32_scale, quantize_multiplier
from .ir import MODES, Conv, GlobalAvgPool, MaxPool

__all__ = ["Lowered", "LowerError", "lower"]


class LowerError(ValueError):
    """The network does not fit the NPU (or uses a field beyond the ISA's range)."""


@dataclass
class Lowered:
    """A compiled network: the program, where its input goes and where its output is."""

    program: Program
    input_address: int
    output_address: int
    output_shape: tuple  # (H, W, C)
    macs: int
    spans: list  # per layer: (first, end) indices of its instructions in program.insns


def _groups(c, lanes):
    return -(-c // lanes)


def _entries(mode, bias, scales, zp_out, lo, hi, where):
    out = []
    for b, s in zip(bias, scales, strict=True):
        try:
            mult, shift = float32_scale(s) if mode == "ort" else quantize_multiplier(s)
        except ValueError as exc:
            raise LowerError(f"{where}: requantization scale {float(s)!r}: {exc}") from None
        out.append({"bias": int(b), "multiplier": mult, "shift": shift,
                    "zero_point": zp_out, "lo": lo, "hi": hi})
    return out


def _conv_bands(out_h, out_w, acc_words):
    rows = max(1, acc_words // out_w)
    return [(r, min(rows, out_h - r)) for r in range(0, out_h, rows)]


def lower(network, p):
    """Return the :class:`Lowered` program of ``network`` for NPU params ``p``."""
    if network.mode not in MODES:
        raise LowerError(f"mode must be one of {', '.join(MODES)}, not {network.mode!r}")
    if p.systolic is None and any(isinstance(x, Conv) for x in network.layers):
        raise LowerError("the network has convolutions or matrix products; the NPU was built "
                         "without the systolic array (--systolic on)")
    lanes, mode = p.lanes, MODES.index(network.mode)
    shapes = network.shapes()
    for n, (h, w, c) in enumerate(shapes):
        words = h * w * _groups(c, lanes)
        if words > p.act_words:
            what = "the input" if n == 0 else f"layer {n - 1}'s output"
            raise LowerError(f"{what} ({h}x{w}x{c}) needs {words} activation words; "
                             f"act_words is {p.act_words} (raise --act-words)")
    insns = [header_for(p)]
    wgt, tab, spans = [], [], []
    for n, (layer, (h, w, c)) in enumerate(zip(network.layers, shapes, strict=False)):
        src = (n % 2) * p.act_words
        dst = ((n + 1) % 2) * p.act_words
        oh, ow, oc = shapes[n + 1]
        where = f"layer {n} ({type(layer).__name__} {layer.name or ''})".replace(" )", ")")
        first = len(insns)
        try:
            if isinstance(layer, Conv):
                bias = wrap(layer.bias - layer.zp_in * layer.weights.sum(axis=(1, 2, 3)), 32)
                t0, w0 = len(tab), len(wgt)
                tab += _entries(network.mode, bias, layer.scales, layer.zp_out, layer.lo,
                                layer.hi, where)
                wgt += weight_words(layer.weights, lanes)
                k, s = layer.kernel, layer.stride
                pad_t, pad_l = layer.pads[0], layer.pads[1]
                if pad_t >= k or pad_l >= k:
                    raise LowerError(f"{where}: padding {layer.pads} must be smaller than the "
                                     f"kernel {k}")
                if ow > p.acc_words:
                    raise LowerError(f"{where}: an output row has {ow} pixels; acc_words is "
                                     f"{p.acc_words} (raise --acc-words)")
                g_in, g_out = _groups(c, lanes), _groups(oc, lanes)
                for r0, rows in _conv_bands(oh, ow, p.acc_words):
                    y0 = r0 * s - pad_t  # first input row the band reads
                    top = max(0, -y0)
                    y0 = max(0, y0)
                    need = (rows - 1) * s + k - top
                    insns.append(assemble(
                        Op.CONV, mode=mode, src=src + y0 * w * g_in,
                        dst=dst + r0 * ow * g_out, wgt=w0, tab=t0,
                        in_h=min(h - y0, need), in_w=w, cin=c, cout=oc, out_h=rows, out_w=ow,
                        kernel=k, stride=s, pad_t=top, pad_l=pad_l, zp_in=layer.zp_in))
            elif isinstance(layer, MaxPool):
                if layer.pads[0] >= layer.kernel or layer.pads[1] >= layer.kernel:
                    raise LowerError(f"{where}: padding {layer.pads} must be smaller than the "
                                     f"kernel {layer.kernel}")
                insns.append(assemble(Op.MAXPOOL, src=src, dst=dst, in_h=h, in_w=w,
                                      channels=c, out_h=oh, out_w=ow, kernel=layer.kernel,
                                      stride=layer.stride, pad_t=layer.pads[0],
                                      pad_l=layer.pads[1]))
            elif isinstance(layer, GlobalAvgPool):
                t0 = len(tab)
                tab += _entries(network.mode, wrap(layer.bias, 32), layer.scales, layer.zp_out,
                                layer.lo, layer.hi, where)
                insns.append(assemble(Op.AVGPOOL, mode=mode, src=src, dst=dst, tab=t0,
                                      in_h=h, in_w=w, channels=c))
            else:  # pragma: no cover - a new IR layer without a lowering
                raise LowerError(f"{where}: no lowering for {type(layer).__name__}")
        except ValueError as exc:
            if isinstance(exc, LowerError):
                raise
            raise LowerError(f"{where}: {exc}") from None
        spans.append((first, len(insns)))
    insns.append(assemble(Op.HALT))
    for what, used, have, flag in (("weight words", len(wgt), p.wgt_words, "--wgt-words"),
                                   ("table entries", len(tab), p.tab_entries,
                                    "--tab-entries"),
                                   ("instructions", len(insns), p.imem_words, "--imem-words")):
        if used > have:
            raise LowerError(f"the network needs {used} {what}; the NPU has {have} "
                             f"(raise {flag})")
    segments = [("wgt", 0, wgt)] if wgt else []
    if tab:
        try:
            segments.append(("tab", 0, table_words(tab)))
        except ValueError as exc:
            raise LowerError(f"requantization table: {exc}") from None
    program = Program(params_hash=params_hash(p), insns=insns, segments=segments)
    out_bank = (len(network.layers) % 2) * p.act_words
    return Lowered(program=program, input_address=0, output_address=out_bank,
                   output_shape=shapes[-1], macs=network.macs(), spans=spans)
