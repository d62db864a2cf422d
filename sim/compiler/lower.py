"""Lower a :class:`~.ir.Network` to an NPU program: memory plan, tables, instructions.

Memory plan (all checked against the NPU's params, each shortfall a :class:`LowerError`
naming the param to raise):

- activations: the input at word 0 of bank 0; every layer writes the bank its input is not
  in (an ``ADD`` reads both inputs from one bank: when they are in different banks, a
  ``MAXPOOL`` with a 1 x 1 window first copies the second one over). Inside a bank each
  tensor takes the lowest words free of every tensor still to be read (first fit; a tensor
  is free after its last reader; the network's output is kept). A chain therefore
  alternates the banks with every tensor at word 0 of its bank. ``H * W * ceil(C /
  lanes)`` words per tensor, all live ones of a bank within ``act_words``.
- weights: every layer's tiles one after another from word 0 (``wgt_words``).
- table: one entry per output channel of every CONV and AVGPOOL, in layer order
  (``tab_entries``); the entry's bias is the model's bias with ``-zp_in * sum(w)`` folded
  in (int32, wrapping: exact, since the NPU pads with ``zp_in``).
- a CONV on the systolic array with more output pixels than ``acc_words`` is split into
  bands of output rows, one instruction each (same weights and table entries); so is a
  MAXPOOL (the copies for ADD included) when the NPU pools on its array
  (``pool_on_array``). A CONV on the Winograd engine takes the whole map.
- unequal strides (rows, columns): the instructions have one stride, so such a CONV or
  MAXPOOL is one instruction per output row, each reading its window's rows (the rows'
  stride is in the instructions' addresses, the columns' in their ``stride``). Exact; the
  cost is each instruction's start and drain (the cycle model's, in the plan).
- engines: a fully connected layer on a flat (1 x 1 x C) input can become an ``SPFC`` on
  the sparse engine when the NPU has one and its weights take at most 15 distinct non-zero
  values (the engine's codebook) and fit the engine. The engine holds one matrix, so by
  default only the layer whose predicted cycles (matrix loaded, every input non-zero) save
  the most over the systolic array, and whose beats still let the weight image fit, goes
  there (every such layer when there is no array).
  Its configuration beats go into the weight image, its bias is the model's (the engine
  subtracts ``zp_in``). ``engine_for`` forces a choice: ``{"fc": "sparse"}`` makes every
  fully connected layer an ``SPFC`` or fails naming why, ``{"fc": "systolic"}`` keeps them
  all on the array.
  A 3x3 stride-1 convolution whose channels the Winograd engine holds (``winograd.c_max``,
  ``winograd.k_max``) runs there (``CONV`` with ``engine`` 1: the same weights, table and
  result) when the NPU has the engine and the cycle model predicts fewer cycles for the
  layer than on the array; ``{"conv": "winograd"}`` puts every convolution there or
  fails naming why, ``{"conv": "systolic"}`` keeps them all on the array (a fully
  connected layer on a map, a CONV whose kernel covers its input, follows ``"fc"``
  instead: ``"systolic"`` keeps it on the array).
- instructions: ``HEADER``, the layers, ``HALT`` (``imem_words``).
"""

from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from npugen.rtl.npu.isa import Op, cfg_words, spec_of
from npugen.rtl.npu.params import params_hash

from ..formats.compress import encode
from ..formats.program import (
    Program,
    assemble,
    cfg_beat_words,
    disassemble,
    header_for,
    table_words,
    weight_words,
)
from ..formats.sparse import load_program
from ..models.intmath import wrap
from ..models.npu import SparseEngineModel, cycles_of, spfc_cycles
from ..models.qladd import avx2_constants, f32_bits
from ..models.requant import float32_scale, quantize_multiplier
from ..models.tfl_add import tflite_add_params
from ..models.xnn_add import xnnpack_add_params
from .ir import MODES, Add, Conv, GlobalAvgPool, MaxPool, ones_kernel, square_kernel

__all__ = ["ADD_KERNELS", "Lowered", "LowerError", "add_constants", "lower"]


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
    #: Predicted cycles of instructions whose cost depends on the data (SPFC: the matrix
    #: loaded, every input non-zero), by instruction index.
    predicted: dict = None

    def cycles(self, p, index):
        """Predicted cycles of instruction ``index`` on NPU ``p``."""
        if self.predicted and index in self.predicted:
            return self.predicted[index]
        return cycles_of(p, *disassemble(self.program.insns[index]))


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


