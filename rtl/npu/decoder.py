"""Instruction decoder and checker: the ISA spec's fields, and the error an instruction earns."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..common.pipeline import LockstepPipeline
from .isa import FIELD_BASE, INSN_BITS, ISA_VERSION, ErrorCode, Op, cfg_words, insn_layout, spec_of
from .params import NpuParams, params_hash
from .setup import PREVIOUS, ProductChain, Step

__all__ = ["Decoder", "decoded_layout", "group_divider", "unit_setup_layout"]


def decoded_layout():
    """Return the decoder's output beat: the instruction's opcode and its error."""
    return data.StructLayout({
        "op": unsigned(4),
        "error": ErrorCode,
    })


def unit_setup_layout(p):
    """Return the set-up products the serial checker hands to CONV and MAXPOOL.

    With ``serial_setup`` the checker's product chain computes, besides its own sizes, the
    window unit's strides and offsets for the instruction it checks: ``G = ceil(channels /
    lanes)`` of the input, ``rowstride = in_w * G``, ``s_col = stride * G``, ``s_row = stride
    * rowstride``, ``pad_off = pad_t * rowstride + pad_l * G``, ``wrap = rowstride - kernel *
    G`` plus 1 (CONV) or ``G`` (MAXPOOL); for CONV also ``pixels = out_h * out_w`` and
    ``wgt_words`` (the weight region).
    The strides and offsets are kept modulo ``2**act_addr_bits`` (they only enter addresses);
    ``pixels`` and ``wgt_words`` are capped (:func:`size_caps`: exact in every instruction
    that passes the checks). They stay in the checker's registers while the instruction runs
    (the next word comes only after it), so the units need no multiplier and no copies of
    them. With ``pool_on_array`` (MAXPOOL on the CONV unit) ``pixels`` is a MAXPOOL's too,
    and the checker's window fields, ``src``, ``dst``, ``c_out`` and channel groups come
    along (combinational: the instruction word holds still).
    """
    a = unsigned(p.act_addr_bits)
    fields = {"rowstride": a, "s_col": a, "s_row": a, "pad_off": a, "wrap": a}
    if p.pool_on_array:
        # The window fields of the CONV or MAXPOOL in the checker (its multiplexers of the
        # two layouts), and its channel groups: the CONV unit runs both.
        fields |= {"in_h": 8, "in_w": 8, "out_h": 8, "out_w": 8, "kernel": 4, "stride": 4,
                   "pad_t": 4, "pad_l": 4, "src": 16, "dst": 16, "c_out": 10, "g_in": 10,
                   "g_out": 10}
    if p.systolic is not None:
        caps = size_caps(p)
        fields |= {"pixels": unsigned(caps["pixels"]), "wgt_words": unsigned(caps["wgt"])}
    return data.StructLayout(fields)


def size_caps(p):
    """Return the widths at which the checker caps its sizes (``2**bits - 1`` if larger).

    With ``serial_setup`` (the widths of the pipelined checker's products otherwise: nothing
    is capped). A capped size is still beyond its limit, so the check it feeds fails as the
    exact one would, and a size that passes is exact (``hw`` a region's pixels and ``kkg``
    the tiles, as ``act`` and ``wgt``): ``act`` (activation regions, and the pixel
    counts they come from) > ``2 * act_words``; ``wgt`` (weight regions, and the tile
    counts they come from) > ``wgt_words``; ``pixels`` (CONV's output pixels) >
    ``acc_words``; ``reach`` (a window's reach) > any ``in_h + pad_t`` (at most 270).
    """
    if not p.serial_setup:
        # The pipelined checker keeps its products whole (a cap after a DSP multiply would
        # lengthen the stage: 58 MHz instead of 68 on ECP5): the widths of the products.
        return {"act": 26, "hw": 16, "wgt": 36, "kkg": 18, "pixels": 16, "reach": 13}
    act, wgt = p.act_addr_bits + 1, p.wgt_words.bit_length() + 1
    return {"act": act, "hw": act, "wgt": wgt, "kkg": wgt,
            "pixels": (p.acc_words + 1).bit_length(), "reach": 10}


def _capped(value, bits):
    """``value`` (unsigned) in ``bits`` bits, or ``2**bits - 1`` if it does not fit."""
    if len(value) <= bits:
        return value
    return Mux(value[bits:].any(), (1 << bits) - 1, value[:bits])


def group_divider(lanes, width):
    """Return ``(multiplier, shift)`` that divide by ``lanes``, rounding up, without a divider.

    ``ceil(c / lanes) == ((c + lanes - 1) * multiplier) >> shift`` for every ``width``-bit
    ``c``; checked exhaustively here, at elaboration.
    """
    top = (1 << width) - 1 + lanes - 1
    shift = top.bit_length() + lanes.bit_length()
    multiplier = -(-(1 << shift) // lanes)
    for c in range(1 << width):
        if ((c + lanes - 1) * multiplier) >> shift != -(-c // lanes):  # pragma: no cover
            raise AssertionError(f"group divider for lanes={lanes} is not exact at {c}")
    return multiplier, shift


def _selections(m, v, is_op, has):
    """Return ``(win, sel)``: the fields the checks read, selected per opcode.

    ``v``: the word's view per opcode; ``is_op``: the opcode flags; ``has``: the opcodes
    this build runs. ``win``: CONV's or MAXPOOL's window fields, and ``out_h1``, ``out_w1``
    (the output size less one: ``0 - 1`` wraps, and SHAPE stops such a word first);
    ``sel``: the regions' operands (src, dst, their heights, widths and channel counts;
    weights and table).
    """
    conv, pool, avg, add, spfc = (v[op] for op in (Op.CONV, Op.MAXPOOL, Op.AVGPOOL, Op.ADD,
                                                    Op.SPFC))
    win = {name: Signal(len(getattr(conv, name)), name=f"win_{name}")
           for name in ("in_h", "in_w", "out_h", "out_w", "kernel", "stride", "pad_t",
                        "pad_l")}
    for name, sig in win.items():
        m.d.comb += sig.eq(Mux(is_op[Op.CONV], getattr(conv, name), getattr(pool, name)))
    win |= {"out_h1": Signal(8, name="win_out_h1"), "out_w1": Signal(8, name="win_out_w1")}
    m.d.comb += [win["out_h1"].eq(win["out_h"] - 1), win["out_w1"].eq(win["out_w"] - 1)]
    # Region operands, selected per opcode: src, dst, their heights, widths and channel
    # counts; weights and table (CONV, AVGPOOL).
    sel = {"src": Signal(16), "dst": Signal(16), "src_h": Signal(8), "src_w": Signal(8),
           "dst_h": Signal(8), "dst_w": Signal(8), "c_in": Signal(10), "c_out": Signal(10),
           "wgt": Signal(16), "kernel": Signal(4), "tab": Signal(12),
           "uses_wgt": Signal(), "uses_tab": Signal(), "checks": Signal(),
           "src_b": Signal(16), "uses_b": Signal()}
    with m.If(is_op[Op.CONV]):
        m.d.comb += [sel["src"].eq(conv.src), sel["dst"].eq(conv.dst),
                     sel["src_h"].eq(conv.in_h), sel["src_w"].eq(conv.in_w),
                     sel["dst_h"].eq(conv.out_h), sel["dst_w"].eq(conv.out_w),
                     sel["c_in"].eq(conv.cin), sel["c_out"].eq(conv.cout),
                     sel["wgt"].eq(conv.wgt), sel["kernel"].eq(conv.kernel),
                     sel["tab"].eq(conv.tab), sel["uses_wgt"].eq(1),
                     sel["uses_tab"].eq(1), sel["checks"].eq(1)]
    with m.Elif(is_op[Op.MAXPOOL]):
        m.d.comb += [sel["src"].eq(pool.src), sel["dst"].eq(pool.dst),
                     sel["src_h"].eq(pool.in_h), sel["src_w"].eq(pool.in_w),
                     sel["dst_h"].eq(pool.out_h), sel["dst_w"].eq(pool.out_w),
                     sel["c_in"].eq(pool.channels), sel["c_out"].eq(pool.channels),
                     sel["checks"].eq(1)]
    if has[Op.AVGPOOL]:
        with m.Elif(is_op[Op.AVGPOOL]):
            m.d.comb += [sel["src"].eq(avg.src), sel["dst"].eq(avg.dst),
                         sel["src_h"].eq(avg.in_h), sel["src_w"].eq(avg.in_w),
                         sel["dst_h"].eq(1), sel["dst_w"].eq(1),
                         sel["c_in"].eq(avg.channels), sel["c_out"].eq(avg.channels),
                         sel["tab"].eq(avg.tab), sel["uses_tab"].eq(1),
                         sel["checks"].eq(1)]
    if has[Op.SPFC]:
        with m.Elif(is_op[Op.SPFC]):
            m.d.comb += [sel["src"].eq(spfc.src), sel["dst"].eq(spfc.dst),
                         sel["src_h"].eq(1), sel["src_w"].eq(1),
                         sel["dst_h"].eq(1), sel["dst_w"].eq(1),
                         sel["c_in"].eq(spfc.cin), sel["c_out"].eq(spfc.cout),
                         sel["wgt"].eq(spfc.wgt), sel["tab"].eq(spfc.tab),
                         sel["uses_wgt"].eq(1), sel["uses_tab"].eq(1),
                         sel["checks"].eq(1)]
    if has[Op.ADD]:
        with m.Elif(is_op[Op.ADD]):
            m.d.comb += [sel["src"].eq(add.src), sel["dst"].eq(add.dst),
                         sel["src_b"].eq(add.src_b), sel["c_in"].eq(add.channels),
                         sel["c_out"].eq(add.channels), sel["uses_b"].eq(1),
                         sel["checks"].eq(1)]
    return win, sel


class _Handshake:
    """A stream's ``valid`` and ``ready`` between two parts of one component."""

    def __init__(self):
        self.valid = Signal(name="inner_valid")
        self.ready = Signal(name="inner_ready")


class _OneStage:
    """:class:`LockstepPipeline`'s interface without stage registers.

    ``carry`` passes its values through, and the caller's output register (written when
    :attr:`go`) is the one stage. For the serial checker: the word and the products'
    registers hold still until the result is taken in, so the checks need no registers of
    their own.
    """

    def __init__(self, m, i, o):
        self.go = Signal(name="go")
        m.d.comb += [self.go.eq(~o.valid | o.ready), i.ready.eq(self.go)]
        with m.If(self.go):
            m.d.sync += o.valid.eq(i.valid)
        self.valid = [o.valid]

    def carry(self, values, k):
        """Return ``values`` as they are (``k``: the stage they would be registered in)."""
        return dict(values)


class Decoder(wiring.Component):
    """Checks each instruction word against the ISA and the NPU's sizes.

    The checks and their order are the instruction-level simulator's
    (:mod:`npugen.sim.models.npu`): opcode, version, engine present, ``HEADER``'s params
    hash, then per opcode the field rules (``SHAPE``), ``ADD``'s constants (``CONST``), the
    regions (``ADDRESS``) and the banks (``BANK``). The first failing check is the beat's
    ``error``; ``NONE`` means the instruction may run. The word itself does not pass
    through (that took ``LATENCY x INSN_BITS`` flip-flops): its user keeps it (the
    controller holds the fetched word until the next fetch, and the execution units view it
    with :func:`~.isa.insn_layout` of ``op``).

    A first stage registers the word, its opcode and the fields the checks read, selected
    per opcode (so every product starts from flip-flops). Region sizes need products such
    as ``groups(cout) * kernel**2 * groups(cin) * lanes`` (up to 34 bits); they are computed
    over the next three stages, and the comparisons against the memories take a fifth.

    Members
    -------
    i : In(stream.Signature(unsigned(INSN_BITS)))
        Instruction words.
    o : Out(stream.Signature(decoded_layout()))

    Latency :attr:`LATENCY` cycles, one instruction per cycle; the pipeline advances when
    its last stage is empty or taken (``i.ready = ~o.valid | o.ready``), so ``o`` never
    depends combinationally on ``o.ready``. With ``p.serial_setup`` the products come from
    one shift-add multiplier (:class:`~.setup.ProductChain`) while the word waits on ``i``
    (valid, unchanged); then all the stages' checks run in one cycle into the output
    register (no stage registers): :meth:`cycles` from the word's arrival to its result,
    one word at a time.
    """

    LATENCY = 5

    @staticmethod
    def cycles(p):
        """Cycles from a word's arrival on ``i`` (pipeline empty) to its result on ``o``.

        With ``serial_setup``: the products, a cycle to take the word in with them, and the
        checks in one stage (the word and the products hold still meanwhile).
        """
        if not p.serial_setup:
            return Decoder.LATENCY
        # One load cycle and one per bit of each product's narrow operand: reach_h/w by the
        # stride (4 + 4), the output pixels, the two heights x widths (8 + 8 + 8), the two
        # region sizes and K**2 x G_in (10 + 10 + 8), the weights (10); then by lanes and by
        # the sparse words per beat where these are not powers of two.
        bits = [4, 4, 8, 8, 8, 10, 10, 8, 10]
        if p.lanes & (p.lanes - 1):
            bits.append(p.lanes.bit_length())
        cfg = cfg_words(p.lanes)
        if p.sparse is not None and cfg & (cfg - 1):
            bits.append(cfg.bit_length())
        # The window units' products (unit_setup_layout): by in_w, by stride twice, by the
        # two paddings, by kernel.
        bits += [8, 4, 4, 4, 4, 4]
        return sum(b + 1 for b in bits) + 1 + 1

    def __init__(self, p):
        if not isinstance(p, NpuParams):
            raise TypeError(f"p must be NpuParams, not {type(p).__name__}")
        self.p = p
        members = {
            "i": In(stream.Signature(unsigned(INSN_BITS))),
            "o": Out(stream.Signature(decoded_layout())),
        }
        if p.serial_setup:
            members["setup"] = Out(unit_setup_layout(p))
        super().__init__(members)

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.p
        serial = p.serial_setup
        # serial_setup: the products come from one shift-add multiplier before the word
        # enters the pipeline (which then holds it alone: the products' registers are read
        # in every stage); the word stays on ``i`` (valid, unchanged) until it enters.
        if serial:
            inner = _Handshake()
            pipe = _OneStage(m, inner, self.o)
        else:
            inner = self.i
            pipe = LockstepPipeline(m, inner, self.o, self.LATENCY)
        go, carry = pipe.go, pipe.carry

        # Stage 0 (the pipelined checker): the word, its opcode flags and the fields each
        # check reads, selected per opcode, into registers, so that stage 1's products start
        # from flip-flops, not from the instruction register through the selections. The
        # serial checker holds the word on ``i`` and takes them as they are.
        raw = self.i.payload
        raw_view = {op: data.View(insn_layout(op), raw) for op in Op}
        raw_is = {op: raw[:4] == op for op in Op}
        # Opcodes whose engine this build lacks (none in most builds: then no check at all,
        # rather than a constant-false one that lint flags as an overlapping case).
        lacking = [spec.op for spec in (spec_of(op) for op in Op)
                   if not spec.built_in(p)]
        # Past the engine check, a lacking opcode never reaches another check: its field
        # rules, constants and regions are left out of the build (CONV's and MAXPOOL's
        # are shared).
        has = {op: op not in lacking for op in Op}
        win, sel = _selections(m, raw_view, raw_is, has)
        if serial:
            word = raw
            is_op = {op: Signal(name=f"is_{op.name.lower()}") for op in Op}
            m.d.comb += [is_op[op].eq(raw_is[op]) for op in Op]
        else:
            word = pipe.stage(raw, "word", 0)
            is_op = pipe.carry({f"is_{op.name.lower()}": raw_is[op] for op in Op}, 0)
            is_op = {op: is_op[f"is_{op.name.lower()}"] for op in Op}
            win = pipe.carry({f"win_{k}": v for k, v in win.items()}, 0)
            win = {k[4:]: v for k, v in win.items()}
            sel = pipe.carry({f"sel_{k}": v for k, v in sel.items()}, 0)
            sel = {k[4:]: v for k, v in sel.items()}
        conv = data.View(insn_layout(Op.CONV), word)
        pool = data.View(insn_layout(Op.MAXPOOL), word)
        avg = data.View(insn_layout(Op.AVGPOOL), word)
        add = data.View(insn_layout(Op.ADD), word)
        spfc = data.View(insn_layout(Op.SPFC), word)
        head = data.View(insn_layout(Op.HEADER), word)
        opcode = word[:4]

        # Stage 1: the checks that need no products, and the first products.
        # Opcode, version, engine and header: a priority chain in the simulator's order.
        first = Signal(ErrorCode)  # the error known after stage 1 (or NONE)
        known = Signal()
        m.d.comb += known.eq(sum(is_op.values()) != 0)
        missing = Signal()
        lacking_op = sum(is_op[op] for op in lacking) != 0 if lacking else Const(0)
        # a CONV for the Winograd engine in a build without one
        no_winograd = is_op[Op.CONV] & conv.engine if p.winograd is None else Const(0)
        if p.requant_ort_only:
            # the requantizers round only as ort: CONV, AVGPOOL, SPFC in mode 1 or 2 lack it
            rounding = word[FIELD_BASE:FIELD_BASE + 2]
            m.d.comb += missing.eq(lacking_op | no_winograd
                                   | ((is_op[Op.CONV] | is_op[Op.AVGPOOL] | is_op[Op.SPFC])
                                      & ((rounding == 1) | (rounding == 2))))
        else:
            m.d.comb += missing.eq(lacking_op | no_winograd)

        # Field rules per opcode (SHAPE). Stage 1 takes the flags that need no arithmetic
        # and the window products; stage 2 compares the products (so no stage holds a
        # multiply followed by a comparison).
        is_window = is_op[Op.CONV] | is_op[Op.MAXPOOL]
        conv_channels = Signal(10)
        m.d.comb += conv_channels.eq(Mux(conv.cin < conv.cout, conv.cin, conv.cout))
        win_channels = Mux(is_op[Op.CONV], conv_channels, pool.channels)
        zero = (win["in_h"] == 0) | (win["in_w"] == 0) | (win_channels == 0) | \
            (win["out_h"] == 0) | (win["out_w"] == 0) | (win["kernel"] == 0) | \
            (win["stride"] == 0)
        pad = (win["pad_t"] >= win["kernel"]) | (win["pad_l"] >= win["kernel"])
        early_bad = Signal()  # a SHAPE error known in stage 1
        with m.If(is_op[Op.CONV]):
            if p.winograd is None:
                m.d.comb += early_bad.eq((conv.mode == 3) | zero | pad)
            else:  # the Winograd engine: 3x3, stride 1, channels it holds
                wg = p.winograd
                m.d.comb += early_bad.eq((conv.mode == 3) | zero | pad | (conv.engine & (
                    (conv.kernel != 3) | (conv.stride != 1) | (conv.cin > wg.c_max)
                    | (conv.cout > wg.k_max))))
        with m.Elif(is_op[Op.MAXPOOL]):
            m.d.comb += early_bad.eq(zero | pad)
        if has[Op.AVGPOOL]:
            with m.Elif(is_op[Op.AVGPOOL]):
                m.d.comb += early_bad.eq((avg.mode == 3) | (avg.in_h == 0) | (avg.in_w == 0)
                                         | (avg.channels == 0))
        if has[Op.ADD]:
            with m.Elif(is_op[Op.ADD]):
                m.d.comb += early_bad.eq((add.pixels == 0) | (add.channels == 0))
        if has[Op.SPFC]:
            with m.Elif(is_op[Op.SPFC]):
                sp = p.sparse
                m.d.comb += early_bad.eq((spfc.mode == 3) | (spfc.cin == 0) | (spfc.cout == 0)
                                         | (spfc.beats == 0) | (spfc.cin > sp.cols_max)
                                         | (spfc.cout > sp.rows_max))

        # ADD's float32 constants (CONST): |rac|, |rbc| in [2**-64, 2**24), fixed zero or
        # 2**-100 <= |fixed| < 2**64, read from the biased exponent fields.
        def exp_outside(bits, lo, hi):
            return (bits[23:31] < lo) | (bits[23:31] > hi)

        float_bad = exp_outside(add.rac, 63, 150) | exp_outside(add.rbc, 63, 150) \
            | ((add.fixed[:31] != 0) & exp_outside(add.fixed, 27, 190))

        # mode 1 (XNNPACK): |rac|, |rbc| <= 2**21 as integers (any shift is exact).
        def int_outside(bits):
            v = bits.as_signed()
            return (v < -(1 << 21)) | (v > (1 << 21))

        int_bad = int_outside(add.rac) | int_outside(add.rbc)

        # modes 2, 3 (TFLite): each q in [2**30, 2**31) (the shifts are 0..31 by width).
        def q_outside(bits):
            return bits[30:32] != 0b01

        q_bad = q_outside(add.rac) | q_outside(add.rbc) | q_outside(add.fixed)
        const_bad = Mux(add.mode[1], q_bad, Mux(add.mode[0], int_bad, float_bad)) \
            | (add.lo > add.hi)
        # Sizes capped (size_caps): narrow registers, adders and comparisons, the same
        # errors.
        caps = size_caps(p)
        reach_h = Signal(caps["reach"])  # (out_h - 1) * stride: 8 x 4 bits
        reach_w = Signal(caps["reach"])
        lim_h = Signal(9)
        lim_w = Signal(9)
        conv_pixels = Signal(caps["pixels"])
        m.d.comb += [lim_h.eq(win["in_h"] + win["pad_t"]), lim_w.eq(win["in_w"] + win["pad_l"])]
        if not serial:
            m.d.comb += [reach_h.eq(_capped(win["out_h1"] * win["stride"], caps["reach"])),
                         reach_w.eq(_capped(win["out_w1"] * win["stride"], caps["reach"])),
                         conv_pixels.eq(_capped(conv.out_h * conv.out_w, caps["pixels"]))]
        with m.If(~known):
            m.d.comb += first.eq(ErrorCode.OPCODE)
        with m.Elif(word[4:8] != ISA_VERSION):
            m.d.comb += first.eq(ErrorCode.VERSION)
        if lacking or p.requant_ort_only or p.winograd is None:
            with m.Elif(missing):
                m.d.comb += first.eq(ErrorCode.ENGINE)
        with m.Elif(is_op[Op.HEADER] & (head.params_hash != params_hash(p))):
            m.d.comb += first.eq(ErrorCode.PARAMS)
        with m.Elif(early_bad):
            m.d.comb += first.eq(ErrorCode.SHAPE)
        if has[Op.ADD]:
            with m.Elif(is_op[Op.ADD] & const_bad):
                m.d.comb += first.eq(ErrorCode.CONST)
        with m.Else():
            m.d.comb += first.eq(ErrorCode.NONE)
        shape = {"windowed": is_window & ~zero,
                 **({} if serial else {"reach_h": reach_h, "reach_w": reach_w, "lim_h": lim_h,
                                       "lim_w": lim_w}),
                 "is_conv": is_window if p.pool_on_array else is_op[Op.CONV],
                 "conv_pixels": conv_pixels,
                 # (a CONV on the Winograd engine keeps no accumulators: any output size)
                 "on_array": ~(is_op[Op.CONV] & conv.engine) if p.winograd is not None
                 else Const(1)}

        mul, sh = group_divider(p.lanes, 10)
        g_in = Signal(10)
        g_out = Signal(10)
        m.d.comb += [g_in.eq(((sel["c_in"] + p.lanes - 1) * mul) >> sh),
                     g_out.eq(((sel["c_out"] + p.lanes - 1) * mul) >> sh)]
        a_cap, w_cap = caps["act"], caps["wgt"]
        hw_cap = caps["hw"]
        hw_in = Signal(hw_cap)
        hw_out = Signal(hw_cap)
        kk = Signal(8)
        m.d.comb += kk.eq(sel["kernel"] * sel["kernel"])

        def pixels_of(prod):
            """Return a region's pixels: its height times its width, or ADD's own count."""
            if has[Op.ADD]:
                return Mux(is_op[Op.ADD], _capped(add.pixels, hw_cap), _capped(prod, hw_cap))
            return _capped(prod, hw_cap)

        if not serial:
            m.d.comb += [hw_in.eq(pixels_of(sel["src_h"] * sel["src_w"])),
                         hw_out.eq(pixels_of(sel["dst_h"] * sel["dst_w"]))]

        # An activation region against the banks: beyond both, or across their border.
        bank = p.act_words
        abits = p.act_addr_bits
        wbits = p.wgt_words.bit_length()

        def act_bad(start, end):
            return (end > 2 * bank) | ((start < bank) & (end > bank))

        spfc_words = Signal(w_cap)  # SPFC's weight region: beats x cfg_words
        cfg = cfg_words(p.lanes)
        if not serial or cfg & (cfg - 1) == 0:
            m.d.comb += spfc_words.eq(_capped(spfc.beats * cfg, w_cap))
        src_words = Signal(a_cap)
        dst_words = Signal(a_cap)
        kkg = Signal(caps["kkg"])
        wgt_words = Signal(w_cap)  # kkg x g_out x lanes
        reach_bad = Signal(2)  # (serial_setup) reach_h, reach_w at or beyond their limits
        src_bad = Signal(2)  # (serial_setup) the regions at src and src_b out of range
        dst_bad = Signal()
        if serial:
            kg_out = Signal(w_cap)

            def cap(bits, shift=0):
                return lambda prod: _capped(prod << shift, bits)

            # The checks that read only one product are made as the product comes: a flag
            # each, not the product's register (the window's reach against its limit, the
            # activation regions' ends; the pixel counts pass on in the chain's register).
            def reaches(lim):
                return lambda prod: _capped(prod, caps["reach"]) >= lim

            def regions(*starts):
                return lambda prod: Cat(*(act_bad(st[:abits], st[:abits] + _capped(prod, a_cap))
                                          for st in starts))

            steps = [Step(reach_bad[0], win["out_h1"], win["stride"], reaches(lim_h)),
                     Step(reach_bad[1], win["out_w1"], win["stride"], reaches(lim_w)),
                     Step(conv_pixels, *((win["out_h"], win["out_w"]) if p.pool_on_array
                                         else (conv.out_h, conv.out_w)), cap(caps["pixels"])),
                     Step(None, sel["src_h"], sel["src_w"], pixels_of),
                     Step(src_bad, PREVIOUS, g_in, regions(sel["src"], sel["src_b"]),
                          a_bits=hw_cap),
                     Step(None, sel["dst_h"], sel["dst_w"], pixels_of),
                     Step(dst_bad, PREVIOUS, g_out, regions(sel["dst"]), a_bits=hw_cap),
                     Step(kkg, g_in, kk, cap(caps["kkg"]))]
            if p.lanes & (p.lanes - 1) == 0:
                steps.append(Step(wgt_words, kkg, g_out, cap(w_cap, p.lanes.bit_length() - 1)))
            else:
                steps += [Step(kg_out, kkg, g_out, cap(w_cap)),
                          Step(wgt_words, kg_out, Const(p.lanes, p.lanes.bit_length()),
                               cap(w_cap))]
            if has[Op.SPFC] and cfg & (cfg - 1):
                steps.append(Step(spfc_words, spfc.beats, Const(cfg, cfg.bit_length()),
                                  cap(w_cap)))
            # The window units' products (unit_setup_layout), from the same chain.
            u = self.setup
            steps += [Step(u.rowstride, g_in, win["in_w"]), Step(u.s_col, g_in, win["stride"]),
                      Step(u.s_row, u.rowstride, win["stride"]),
                      Step(u.pad_off, u.rowstride, win["pad_t"]),
                      Step(u.pad_off, g_in, win["pad_l"], lambda prod: u.pad_off + prod),
                      Step(u.wrap, g_in, win["kernel"], lambda prod: u.rowstride - prod
                           + Mux(is_op[Op.CONV], 1, g_in))]
            if p.systolic is not None:
                m.d.comb += [u.pixels.eq(conv_pixels), u.wgt_words.eq(wgt_words)]
            if p.pool_on_array:
                m.d.comb += [u.in_h.eq(win["in_h"]), u.in_w.eq(win["in_w"]),
                             u.out_h.eq(win["out_h"]), u.out_w.eq(win["out_w"]),
                             u.kernel.eq(win["kernel"]), u.stride.eq(win["stride"]),
                             u.pad_t.eq(win["pad_t"]), u.pad_l.eq(win["pad_l"]),
                             u.src.eq(sel["src"]), u.dst.eq(sel["dst"]),
                             u.c_out.eq(sel["c_out"]), u.g_in.eq(g_in), u.g_out.eq(g_out)]
            chain = ProductChain(m, steps, "sizes")
            assert chain.cycles + 1 + 1 == self.cycles(p)
            have = Signal()  # the products of the word on ``i`` are ready
            working = Signal()
            empty = ~sum(pipe.valid).bool()
            with m.If(self.i.valid & ~have & ~working & empty):
                m.d.comb += chain.start.eq(1)
                m.d.sync += working.eq(1)
            with m.If(chain.done):
                m.d.sync += [have.eq(1), working.eq(0)]
            m.d.comb += [inner.valid.eq(self.i.valid & have),
                         self.i.ready.eq(inner.ready & have)]
            with m.If(inner.valid & inner.ready):
                m.d.sync += have.eq(0)
        s1 = carry({"op": opcode, "first": first, "src": sel["src"],
                    "is_spfc": is_op[Op.SPFC] if has[Op.SPFC] else Const(0),
                    "spfc_words": spfc_words,
                    "dst": sel["dst"], "wgt": sel["wgt"], "tab": sel["tab"],
                    "src_b": sel["src_b"], "uses_b": sel["uses_b"],
                    "cout": sel["c_out"], "uses_wgt": sel["uses_wgt"],
                    "uses_tab": sel["uses_tab"], "checks": sel["checks"], "g_in": g_in,
                    "g_out": g_out, "hw_in": hw_in, "hw_out": hw_out, "kk": kk} | shape, 1)

        # Stage 2: the window and accumulator comparisons (SHAPE); region sizes of the
        # activations; kernel x groups for the weights.
        reach = reach_bad.any() if serial else \
            (s1["reach_h"] >= s1["lim_h"]) | (s1["reach_w"] >= s1["lim_w"])
        late_bad = (s1["windowed"] & reach) \
            | (s1["is_conv"] & s1["on_array"] & (s1["conv_pixels"] > p.acc_words))
        first2 = Signal(ErrorCode)
        m.d.comb += first2.eq(Mux((s1["first"] == ErrorCode.NONE) & late_bad, ErrorCode.SHAPE,
                                  s1["first"]))
        tab_end = Signal(13)
        m.d.comb += tab_end.eq(s1["tab"] + s1["cout"])
        if not serial:
            m.d.comb += [src_words.eq(_capped(s1["hw_in"] * s1["g_in"], a_cap)),
                         dst_words.eq(_capped(s1["hw_out"] * s1["g_out"], a_cap)),
                         kkg.eq(_capped(s1["kk"] * s1["g_in"], caps["kkg"]))]
        s2 = carry({k: s1[k] for k in ("op", "src", "dst", "wgt", "g_out",
                                       "is_spfc", "spfc_words",
                                       "uses_wgt", "uses_tab", "checks", "src_b", "uses_b")}
                   | {"first": first2}
                   | {"src_words": src_words, "dst_words": dst_words, "kkg": kkg,
                      "tab_end": tab_end}, 2)

        # Stage 3: region ends (the weight region's size is a product). A start at or above
        # 2**abits (beyond both banks) or 2**wbits (beyond the weights) is out of range
        # with any size (every region that is checked has a word at least); below, the
        # ends are sums of narrow values.
        wgt_end = Signal(w_cap + 1)
        src_end = Signal(a_cap + 1)
        dst_end = Signal(a_cap + 1)
        srcb_end = Signal(a_cap + 1)
        if not serial:
            m.d.comb += wgt_words.eq(_capped(s2["kkg"] * s2["g_out"] * p.lanes, w_cap))
        far = Signal()  # a start beyond its memory
        m.d.comb += far.eq(s2["src"][abits:].any() | s2["dst"][abits:].any()
                           | (s2["uses_wgt"] & s2["wgt"][wbits:].any())
                           | (s2["uses_b"] & s2["src_b"][abits:].any()))
        m.d.comb += [wgt_end.eq(s2["wgt"][:wbits]
                                + Mux(s2["is_spfc"], s2["spfc_words"], wgt_words)),
                     src_end.eq(s2["src"][:abits] + s2["src_words"]),
                     srcb_end.eq(s2["src_b"][:abits] + s2["src_words"]),
                     dst_end.eq(s2["dst"][:abits] + s2["dst_words"])]
        s3 = carry({k: s2[k] for k in ("op", "first", "uses_wgt", "uses_tab", "checks",
                                       "tab_end", "uses_b")}
                   | {"src": s2["src"][:abits], "dst": s2["dst"][:abits],
                      "src_b": s2["src_b"][:abits], "far": far}
                   | {"wgt_end": wgt_end, "src_end": src_end, "dst_end": dst_end,
                      "srcb_end": srcb_end}, 3)

        # Stage 4: every region against its memory; banks; the first failing check.
        if serial:  # (the chain's flags)
            act_regions = src_bad[0] | dst_bad | (s3["uses_b"] & src_bad[1])
        else:
            act_regions = act_bad(s3["src"], s3["src_end"]) | act_bad(s3["dst"], s3["dst_end"]) \
                | (s3["uses_b"] & act_bad(s3["src_b"], s3["srcb_end"]))
        address_bad = s3["far"] | act_regions \
            | (s3["uses_wgt"] & (s3["wgt_end"] > p.wgt_words)) \
            | (s3["uses_tab"] & (s3["tab_end"] > p.tab_entries))
        # (a start beyond both banks fails ADDRESS first: its low bits are enough here)
        bank_bad = ((s3["src"] >= bank) == (s3["dst"] >= bank)) \
            | (s3["uses_b"] & ((s3["src_b"] >= bank) != (s3["src"] >= bank)))
        error = Signal(ErrorCode)
        with m.If(s3["first"] != ErrorCode.NONE):
            m.d.comb += error.eq(s3["first"])
        with m.Elif(s3["checks"] & address_bad):
            m.d.comb += error.eq(ErrorCode.ADDRESS)
        with m.Elif(s3["checks"] & bank_bad):
            m.d.comb += error.eq(ErrorCode.BANK)
        with m.Else():
            m.d.comb += error.eq(ErrorCode.NONE)
        with m.If(go):
            m.d.sync += [self.o.payload.op.eq(s3["op"]), self.o.payload.error.eq(error)]
        return m