def _window_bands(p, where, h, w, oh, ow, kernel, strides, pad_t, limit):
    """Split a window layer's output into bands of at most ``limit`` pixels (whole rows).

    Yields ``(r0, rows, y0, in_rows, top)``: the band's first output row and row count,
    its first input row, input rows and top padding (the rows above the input it covers).
    ``strides``: ``(rows, columns)``. The instructions have one stride for both: where
    they differ, each band is one output row (its window's rows are the band's input, so
    the rows' stride is in the bands' addresses and the instruction's stride is the
    columns').
    """
    if ow > limit:
        raise LowerError(f"{where}: an output row has {ow} pixels; acc_words is "
                         f"{p.acc_words} (raise --acc-words)")
    stride = strides[0]
    if strides[0] != strides[1]:
        limit = ow
    for r0, rows in _conv_bands(oh, ow, limit):
        y0 = r0 * stride - pad_t  # first input row the band reads
        top = max(0, -y0)
        y0 = max(0, y0)
        need = (rows - 1) * stride + kernel - top
        yield r0, rows, y0, min(h - y0, need), top


def _maxpool_insns(p, where, src, dst, h, w, c, oh, ow, kernel, strides, pad_t, pad_l):
    """Return the ``MAXPOOL`` instructions of one layer (``strides``: rows, columns).

    One, or with ``pool_on_array`` (the output in the accumulators) bands of at most
    ``acc_words`` output pixels; one per output row where the strides differ.
    """
    if not p.pool_on_array and strides[0] == strides[1]:
        return [assemble(Op.MAXPOOL, src=src, dst=dst, in_h=h, in_w=w, channels=c, out_h=oh,
                         out_w=ow, kernel=kernel, stride=strides[1], pad_t=pad_t,
                         pad_l=pad_l)]
    g = _groups(c, p.lanes)
    limit = p.acc_words if p.pool_on_array else oh * ow
    return [assemble(Op.MAXPOOL, src=src + y0 * w * g, dst=dst + r0 * ow * g,
                     in_h=in_rows, in_w=w, channels=c, out_h=rows, out_w=ow, kernel=kernel,
                     stride=strides[1], pad_t=top, pad_l=pad_l)
            for r0, rows, y0, in_rows, top in _window_bands(
                p, where, h, w, oh, ow, kernel, strides, pad_t, limit)]


#: The ``ADD`` instruction's mode per kernel (:func:`add_constants`).
ADD_KERNELS = {"avx2": 0, "xnnpack": 1, "gemmlowp": 2, "tflite": 3}


def add_constants(kernel, a, b, out, lo=-128, hi=127, subtract=False):
    """Return the ``ADD`` instruction's mode and constant fields for one layer.

    ``kernel``: ``avx2`` (mode 0, onnxruntime's ``QLinearAdd`` kernel: float32 constants as
    bit patterns), ``xnnpack`` (mode 1: XNNPACK's integer multipliers, bias and shift),
    ``gemmlowp`` or ``tflite`` (modes 2, 3: TFLite's reference add, rounded twice or once:
    three multipliers and shifts, the zero points). ``a``, ``b``, ``out``: the tensors'
    :class:`~.ir.TensorQuant`; ``[lo, hi]`` the output clamp (a fused activation).
    ``subtract``: ``a - b`` (``xnnpack`` only: XNNPACK subtracts with its add kernel and b's
    multiplier negated, ``-rint(rb * 2**shift)``, and the bias from that multiplier; equal to
    LiteRT's ``SUB`` on every input pair, ``tests/compiler/test_tflite_import.py``). Raises
    ValueError when the scales are outside the range the kernel (and the unit) takes.
    """
    # "tflite" is TFLite's add in a TFLITE_SINGLE_ROUNDING build; neither LiteRT path here
    # computes it (XNNPACK: "xnnpack"; the reference kernels: "gemmlowp").
    if kernel not in ADD_KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(ADD_KERNELS)}, not {kernel!r}")
    if not -128 <= lo <= hi <= 127:
        raise ValueError(f"the clamp [{lo}, {hi}] must satisfy -128 <= lo <= hi <= 127")
    if subtract and kernel != "xnnpack":
        raise ValueError(f"a subtraction runs only with XNNPACK's int8 kernel (TFLite "
                         f"models), not {kernel!r}")
    fields = {"mode": ADD_KERNELS[kernel], "shift": 0, "zp_out": 0, "shift_b": 0,
              "shift_out": 0, "zp_a": 0, "zp_b": 0, "lo": lo, "hi": hi}
    if kernel == "xnnpack":
        ma, mb, bias, shift = xnnpack_add_params(a.scale, a.zero_point, b.scale, b.zero_point,
                                                 out.scale, out.zero_point)
        if subtract:  # b's multiplier negated, and the bias's b term with it
            mb, bias = -mb, bias + 2 * mb * b.zero_point
        u32 = (1 << 32) - 1
        return {**fields, "rac": ma & u32, "rbc": mb & u32, "fixed": bias & u32,
                "shift": shift, "zp_out": out.zero_point}
    if kernel in ("gemmlowp", "tflite"):
        (qa, ea), (qb, eb), (qo, eo) = tflite_add_params(a.scale, b.scale, out.scale)
        return {**fields, "rac": qa, "rbc": qb, "fixed": qo, "shift": ea, "shift_b": eb,
                "shift_out": eo, "zp_a": a.zero_point, "zp_b": b.zero_point,
                "zp_out": out.zero_point}
    rac, rbc, fixed = avx2_constants(a.scale, a.zero_point, b.scale, b.zero_point, out.scale,
                                     out.zero_point)
    if not all(2.0 ** -64 <= float(r) < 2.0 ** 24 for r in (rac, rbc)) or \
            not (fixed == 0 or 2.0 ** -100 <= abs(float(fixed)) < 2.0 ** 64):
        raise ValueError(f"the scale ratios {float(rac):g} and {float(rbc):g} (or the "
                         f"zero-point term {float(fixed):g}) are outside the range the NPU's "
                         "ADD computes exactly (ratios in [2**-64, 2**24))")
    return {**fields, "rac": f32_bits(rac), "rbc": f32_bits(rbc), "fixed": f32_bits(fixed)}


def _add_constants(network, layer, where):
    """Return ``ADD``'s fields for ``layer``: XNNPACK's, onnxruntime's or TFLite's add.

    ``add_kernel == "xnnpack"``: mode 1; else the network's rounding mode picks the kernel
    (``ort``: onnxruntime's AVX2 ``QLinearAdd``, mode 0; ``gemmlowp``/``tflite``: TFLite's
    reference add, modes 2/3).
    """
    kernel = "xnnpack" if network.add_kernel == "xnnpack" else \
        {"ort": "avx2"}.get(network.mode, network.mode)
    try:
        return add_constants(kernel, layer.a_quant, layer.b_quant, layer.out_quant,
                             layer.lo, layer.hi, layer.subtract)
    except ValueError as exc:
        raise LowerError(f"{where}: {exc}") from None


class _Banks:
    """First-fit placement of tensors in the two activation banks (see the module text)."""

    def __init__(self, act_words, last_read):
        self.act_words = act_words
        self.last_read = last_read  # value -> index of the last layer reading it
        self.placed = {}  # value -> (bank, word offset, words)

    def place(self, value, bank, words, now, what):
        """Put ``value`` into ``bank`` at layer ``now``; return its unified word address."""
        busy = sorted((off, off + n) for v, (b, off, n) in self.placed.items()
                      if b == bank and self.last_read[v] >= now)
        start = 0
        for lo, hi in busy:
            if start + words <= lo:
                break
            start = max(start, hi)
        if start + words > self.act_words:
            raise LowerError(f"{what} needs {words} activation words next to the "
                             f"{sum(hi - lo for lo, hi in busy)} still to be read in its bank; "
                             f"act_words is {self.act_words} (raise --act-words)")
        self.placed[value] = (bank, start, words)
        return bank * self.act_words + start

    def bank(self, value):
        """Return the bank ``value`` is in."""
        return self.placed[value][0]

    def address(self, value):
        """Return the unified word address of ``value``."""
        bank, off, _ = self.placed[value]
        return bank * self.act_words + off


def _flat_fc(layer, in_shape):
    """Whether ``layer`` is a fully connected layer on a 1 x 1 x C input."""
    return isinstance(layer, Conv) and in_shape[:2] == (1, 1) and layer.kernel == 1 \
        and layer.strides == (1, 1) and not any(layer.pads)


def _is_fc(layer, in_shape):
    """Whether ``layer`` is a fully connected layer (its kernel covers its input)."""
    oh, ow, _ = layer.out_shape(in_shape)
    return isinstance(layer, Conv) and (oh, ow) == (1, 1) and layer.kernel >= max(in_shape[:2])


#: SPFC's ``beats`` field (its width bounds a matrix's configuration beats).
_SPFC_BEATS = next(f for f in spec_of(Op.SPFC).fields if f.name == "beats")


def _sparse_beats(layer, p):
    """Return the configuration beats of a 1 x 1 fully connected layer, or why it cannot.

    ``(beats, None)`` or ``(None, reason)``.
    """
    sp = p.sparse
    w = np.asarray(layer.weights)[:, :, 0, 0]
    cout, cin = w.shape
    values = sorted(int(v) for v in np.unique(w) if v != 0)
    if len(values) > 15:
        return None, (f"its weights take {len(values)} distinct non-zero values; the sparse "
                      "engine's codebook holds 15 (prune and share the weights)")
    if cout > sp.rows_max or cin > sp.cols_max:
        return None, (f"its {cout} x {cin} matrix exceeds the sparse engine's rows_max="
                      f"{sp.rows_max}, cols_max={sp.cols_max}")
    if not values:
        values = [1]  # an all-zero matrix still needs a valid codebook
    codebook = [0] + values + [0] * (15 - len(values))
    w_idx = np.zeros(w.shape, dtype=np.int64)
    for k, v in enumerate(values, start=1):
        w_idx[w == v] = k
    enc = encode(w_idx, sp.n_pe, codebook=codebook)
    most = max(len(e) for e in enc.entries)
    if most > sp.entries_max:
        return None, (f"it stores {most} entries in one PE; the sparse engine's "
                      f"entries_max is {sp.entries_max}")
    beats = load_program(enc)
    most = _SPFC_BEATS.range[1]
    if len(beats) > most:
        return None, f"its matrix takes {len(beats)} configuration beats; SPFC holds {most}"
    return beats, None


def _spfc_cost(p, beats, cin, cout):
    """Predicted cycles of an ``SPFC``: the matrix loaded, every input non-zero."""
    engine = SparseEngineModel(p.sparse)
    engine.load([b["op"] | b["pe"] << 2 | b["addr"] << 8 | b["data"] << 24 for b in beats])
    walk = engine.work(np.ones(cin, dtype=np.int64), p.lanes)
    return spfc_cycles(p, {"cin": cin, "cout": cout}, 0, walk)


def _where(n, layer):
    return f"layer {n} ({type(layer).__name__} {layer.name or ''})".replace(" )", ")")


def _sparse_layers(network, p, engine_for, shapes):
    """Return ``{layer index: configuration beats}`` of the layers that become ``SPFC``.

    The engine holds one matrix: a program with two ``SPFC`` reloads both on every run. So
    by default only the fully connected layer that saves the most cycles over the array goes
    to the sparse engine (all that it takes when there is no array); ``fc=sparse`` sends
    every fully connected layer and fails on one the engine cannot take.
    """
    force = engine_for.get("fc")
    if p.sparse is None or force == "systolic":
        return {}
    # The weight image on the array alone; a layer moved to the engine swaps its tiles for
    # its configuration beats, which must still fit wgt_words.
    dense_words = {n: len(weight_words(x.weights, p.lanes))
                   for n, x in enumerate(network.layers) if isinstance(x, Conv)}
    chosen, best = {}, None
    for n, layer in enumerate(network.layers):
        in_shape = shapes[network.sources(n)[0]]
        if not (isinstance(layer, Conv) and _is_fc(layer, in_shape)):
            continue
        if _flat_fc(layer, in_shape):
            beats, why = _sparse_beats(layer, p)
        else:
            h, w, c = in_shape
            beats, why = None, (f"it reads a {h}x{w}x{c} input with a {layer.kernel}x"
                                f"{layer.kernel} kernel (padding {layer.pads}), not a flat "
                                "1x1xC vector with a 1x1 kernel")
        if beats is None:
            if force == "sparse":
                raise LowerError(f"{_where(n, layer)}: --engine-for fc=sparse, but {why}")
            continue
        if force == "sparse" or p.systolic is None:
            chosen[n] = beats
            continue
        cin, cout = in_shape[2], layer.weights.shape[0]
        dense = assemble(Op.CONV, engine=0, mode=0, src=0, dst=0, wgt=0, tab=0, in_h=1, in_w=1,
                         cin=cin, cout=cout, out_h=1, out_w=1, kernel=1, stride=1, pad_t=0, pad_l=0,
                         zp_in=0)
        saving = cycles_of(p, *disassemble(dense)) - _spfc_cost(p, beats, cin, cout)
        words = sum(dense_words.values()) - dense_words[n] + len(beats) * cfg_words(p.lanes)
        if saving > 0 and words <= p.wgt_words and (best is None or saving > best[0]):
            best = (saving, n, beats)
    if best is not None:
        chosen[best[1]] = best[2]
    return chosen


def _winograd_refusal(p, kernel, strides, cin, cout):
    """Return why the Winograd engine cannot run this convolution, or None."""
    wg = p.winograd
    if wg is None:
        return "the NPU was built without the Winograd engine (--winograd on)"
    if kernel != 3 or strides != (1, 1):
        stride = strides[0] if strides[0] == strides[1] else "x".join(map(str, strides))
        return (f"its kernel is {kernel}x{kernel} with stride {stride}; the Winograd engine "
                f"takes 3x3 with stride 1")
    if cin > wg.c_max or cout > wg.k_max:
        return (f"it has {cin} input and {cout} output channels; the Winograd engine holds "
                f"{wg.c_max} and {wg.k_max} (raise --winograd-c-max, --winograd-k-max)")
    return None


def _conv_fields(p, where, mode, layer, in_shape, out_shape, src, dst, wgt, tab, limit):
    """Return the fields of a convolution's CONVs: bands of at most ``limit`` output pixels."""
    (h, w, c), (oh, ow, oc) = in_shape, out_shape
    k = layer.kernel
    g_in, g_out = _groups(c, p.lanes), _groups(oc, p.lanes)
    return [{"mode": mode, "src": src + y0 * w * g_in, "dst": dst + r0 * ow * g_out,
             "wgt": wgt, "tab": tab, "in_h": in_rows, "in_w": w, "cin": c, "cout": oc,
             "out_h": rows, "out_w": ow, "kernel": k, "stride": layer.stride, "pad_t": top,
             "pad_l": layer.pads[1], "zp_in": layer.zp_in}
            for r0, rows, y0, in_rows, top in _window_bands(
                p, where, h, w, oh, ow, k, layer.strides, layer.pads[0], limit)]


def _conv_plan(p, force, where, bands_of, pixels, why):
    """Return ``(engine, bands)`` of a convolution: the ``engine`` field and its CONVs.

    ``bands_of(limit)``: the CONVs' fields, bands of at most ``limit`` output pixels;
    ``why``: why the Winograd engine cannot run it, or None. On the array a band holds at
    most ``acc_words`` pixels; the Winograd engine takes the whole map in one CONV (no
    accumulators, and its filters load once). Forced (``force``), or by the cycle model
    when both engines can run it.
    """
    if force in ("sparse", "systolic") or (force != "winograd" and why is not None):
        return 0, bands_of(p.acc_words)  # (an SPFC-able layer forced: the array)
    if force == "winograd":
        if why is not None:
            raise LowerError(f"{where}: --engine-for conv=winograd, but {why}")
        return 1, bands_of(pixels)
    whole = bands_of(pixels)
    winograd = sum(cycles_of(p, Op.CONV, {**band, "engine": 1}) for band in whole)
    try:
        bands = bands_of(p.acc_words)
    except LowerError:  # (a row longer than acc_words: the array cannot take it)
        return 1, whole
    array = sum(cycles_of(p, Op.CONV, {**band, "engine": 0}) for band in bands)
    return (1, whole) if winograd < array else (0, bands)


def _pools_as_convolutions(network):
    """Return ``network`` with each global average pool as a convolution of ones.

    For an NPU without the AVGPOOL unit: an H x W map's pool is an H x W CONV from each
    channel to itself with weight 1 (input zero point 0; a rectangular window as a square
    one, :func:`~.ir.square_kernel`), with the pool's own bias, scales, zero point and clamp:
    the same sum into the same requantization (``C`` times the adds on the array). A map
    wider than CONV's largest window is refused, naming the AVGPOOL unit.
    """
    layers, shapes = list(network.layers), network.shapes()
    k_max = (1 << next(f.width for f in spec_of(Op.CONV).fields if f.name == "kernel")) - 1
    for n, layer in enumerate(layers):
        if not isinstance(layer, GlobalAvgPool):
            continue
        h, w, c = shapes[network.sources(n)[0]]
        if max(h, w) > k_max:
            raise LowerError(f"{_where(n, layer)}: a global average pool over a {h}x{w} map "
                             f"needs the AVGPOOL unit (--avgpool true): without it, it runs as "
                             f"a CONV of ones, whose window is at most {k_max}x{k_max}")
        weights, pads = square_kernel(ones_kernel(c, h, w), (0, 0, 0, 0))
        layers[n] = Conv(weights=weights, bias=layer.bias, scales=layer.scales, zp_in=0,
                         zp_out=layer.zp_out, pads=pads, lo=layer.lo, hi=layer.hi,
                         name=layer.name, op=layer.op or "GlobalAveragePool")
    return replace(network, layers=layers)


def lower(network, p, engine_for=None):
    """Return the :class:`Lowered` program of ``network`` for NPU params ``p``.

    ``engine_for``: ``{"fc": "sparse" | "systolic", "conv": "winograd" | "systolic"}``
    forces the engine of fully connected layers or convolutions (see the module text).
    """
    engine_for = dict(engine_for or {})
    for kind, engine in engine_for.items():
        valid = {"fc": ("sparse", "systolic"), "conv": ("winograd", "systolic")}.get(kind)
        if valid is None or engine not in valid:
            raise LowerError(f"engine_for must map conv to winograd or systolic and fc to "
                             f"sparse or systolic, not {kind}={engine}")
    if engine_for.get("fc") == "sparse" and p.sparse is None:
        raise LowerError("--engine-for fc=sparse: the NPU was built without the sparse "
                         "engine (--sparse on)")
    if engine_for.get("conv") == "winograd" and p.winograd is None:
        raise LowerError("--engine-for conv=winograd: the NPU was built without the "
                         "Winograd engine (--winograd on)")
    if network.mode not in MODES:
        raise LowerError(f"mode must be one of {', '.join(MODES)}, not {network.mode!r}")
    proven = [x for x in network.layers if getattr(x, "op", "") in ("AveragePool", "Mean")]
    if proven and network.mode != "ort":
        raise LowerError(f"{proven[0].op} {proven[0].name!r} holds constants proven exact for "
                         f"the ort rounding; the network rounds as {network.mode}")
    if p.requant_ort_only and network.mode != "ort" and any(
            isinstance(layer, (Conv, GlobalAvgPool)) for layer in network.layers):
        raise LowerError(f"the network rounds as {network.mode}; this NPU's requantizers "
                         "round only as onnxruntime (requant_ort_only)")
    if not p.avgpool:
        network = _pools_as_convolutions(network)
    if not p.add_units and any(isinstance(x, Add) for x in network.layers):
        raise LowerError("the network has element-wise adds; the NPU was built without ADD "
                         "units (--add-units 1)")
    shapes = network.shapes()
    if p.systolic is None and engine_for.get("fc") == "systolic" and any(
            isinstance(x, Conv) for x in network.layers):
        raise LowerError("--engine-for fc=systolic: the NPU was built without the systolic "
                         "array (--systolic on)")
    if p.systolic is None:
        sparse = _sparse_layers(network, p, engine_for, shapes)
        if any(isinstance(x, Conv) and n not in sparse for n, x in enumerate(network.layers)):
            raise LowerError("the network has convolutions or matrix products the sparse "
                             "engine cannot take; the NPU was built without the systolic "
                             "array (--systolic on)")
    lanes, mode = p.lanes, MODES.index(network.mode)
    words_of = [h * w * _groups(c, lanes) for h, w, c in shapes]
    for n, (h, w, c) in enumerate(shapes):
        if words_of[n] > p.act_words:
            what = "the input" if n == 0 else f"layer {n - 1}'s output"
            raise LowerError(f"{what} ({h}x{w}x{c}) needs {words_of[n]} activation words; "
                             f"act_words is {p.act_words} (raise --act-words)")
    last_read = dict.fromkeys(range(len(shapes)), -1)
    for n in range(len(network.layers)):
        for v in network.sources(n):
            last_read[v] = max(last_read[v], n)
    last_read[network.output] = len(network.layers)  # the host reads it after HALT
    banks = _Banks(p.act_words, last_read)
    banks.place(0, 0, words_of[0], 0, "the input")
    sparse = _sparse_layers(network, p, engine_for, shapes)
    insns = [header_for(p)]
    wgt, tab, spans, predicted = [], [], [], {}
    for n, layer in enumerate(network.layers):
        sources = network.sources(n)
        h, w, c = shapes[sources[0]]
        oh, ow, oc = shapes[n + 1]
        where = _where(n, layer)
        first = len(insns)
        src = banks.address(sources[0])
        if isinstance(layer, Add) and banks.bank(sources[1]) != banks.bank(sources[0]):
            # ADD reads a and b from one bank: copy b next to a (a 1 x 1 MAXPOOL).
            copy = ("copy", n)
            last_read[copy] = n
            to = banks.place(copy, banks.bank(sources[0]), words_of[sources[1]], n,
                             f"{where}: the copy of its second input")
            insns += _maxpool_insns(p, f"{where}: the copy of its second input",
                                    banks.address(sources[1]), to, h, w, c, h, w, 1, (1, 1),
                                    0, 0)
            sources = (sources[0], copy)
        dst = banks.place(n + 1, 1 - banks.bank(sources[0]), words_of[n + 1], n,
                          f"{where}'s output ({oh}x{ow}x{oc})")
        try:
            beats = sparse.get(n)
            if beats is not None:
                insn = {"mode": mode, "src": src, "dst": dst, "wgt": len(wgt),
                        "beats": len(beats), "tab": len(tab), "cin": c, "cout": oc,
                        "zp_in": layer.zp_in}
                cost = _spfc_cost(p, beats, c, oc)
            if beats is not None:
                tab += _entries(network.mode, wrap(layer.bias, 32), layer.scales,
                                layer.zp_out, layer.lo, layer.hi, where)
                wgt += cfg_beat_words(beats, lanes)
                predicted[len(insns)] = cost
                insns.append(assemble(Op.SPFC, **insn))
            elif isinstance(layer, Conv):
                bias = wrap(layer.bias - layer.zp_in * layer.weights.sum(axis=(1, 2, 3)), 32)
                t0, w0 = len(tab), len(wgt)
                tab += _entries(network.mode, bias, layer.scales, layer.zp_out, layer.lo,
                                layer.hi, where)
                wgt += weight_words(layer.weights, lanes)
                k = layer.kernel
                # (bottom, right: else the last windows would start in the padding; a PAD
                # folded into the layer's own can get there)
                if max(layer.pads) >= k:
                    raise LowerError(f"{where}: padding {layer.pads} (top, left, bottom, "
                                     f"right; a PAD before it and a rectangular window's "
                                     f"squaring included) must be smaller than the kernel {k} "
                                     "on every side")
                bands_of = partial(_conv_fields, p, where, mode, layer, (h, w, c),
                                   (oh, ow, oc), src, dst, w0, t0)
                # (a fully connected layer on a map follows --engine-for fc, not conv)
                kind = "fc" if _is_fc(layer, (h, w, c)) else "conv"
                why = _winograd_refusal(p, k, layer.strides, c, oc)
                engine, bands = _conv_plan(p, engine_for.get(kind), where, bands_of, oh * ow,
                                           why)
                insns += [assemble(Op.CONV, engine=engine, **band) for band in bands]
            elif isinstance(layer, MaxPool):
                if max(layer.pads) >= layer.kernel:  # (bottom, right: as a CONV's)
                    raise LowerError(f"{where}: padding {layer.pads} must be smaller than the "
                                     f"kernel {layer.kernel}")
                insns += _maxpool_insns(p, where, src, dst, h, w, c, oh, ow, layer.kernel,
                                        layer.strides, layer.pads[0], layer.pads[1])
            elif isinstance(layer, Add):
                insns.append(assemble(Op.ADD, src=src, src_b=banks.address(sources[1]),
                                      dst=dst, pixels=h * w, channels=c,
                                      **_add_constants(network, layer, where)))
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
    return Lowered(program=program, input_address=0,
                   output_address=banks.address(network.output),
                   output_shape=shapes[network.output], macs=network.macs(), spans=spans,
                   predicted=predicted)
