"""Instruction-level simulator of the NPU: the golden model of every memory word.

:class:`NpuModel` holds the NPU's host-visible memories (activation banks, weight
scratchpad, requantization table, instruction memory) as numpy arrays and executes
programs instruction by instruction, exactly (int64 inside, int32 wraparound where the
hardware wraps). It shares with the RTL only the ISA spec (:mod:`npugen.rtl.npu.isa`: field
names, layouts, opcodes, error codes) and the parameters, never arithmetic.

Execution of one instruction, in this order (the RTL checks in the same order and reports
the first failing check):

1. opcode known, else :attr:`ErrorCode.OPCODE`; version field equal to
   :data:`ISA_VERSION`, else ``VERSION``;
2. the engine the opcode needs is built, else ``ENGINE``;
3. field values allowed (sizes >= 1, rounding mode 0..2 (``ADD``: 0..3), padding <
   kernel, every output window starting inside the input), else ``SHAPE``; ``ADD``'s
   constants in the unit's range (:attr:`ErrorCode.CONST`), else ``CONST``;
4. every region inside its memory, an activation region inside one bank, else
   ``ADDRESS``; input and output in different activation banks (``ADD``: both inputs in
   one bank), else ``BANK``;
5. compute and write the output region (nothing is written when a check fails).

On an error the NPU stops: status ``ERROR`` with the code and the failing instruction's
address, sticky until the next start. ``HALT`` stops with ``DONE``. Running past the last
instruction word is error ``PC`` at address ``imem_words``.

Cycle model (documented prediction; see :func:`cycles_of`). The Verilator NPU will confirm
it within 5% once its controller exists (issue 14, open).
"""

import enum
from dataclasses import dataclass, field

import numpy as np

from npugen.rtl.npu.isa import (
    ISA_VERSION,
    TABLE_ENTRY,
    ErrorCode,
    Op,
    cfg_words,
    decode,
    spec_of,
)
from npugen.rtl.npu.params import NpuParams, params_hash
from npugen.rtl.systolic.ports import (
    ws_broadcast_min_tile_vectors,
    ws_broadcast_pipeline_cycles,
    ws_min_tile_vectors,
    ws_pipeline_cycles,
)
from npugen.rtl.winograd.ports import (
    engine_drain_cycles,
    engine_product_cycles,
    filter_transform_cycles,
)

from .intmath import wrap
from .qladd import avx2_add
from .requant import requantize
from .tfl_add import ROUNDINGS, tflite_add_int
from .xnn_add import MULT_MAX, xnnpack_add_int

__all__ = ["NpuModel", "NpuState", "SparseEngineModel", "Status", "cycles_of", "spfc_cycles",
           "winograd_cycles", "winograd_schedule"]

_MODES = ("ort", "tflite", "gemmlowp")
_TABLE_FIELDS = tuple(TABLE_ENTRY.members)


class NpuState(enum.IntEnum):
    """The controller's state as the status reply reports it."""

    IDLE = 0
    RUNNING = 1
    DONE = 2
    ERROR = 3


@dataclass
class Status:
    """What the host reads back: state, error code, program counter, counters."""

    state: NpuState = NpuState.IDLE
    error: ErrorCode = ErrorCode.NONE
    pc: int = 0
    cycles: int = 0
    busy: dict = field(default_factory=lambda: {"systolic": 0, "pool": 0, "sparse": 0,
                                                "winograd": 0})
    retired: int = 0


class _Stop(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def _groups(channels, lanes):
    return -(-channels // lanes)


class SparseEngineModel:
    """The sparse engine as ``SPFC`` sees it: its memories, its shape, its error rules.

    Written from the engine's documented contract (:mod:`npugen.rtl.sparse.params`,
    ``ports.CfgOp``): configuration beats write the shape, the codebook, per-PE column
    pointers and entries, and a beat with a field out of range is ignored and raises the
    error; a run walks, for every non-zero activation ``x_j`` and every PE, the column's
    entries between its pointers (a column whose pointers are not ``ptr[j] <= ptr[j+1] <=
    entries_max`` is skipped with an error; an entry whose row reaches ``rows`` ends the
    column with an error) and adds ``codebook[index] * x_j`` to the row's int32 sum. The
    memories and the shape survive everything (initially zero and the maxima).
    """

    def __init__(self, sp):
        self.sp = sp
        self.rows, self.cols = sp.rows_max, sp.cols_max
        self.codebook = np.zeros(16, dtype=np.int64)
        self.ptr = np.zeros((sp.n_pe, sp.cols_max + 1), dtype=np.int64)
        self.entries = np.zeros((sp.n_pe, sp.entries_max), dtype=np.int64)

    def load(self, beats):
        """Apply configuration beats (40-bit ints); return False if one was refused."""
        sp, ok = self.sp, True
        for bits in beats:
            op, pe = bits & 3, (bits >> 2) & 63
            addr, value = (bits >> 8) & 0xFFFF, (bits >> 24) & 0xFFFF
            if op == 0:  # SHAPE
                good = 1 <= addr <= sp.rows_max and 1 <= value <= sp.cols_max
                if good:
                    self.rows, self.cols = addr, value
            elif op == 1:  # CODEBOOK
                good = addr < 16
                if good:
                    self.codebook[addr] = value - (1 << 16) if value >> 15 else value
            elif op == 2:  # POINTER
                good = pe < sp.n_pe and addr <= sp.cols_max and value <= sp.entries_max
                if good:
                    self.ptr[pe, addr] = value
            else:  # ENTRY
                good = pe < sp.n_pe and addr < sp.entries_max and value < 256
                if good:
                    self.entries[pe, addr] = value
            ok &= good
        return ok

    def _columns(self, x):
        """Yield ``(pe, j, entries)`` of every walked column; None entries: bad pointers."""
        for j in np.flatnonzero(x):
            for pe in range(self.sp.n_pe):
                lo, hi = int(self.ptr[pe, j]), int(self.ptr[pe, j + 1])
                good = lo <= hi <= self.sp.entries_max
                yield pe, int(j), (self.entries[pe, lo:hi] if good else None)

    def run(self, x):
        """Return the int32 sums (wrapped) for activations ``x``, or None on an error."""
        n_pe = self.sp.n_pe
        y = np.zeros(self.rows, dtype=np.int64)
        error = False
        for pe, j, entries in self._columns(x):
            if entries is None:
                error = True
                continue
            local = -1
            for e in entries:
                local += (int(e) >> 4) + 1
                row = local * n_pe + pe
                if row >= self.rows:
                    error = True
                    break
                if e & 15:
                    y[row] += int(self.codebook[e & 15]) * int(x[j])
        return None if error else wrap(y, 32)

    def work(self, x, lanes):
        """Cycle at which the busiest PE finishes walking, by a queue model.

        Input word ``k`` reaches the engine at cycle ``2 k``; its non-zero activations
        leave the leading-non-zero detector one per cycle (not before their word); each PE
        walks a column's stored entries one per cycle (at least one cycle per column), in
        order, and starts at most ``credits`` columns per ``loop`` cycles.
        """
        # A PE's fetch holds `credits` columns around a loop of `loop` cycles: runs of
        # short columns go at credits / loop per cycle.
        credits, loop = self.sp.fetch_credits, self.sp.fetch_loop
        done = np.zeros(self.sp.n_pe, dtype=np.int64)
        starts = [[] for _ in range(self.sp.n_pe)]
        arrival = -1
        for pe, j, entries in self._columns(x):
            if pe == 0:
                arrival = max(2 * (j // lanes), arrival + 1)
            count = 0 if entries is None else len(entries)
            history = starts[pe]
            start = max(done[pe], arrival,
                        history[-credits] + loop if len(history) >= credits else 0)
            history.append(start)
            done[pe] = start + max(1, count)
        return int(done.max()) if done.size else 0


class NpuModel:
    """The NPU at instruction level. ``p``: :class:`NpuParams`."""

    def __init__(self, p):
        if not isinstance(p, NpuParams):
            raise TypeError(f"p must be NpuParams, not {type(p).__name__}")
        self.p = p
        self.act = np.zeros((2 * p.act_words, p.lanes), dtype=np.int64)
        self.wgt = np.zeros((p.wgt_words, p.lanes), dtype=np.int64)
        self.tab = {name: np.zeros(p.tab_entries, dtype=np.int64) for name in _TABLE_FIELDS}
        self.imem = [0] * p.imem_words
        self.status = Status()
        self.engine = SparseEngineModel(p.sparse) if p.sparse is not None else None
        #: ``(wgt, beats)`` of the load the sparse engine holds, or None.
        self.sparse_tag = None

    # -- host access ----------------------------------------------------------------------

    def _memory(self, memory):
        sizes = {"act": 2 * self.p.act_words, "wgt": self.p.wgt_words,
                 "tab": self.p.tab_entries, "imem": self.p.imem_words}
        if memory not in sizes:
            raise ValueError(f"memory must be one of {', '.join(sizes)}, not {memory!r}")
        return sizes[memory]

    def _check_region(self, memory, address, count):
        size = self._memory(memory)
        if not (0 <= address and 0 <= count and address + count <= size):
            raise ValueError(f"{memory} words {address}..{address + count - 1} outside "
                             f"0..{size - 1}")

    def write(self, memory, address, words):
        """Write packed words (ints) as the host's write command does."""
        words = list(words)
        self._check_region(memory, address, len(words))
        for i, word in enumerate(words):
            a = address + i
            if memory == "imem":
                self.imem[a] = int(word)
            elif memory == "tab":
                view = TABLE_ENTRY.from_bits(int(word))
                for name in _TABLE_FIELDS:
                    self.tab[name][a] = getattr(view, name)
            else:
                if memory == "wgt":
                    self.sparse_tag = None
                target = self.act if memory == "act" else self.wgt
                target[a] = [((int(word) >> (8 * lane)) & 0xFF) - (
                    256 if (int(word) >> (8 * lane + 7)) & 1 else 0)
                    for lane in range(self.p.lanes)]

    def read(self, memory, address, count):
        """Read ``count`` packed words, as the host's read command does."""
        self._check_region(memory, address, count)
        if memory == "imem":
            return list(self.imem[address:address + count])
        if memory == "tab":
            return [TABLE_ENTRY.const({n: int(self.tab[n][a]) for n in _TABLE_FIELDS})
                    .as_bits() for a in range(address, address + count)]
        source = self.act if memory == "act" else self.wgt
        return [sum((int(v) & 0xFF) << (8 * lane) for lane, v in enumerate(row))
                for row in source[address:address + count]]

    # -- execution ------------------------------------------------------------------------

    def start(self, address=0):
        """Start at ``address``: counters cleared, error cleared, state RUNNING."""
        self._check_region("imem", address, 1)  # (an instruction to start at)
        self.status = Status(state=NpuState.RUNNING, pc=address)

    def step(self):
        """Execute the instruction at the program counter (RUNNING only)."""
        st = self.status
        if st.state is not NpuState.RUNNING:
            raise RuntimeError(f"the NPU is {st.state.name}, not RUNNING")
        if st.pc >= self.p.imem_words:
            st.state, st.error = NpuState.ERROR, ErrorCode.PC
            return st
        try:
            op = self._execute(self.imem[st.pc])
        except _Stop as stop:
            st.state, st.error = NpuState.ERROR, stop.code
            return st
        st.retired += 1
        if op is Op.HALT:
            st.state = NpuState.DONE
        else:
            st.pc += 1
        return st

    def run(self, address=0, max_insns=1_000_000):
        """Start at ``address`` and step until DONE or ERROR; return the status."""
        self.start(address)
        for _ in range(max_insns):
            if self.step().state is not NpuState.RUNNING:
                return self.status
        raise RuntimeError(f"no HALT within {max_insns} instructions")

    def error_of(self, word):
        """Return the :class:`ErrorCode` the NPU stops with on ``word`` (NONE: it runs).

        Only the checks, in the documented order; nothing is computed or written.
        """
        try:
            self._checked(word)
        except _Stop as stop:
            return stop.code
        return ErrorCode.NONE

    def _checked(self, word):
        """Decode ``word`` and run every check; return ``(op, fields)`` or raise _Stop."""
        if (word & 0xF) not in Op._value2member_map_:
            raise _Stop(ErrorCode.OPCODE)
        op, f = decode(word)
        if f["version"] != ISA_VERSION:
            raise _Stop(ErrorCode.VERSION)
        if not spec_of(op).built_in(self.p):
            raise _Stop(ErrorCode.ENGINE)
        if op is Op.CONV and f["engine"] and self.p.winograd is None:
            raise _Stop(ErrorCode.ENGINE)
        if self.p.requant_ort_only and op in (Op.CONV, Op.AVGPOOL, Op.SPFC) \
                and f["mode"] in (1, 2):  # (the requantizers round only as ort)
            raise _Stop(ErrorCode.ENGINE)
        lanes = self.p.lanes
        if op is Op.HEADER:
            if f["params_hash"] != params_hash(self.p):
                raise _Stop(ErrorCode.PARAMS)
        elif op is Op.CONV:
            self._check_mode(f)
            self._check_window(f, min(f["cin"], f["cout"]))
            wg = self.p.winograd
            if f["engine"] and (f["kernel"] != 3 or f["stride"] != 1 or f["cin"] > wg.c_max
                                or f["cout"] > wg.k_max):
                raise _Stop(ErrorCode.SHAPE)
            if f["out_h"] * f["out_w"] > self.p.acc_words and not f["engine"]:
                raise _Stop(ErrorCode.SHAPE)  # (the array's accumulators)
            g_in, g_out = _groups(f["cin"], lanes), _groups(f["cout"], lanes)
            self._check_regions(f["src"], f["in_h"] * f["in_w"] * g_in,
                                f["dst"], f["out_h"] * f["out_w"] * g_out,
                                wgt=(f["wgt"], g_out * f["kernel"] ** 2 * g_in * lanes),
                                tab=(f["tab"], f["cout"]))
        elif op is Op.MAXPOOL:
            self._check_window(f, f["channels"])
            # on the CONV unit (pool_on_array): its output in the accumulators
            if self.p.pool_on_array and f["out_h"] * f["out_w"] > self.p.acc_words:
                raise _Stop(ErrorCode.SHAPE)
            g = _groups(f["channels"], lanes)
            self._check_regions(f["src"], f["in_h"] * f["in_w"] * g,
                                f["dst"], f["out_h"] * f["out_w"] * g)
        elif op is Op.AVGPOOL:
            self._check_mode(f)
            if min(f["in_h"], f["in_w"], f["channels"]) < 1:
                raise _Stop(ErrorCode.SHAPE)
            g = _groups(f["channels"], lanes)
            self._check_regions(f["src"], f["in_h"] * f["in_w"] * g, f["dst"], g,
                                tab=(f["tab"], f["channels"]))
        elif op is Op.ADD:
            if min(f["pixels"], f["channels"]) < 1:
                raise _Stop(ErrorCode.SHAPE)
            if not _add_constants_ok(f):
                raise _Stop(ErrorCode.CONST)
            words = f["pixels"] * _groups(f["channels"], lanes)
            self._check_regions(f["src"], words, f["dst"], words, src_b=(f["src_b"], words))
        elif op is Op.SPFC:
            self._check_mode(f)
            sp = self.p.sparse
            if min(f["cin"], f["cout"], f["beats"]) < 1 or f["cin"] > sp.cols_max \
                    or f["cout"] > sp.rows_max:
                raise _Stop(ErrorCode.SHAPE)
            self._check_regions(f["src"], _groups(f["cin"], lanes), f["dst"],
                                _groups(f["cout"], lanes),
                                wgt=(f["wgt"], f["beats"] * cfg_words(lanes)),
                                tab=(f["tab"], f["cout"]))
        return op, f

    def _execute(self, word):
        op, f = self._checked(word)
        if op is Op.CONV:
            self._conv(f)
        elif op is Op.MAXPOOL:
            self._maxpool(f)
        elif op is Op.AVGPOOL:
            self._avgpool(f)
        elif op is Op.ADD:
            self._add(f)
        if op is Op.SPFC:
            cost = self._spfc(f)
        else:
            cost = cycles_of(self.p, op, f)
        self.status.cycles += cost
        if op is Op.SPFC:  # the unit's part: less the controller's and the PostUnit's tail
            self.status.busy["sparse"] += cost - insn_cycles(self.p) - _post_tail(self.p)
        elif op is Op.CONV and f["engine"]:
            self.status.busy["winograd"] += winograd_schedule(self.p, f)[1]
        elif op is Op.CONV:
            self.status.busy["systolic"] += cost
        elif op in (Op.MAXPOOL, Op.AVGPOOL, Op.ADD):
            self.status.busy["pool"] += cost
        return op

    # -- checks ---------------------------------------------------------------------------

    @staticmethod
    def _check_window(f, channels):
        if min(f["in_h"], f["in_w"], channels, f["out_h"], f["out_w"], f["kernel"],
               f["stride"]) < 1:
            raise _Stop(ErrorCode.SHAPE)
        if f["pad_t"] >= f["kernel"] or f["pad_l"] >= f["kernel"]:
            raise _Stop(ErrorCode.SHAPE)
        if (f["out_h"] - 1) * f["stride"] - f["pad_t"] >= f["in_h"] \
                or (f["out_w"] - 1) * f["stride"] - f["pad_l"] >= f["in_w"]:
            raise _Stop(ErrorCode.SHAPE)

    @staticmethod
    def _check_mode(f):
        if f["mode"] >= len(_MODES):
            raise _Stop(ErrorCode.SHAPE)

    def _check_regions(self, src, src_words, dst, dst_words, wgt=None, tab=None, src_b=None):
        bank = self.p.act_words
        regions = [(src, src_words), (dst, dst_words)] + ([src_b] if src_b else [])
        for start, count in regions:
            end = start + count
            if end > 2 * bank or start // bank != (end - 1) // bank:
                raise _Stop(ErrorCode.ADDRESS)
        if wgt is not None and wgt[0] + wgt[1] > self.p.wgt_words:
            raise _Stop(ErrorCode.ADDRESS)
        if tab is not None and tab[0] + tab[1] > self.p.tab_entries:
            raise _Stop(ErrorCode.ADDRESS)
        if src // bank == dst // bank:
            raise _Stop(ErrorCode.BANK)
        if src_b is not None and src_b[0] // bank != src // bank:
            raise _Stop(ErrorCode.BANK)

    # -- operations -----------------------------------------------------------------------

    def _input(self, src, h, w, channels):
        lanes = self.p.lanes
        g = _groups(channels, lanes)
        words = self.act[src:src + h * w * g]
        return words.reshape(h, w, g * lanes)[:, :, :channels]

    def _output(self, dst, values):
        """Write ``values`` (h, w, c) at ``dst``; lanes beyond c are written as 0."""
        lanes = self.p.lanes
        h, w, c = values.shape
        g = _groups(c, lanes)
        padded = np.zeros((h, w, g * lanes), dtype=np.int64)
        padded[:, :, :c] = values
        self.act[dst:dst + h * w * g] = padded.reshape(h * w * g, lanes)

    def _requantize(self, mode, acc, tab, channels):
        t = {name: self.tab[name][tab:tab + channels] for name in _TABLE_FIELDS}
        acc = wrap(acc + t["bias"], 32)
        return requantize(_MODES[mode], acc, t["multiplier"], t["shift"], t["zero_point"],
                          t["lo"], t["hi"])

    @staticmethod
    def _padded(x, f, fill):
        """``x`` (h, w, c) inside a frame of ``fill`` big enough for every window."""
        k, s = f["kernel"], f["stride"]
        need_h = (f["out_h"] - 1) * s + k
        need_w = (f["out_w"] - 1) * s + k
        h, w, c = x.shape
        frame = np.full((max(need_h, f["pad_t"] + h), max(need_w, f["pad_l"] + w), c), fill,
                        dtype=np.int64)
        frame[f["pad_t"]:f["pad_t"] + h, f["pad_l"]:f["pad_l"] + w] = x
        return frame

    def _windows(self, frame, f):
        """Yield ``(ky, kx, view)`` with ``view[oy, ox] = frame[oy*s + ky, ox*s + kx]``."""
        s = f["stride"]
        for ky in range(f["kernel"]):
            for kx in range(f["kernel"]):
                yield ky, kx, frame[ky:ky + (f["out_h"] - 1) * s + 1:s,
                                    kx:kx + (f["out_w"] - 1) * s + 1:s]

    def _conv(self, f):
        lanes = self.p.lanes
        g_in, g_out = _groups(f["cin"], lanes), _groups(f["cout"], lanes)
        k, cin, cout = f["kernel"], f["cin"], f["cout"]
        x = self._padded(self._input(f["src"], f["in_h"], f["in_w"], cin), f, f["zp_in"])
        words = g_out * k * k * g_in * lanes
        w = self.wgt[f["wgt"]:f["wgt"] + words].reshape(g_out, k, k, g_in, lanes, lanes)
        # (j, ky, kx, g, r, l) -> (ky, kx, ci = g * lanes + r, co = j * lanes + l)
        w = w.transpose(1, 2, 3, 4, 0, 5).reshape(k, k, g_in * lanes, g_out * lanes)
        w = w[:, :, :cin, :cout]
        acc = np.zeros((f["out_h"], f["out_w"], cout), dtype=np.int64)
        for ky, kx, view in self._windows(x, f):
            acc += np.tensordot(view, w[ky, kx], axes=([2], [0]))  # |acc| < 2**40: exact
        self._output(f["dst"], self._requantize(f["mode"], acc, f["tab"], cout))

    def _maxpool(self, f):
        c = f["channels"]
        x = self._padded(self._input(f["src"], f["in_h"], f["in_w"], c), f, -(1 << 40))
        out = np.full((f["out_h"], f["out_w"], c), -(1 << 40), dtype=np.int64)
        for _, _, view in self._windows(x, f):
            out = np.maximum(out, view)
        self._output(f["dst"], out)

    def _add(self, f):
        c, pixels = f["channels"], f["pixels"]
        a = self._input(f["src"], 1, pixels, c)
        b = self._input(f["src_b"], 1, pixels, c)
        if f["mode"] == 1:  # XNNPACK: the 32-bit fields as two's complement integers
            ma, mb, bias = (int(np.uint32(f[k]).view(np.int32)) for k in ("rac", "rbc", "fixed"))
            out = xnnpack_add_int(a, b, ma, mb, bias, f["shift"], f["zp_out"])
        elif f["mode"] >= 2:  # TFLite's reference add, rounded twice (2) or once (3)
            out = tflite_add_int(a, b, f["zp_a"], f["zp_b"], (f["rac"], f["shift"]),
                                 (f["rbc"], f["shift_b"]), (f["fixed"], f["shift_out"]),
                                 f["zp_out"], ROUNDINGS[f["mode"] - 2])
        else:
            rac, rbc, fixed = (np.uint32(f[k]).view(np.float32)
                               for k in ("rac", "rbc", "fixed"))
            out = avx2_add(a, b, rac, rbc, fixed).astype(np.int64)
        self._output(f["dst"], np.clip(out, f["lo"], f["hi"]))  # lo <= hi (CONST)

    def _spfc(self, f):
        """Run ``SPFC``; return its cycles (they depend on the data and the load tag)."""
        lanes, eng = self.p.lanes, self.engine
        key = (f["wgt"], f["beats"])
        loaded = self.sparse_tag == key
        if not loaded:
            self.sparse_tag = None
            n = cfg_words(lanes)
            rows = self.wgt[f["wgt"]:f["wgt"] + f["beats"] * n]
            bits = [sum((int(v) & 0xFF) << (8 * i) for i, v in enumerate(
                np.concatenate(rows[k * n:(k + 1) * n]))) for k in range(f["beats"])]
            if not eng.load(bits):
                raise _Stop(ErrorCode.SPARSE)
            self.sparse_tag = key
        if (eng.rows, eng.cols) != (f["cout"], f["cin"]):
            raise _Stop(ErrorCode.SPARSE)
        x = self._input(f["src"], 1, 1, f["cin"]).reshape(-1) - f["zp_in"]
        y = eng.run(x)
        if y is None:
            self.sparse_tag = None
            raise _Stop(ErrorCode.SPARSE)
        out = self._requantize(f["mode"], y, f["tab"], f["cout"])
        self._output(f["dst"], out.reshape(1, 1, -1))
        return spfc_cycles(self.p, f, 0 if loaded else f["beats"], eng.work(x, lanes))

    def _avgpool(self, f):
        c = f["channels"]
        x = self._input(f["src"], f["in_h"], f["in_w"], c)
        acc = x.sum(axis=(0, 1)).reshape(1, 1, c)
        self._output(f["dst"], self._requantize(f["mode"], acc, f["tab"], c))


def _add_constants_ok(f):
    """Check ``ADD``'s constants: the range where the unit is exact, and ``lo <= hi``.

    Mode 0 (float32): ``2**-64 <= |rac|, |rbc| < 2**24``; ``fixed`` 0 or
    ``2**-100 <= |fixed| < 2**64`` (every intermediate is normal). Mode 1 (integers):
    ``|rac|, |rbc| <= 2**21`` (any shift is exact). Modes 2, 3: ``rac``, ``rbc`` and
    ``fixed`` are multipliers in ``[2**30, 2**31)`` (the shifts are 0..31 by their width).
    """
    if f["lo"] > f["hi"]:
        return False
    if f["mode"] >= 2:
        return all((1 << 30) <= f[k] < (1 << 31) for k in ("rac", "rbc", "fixed"))
    if f["mode"] == 1:
        ma, mb = (int(np.uint32(f[k]).view(np.int32)) for k in ("rac", "rbc"))
        return abs(ma) <= MULT_MAX and abs(mb) <= MULT_MAX
    rac, rbc, fixed = (abs(float(np.uint32(f[k]).view(np.float32)))
                       for k in ("rac", "rbc", "fixed"))
    return all(2.0 ** -64 <= r < 2.0 ** 24 for r in (rac, rbc)) \
        and (fixed == 0 or 2.0 ** -100 <= fixed < 2.0 ** 64)


#: Cycles the controller spends on every instruction: the fetch (nine: the instruction
#: memory holds 32-bit chunks, read one per cycle), one to hand the word to the decoder and
#: its five stages (launch and retire fall into the unit's own cycles).
INSN_CYCLES = 15


def insn_cycles(p):
    """Cycles of every instruction's fetch and checks: :data:`INSN_CYCLES`, or more.

    With ``serial_setup`` the checker's products come from one shift-add multiplier: a load
    cycle and one per bit of each narrow operand (70 bits in 9 products; one more product
    by ``lanes`` when that is not a power of two, and one by the sparse engine's words per
    beat when there is an engine and that is not a power of two; then the window units'
    set-up products, 28 bits in 6), a cycle to take the word in, and its checks in one stage
    instead of five. Every instruction pays them, whatever its opcode.
    """
    if not p.serial_setup:
        return INSN_CYCLES
    extra = 70 + 9 + 28 + 6
    if p.lanes & (p.lanes - 1):
        extra += p.lanes.bit_length() + 1
    cfg = cfg_words(p.lanes)
    if p.sparse is not None and cfg & (cfg - 1):
        extra += cfg.bit_length() + 1
    return INSN_CYCLES + extra + 1 - 4


#: A unit's set-up cycles after its launch.
SETUP_CYCLES = 3
#: Stages of one QLinearAdd unit (:class:`npugen.rtl.npu.qladd.QLinearAdder`): an input
#: register, two fused multiply-adds of 9 stages, the conversion's 3, the clamp.
ADD_LATENCY = 23


#: MAXPOOL on the CONV unit (``pool_on_array``): cycles per output group beyond its tiles,
#: drain and writes (phase A's start and end, phase B's start), and once per instruction.
POOL_COLUMN_EXTRA, POOL_TAIL = 3, 2


#: The pipelined requantizer (:class:`npugen.rtl.npu.requant.Requantizer`): 12 stages.
REQUANT_LATENCY = 12
#: The serial requantizer (``requant_serial``): one value every 23 cycles, 24 cycles from
#: its input to its output (:class:`npugen.rtl.npu.requant_serial.SerialRequantizer`);
#: 22 and 23 with ``requant_ort_only``.
SERIAL_INTERVAL = 23
SERIAL_INTERVAL_ORT = 22
#: The compact unit (``requant_compact``,
#: :class:`npugen.rtl.npu.requant_compact.CompactRequantizer`): 34 and 35.
SERIAL_INTERVAL_COMPACT = 34


def _serial_interval(p):
    """Return the serial requantizer's cycles per value in ``p``'s build."""
    if p.requant_compact:
        return SERIAL_INTERVAL_COMPACT
    return SERIAL_INTERVAL_ORT if p.requant_ort_only else SERIAL_INTERVAL


def _post_tail(p):
    """Cycles from the PostUnit's last feed to its last write (requantizer + packing)."""
    # the requantizer's stages (or the serial unit's interval + 1), the packing and write
    # registers
    return (_serial_interval(p) + 1 if p.requant_serial else REQUANT_LATENCY) + 2


def _post_feed(p, parts):
    """Cycles the PostUnit takes to feed ``parts`` parts in a row to its requantizers."""
    return (parts - 1) * _serial_interval(p) + 1 if p.requant_serial else parts


def _post_table(p):
    """Table entries the PostUnit reads before a channel group's first part.

    All ``lanes`` of the word (a cache), or with serial units one part's ``post_lanes`` (the
    next parts' entries are read while the units work).
    """
    return p.post_lanes if p.requant_serial else p.lanes


def _setup_cycles(p, op):
    """Return a unit's set-up cycles: :data:`SETUP_CYCLES`, or one with ``serial_setup``.

    With ``serial_setup`` CONV and MAXPOOL take their products from the instruction
    checker (:func:`insn_cycles` counts them), so their two set-up cycles of products go.
    Otherwise the MAXPOOL unit takes one more (its products, then their sums).
    """
    if not p.serial_setup or op not in (Op.CONV, Op.MAXPOOL):
        # (the MAXPOOL unit's three set-up stages: a product per stage, then its sums)
        return SETUP_CYCLES + (op is Op.MAXPOOL and not p.pool_on_array)
    return SETUP_CYCLES - 2


def cycles_of(p, op, f):
    """Predicted cycles of one instruction (``f``: its decoded fields).

    The model follows the RTL's schedule (:mod:`npugen.rtl.npu.conv`, ``.pool``); its terms:

    - every instruction: :data:`INSN_CYCLES`; units add :data:`SETUP_CYCLES`.
    - ``CONV`` on the ``lanes x lanes`` array, per output-channel group (column tile):
      ``tiles = K * K * G_in`` weight tiles of ``P = out_h * out_w`` vectors each; the
      first costs ``P``, each further one ``max(P, T_w)``: ``T_w = ws_min_tile_vectors``
      (the next tile's weights must be loaded; the partial sums are added after the
      array, so no tile waits for an earlier one's results). Then the drain
      (``T_drain = ws_pipeline_cycles + 1``, or ``ws_broadcast_pipeline_cycles + 1`` with
      ``array_broadcast``: the last result through the array, which has no result buffer
      in the NPU, and into the accumulators), the requantization pass
      (``P * lanes / post_lanes``), the table load of the group's channels and bookkeeping
      (``lanes + 5``); once per instruction the first weight tile's load (``lanes - 1``).
      With ``array_broadcast`` a tile's weights go in with its first vector: tiles of
      ``max(P, ws_broadcast_min_tile_vectors)``, and no first load (-1 instead).
    - ``MAXPOOL`` on the CONV unit (``pool_on_array``, with ``array_broadcast``): per
      channel group ``P + (K * K - 1) * max(P, T_w) + T_drain + P + 3`` (CONV's schedule
      with one group per tile, one write per pixel), and 2 once.
    - ``MAXPOOL``: one read per cycle, ``out_h * out_w * G * K * K``, plus 4 (the read,
      its register, the compare, the write).
    - ``AVGPOOL``: per group ``in_h * in_w + 4`` reads and hand-over plus the table load
      (``lanes + 2``); then the requantization tail less 2 (the last hand-over overlaps
      it). Exact: ``test_avgpool_cycles_exact`` (1 to 5 groups, six unit configurations).
    - ``ADD``: ``words = pixels * G`` pairs of reads; a word every
      ``max(lanes / add_units, 2)`` cycles (the units take ``add_units`` lanes per cycle;
      the one read port reads two words per pair), the last one's ``lanes / add_units``
      chunks, the QLinearAdd pipeline (:data:`ADD_LATENCY`) and 4 cycles of reads,
      buffering and the write.
    """
    lanes = p.lanes
    if op is Op.CONV and f.get("engine"):
        return winograd_cycles(p, f)
    if op is Op.CONV:
        s = p.systolic
        drain = (ws_broadcast_pipeline_cycles(s) if p.array_broadcast
                 else ws_pipeline_cycles(s)) + 1
        g_in, g_out = _groups(f["cin"], lanes), _groups(f["cout"], lanes)
        pixels = f["out_h"] * f["out_w"]
        tile = max(pixels, ws_broadcast_min_tile_vectors(s) if p.array_broadcast
                   else ws_min_tile_vectors(s))
        parts = lanes // p.post_lanes
        tiles = f["kernel"] ** 2 * g_in
        work = pixels + (tiles - 1) * tile + drain + _post_table(p) + 5
        column = work + _post_feed(p, pixels * parts)
        # A serial unit takes the next group's first part SERIAL_INTERVAL cycles after the
        # last one at the earliest; a short column's work may take less.
        wait = max(0, _serial_interval(p) - 1 - work) if p.requant_serial else 0
        # The first weight tile's load before its first vector: lanes - 1 cycles; with
        # array_broadcast its beats go in with the vector, which enters one cycle before
        # the schedule's first cycle (-1).
        load = -1 if p.array_broadcast else lanes - 1
        return insn_cycles(p) + _setup_cycles(p, op) + load + g_out * column \
            + (g_out - 1) * wait + _post_tail(p)
    if op is Op.MAXPOOL and p.pool_on_array:
        # CONV's schedule with K * K tiles of one group per output group, then one write
        # per pixel (no requantization); pool_on_array comes with array_broadcast.
        s = p.systolic
        drain = ws_broadcast_pipeline_cycles(s) + 1
        pixels = f["out_h"] * f["out_w"]
        tile = max(pixels, ws_broadcast_min_tile_vectors(s))
        column = pixels + (f["kernel"] ** 2 - 1) * tile + drain + pixels + POOL_COLUMN_EXTRA
        return insn_cycles(p) + _setup_cycles(p, op) - 1 \
            + _groups(f["channels"], lanes) * column + POOL_TAIL
    if op is Op.MAXPOOL:
        g = _groups(f["channels"], lanes)
        # (the reads, then the last window's read, compare, pack and write registers)
        return insn_cycles(p) + _setup_cycles(p, op) + f["out_h"] * f["out_w"] * g \
            * f["kernel"] ** 2 + 5
    if op is Op.AVGPOOL:
        g = _groups(f["channels"], lanes)
        serial = (lanes // p.post_lanes - 1) * _serial_interval(p) if p.requant_serial else 0
        # a serial unit still busy with the group before (small maps; the CONV model's wait)
        wait = max(0, _serial_interval(p) - f["in_h"] * f["in_w"] - 6 - _post_table(p)) \
            if p.requant_serial else 0
        # (per group: the group's set-up, the reads, the read register's drain and the
        # hand-over; the last group's hand-over overlaps the tail by 2)
        return insn_cycles(p) + SETUP_CYCLES + g * (
            f["in_h"] * f["in_w"] + 4 + _post_table(p) + 2 + serial) + (g - 1) * wait \
            + _post_tail(p) - 2
    if op is Op.ADD:
        words = f["pixels"] * _groups(f["channels"], lanes)
        chunks = lanes // p.add_units
        return insn_cycles(p) + SETUP_CYCLES + (words - 1) * max(chunks, 2) + chunks \
            + ADD_LATENCY + 4
    return insn_cycles(p)


#: The Winograd unit (:class:`npugen.rtl.npu.wconv.WinogradUnit`): cycles from the unit's
#: first busy cycle to its first tile read, and from the last filter taken to the
#: engine's first issue besides the filter transform's stages (``filter_transform_cycles``:
#: 1, or 3 with ``primitives=ecp5``).
WINOGRAD_FIRST_READ, WINOGRAD_LOADED = 4, 2
#: ... and from a filter's last issue to its 2x2 result taken: the engine's product
#: pipeline and drain (``engine_product_cycles`` + ``engine_drain_cycles``: 3 + 4, or
#: 5 + 6 with ``primitives=ecp5``) and 2 more (in the model's events: from the result
#: written into its slot to the unit taking it, which is ``engine_latency`` - 2).
WINOGRAD_RESULT_AFTER_DRAIN = 2
#: The engine's result slots (:attr:`npugen.rtl.winograd.engine.WinogradF23.BUFFER_DEPTH`).
WINOGRAD_SLOTS = 15


def winograd_cycles(p, f):
    """Predicted cycles of a ``CONV`` on the Winograd engine (``engine`` 1).

    :func:`winograd_schedule`'s instruction total.
    """
    return winograd_schedule(p, f)[0]


def winograd_schedule(p, f):
    """Return ``(cycles, busy)`` of a ``CONV`` on the Winograd engine.

    ``busy`` is the unit's part (its busy cycles). The model replays the unit's schedule
    (:class:`npugen.rtl.npu.wconv.WinogradUnit`), event by event, in cycles from its first
    busy cycle:

    - filters: per column (output-channel group, input channel) 9 weight reads, 2 cycles,
      one filter per output channel of the group, a cycle; the engine issues from
      :data:`WINOGRAD_LOADED` + ``filter_transform_cycles`` cycles after the last is
      taken.
    - tiles: per input group 16 reads, a cycle, then a beat per channel, 2 cycles to the
      next group's first read; the first group's beats of tile ``i`` wait for the engine to
      finish tile ``i - 2`` (two input banks).
    - the engine: per tile, ``cout`` filters of ``cin`` cycles each, from the later of its
      input complete and the tile before; a filter waits for one of
      :data:`WINOGRAD_SLOTS` result slots (freed as results are taken); results
      ``engine_product_cycles + engine_drain_cycles + WINOGRAD_RESULT_AFTER_DRAIN``
      cycles after its last issue.
    - results: taken one per cycle; after each output-channel group's last, its pixels go
      to the PostUnit one by one (the pipelined requantizers: a group other than the
      cached one first loads the table, ``lanes + 2`` cycles; then ``lanes / post_lanes``
      cycles a word), the results waiting meanwhile.
    - the end: the last word through the requantizer (:data:`REQUANT_LATENCY`) and the write (2).
    """
    lanes = p.lanes
    cin, cout = f["cin"], f["cout"]
    out_h, out_w = f["out_h"], f["out_w"]
    tiles_w = -(-out_w // 2)
    tiles = -(-out_h // 2) * tiles_w
    parts = lanes // p.post_lanes
    result = (engine_product_cycles(p.winograd) + engine_drain_cycles(p.winograd)
              + WINOGRAD_RESULT_AFTER_DRAIN)
    # filters: per column (output group, input channel) 9 reads, 2 cycles, a filter per
    # lane of the group, a cycle; the engine issues WINOGRAD_LOADED +
    # filter_transform_cycles cycles after the last
    last_filter = WINOGRAD_FIRST_READ + 11 * _groups(cout, lanes) * cin + cout * cin - 2
    loaded = last_filter + WINOGRAD_LOADED + filter_transform_cycles(p.winograd)
    released = []  # per tile: the engine done with its input bank
    mac_free = 0
    taken = []     # per result: the cycle it is taken
    collector = 0  # the first cycle a result can be taken
    post_ready = 0
    cached = None  # the output group whose table entries the PostUnit holds
    b_busy = 0     # the unit's beat register is free from this cycle
    last_word = 0
    done = 0       # the unit's last cycle of work
    read = WINOGRAD_FIRST_READ  # the next group's first read
    for i in range(tiles):
        ti, tj = divmod(i, tiles_w)
        for g in range(_groups(cin, lanes)):
            cnt = min(lanes, cin - g * lanes)
            beats = read + 17
            if g == 0 and i >= 2:
                beats = max(beats, released[i - 2])
            input_done = beats + cnt - 1
            read = input_done + 2
        for k in range(cout):
            n = len(taken)
            start = max(mac_free, loaded, input_done + 1 if k == 0 else 0,
                        taken[n - WINOGRAD_SLOTS] + 1 if n >= WINOGRAD_SLOTS else 0)
            mac_free = start + cin
            take = max(start + cin + result, collector)
            taken.append(take)
            collector = take + 1
            j, lane = divmod(k, lanes)
            count = min(lanes, cout - j * lanes)
            if lane != count - 1:
                continue
            t = take + 1  # the group is collected: its four pixels, one a cycle at most
            for e in range(4):
                t = max(t, b_busy)
                if 2 * ti + e // 2 < out_h and 2 * tj + e % 2 < out_w:
                    if cached != j:
                        feed = t + 1 + lanes + 2
                        cached = j
                    else:
                        feed = max(t + 1, post_ready)
                    last_word = b_busy = feed + parts - 1
                    post_ready = b_busy + 1
                t += 1
            collector = max(collector, t)
            # (busy until its last output group is through and the last word taken)
            done = max(t, last_word + 1)
        released.append(mac_free)
    # (from the instruction's start: the fetch and checks, then SETUP and the busy cycles)
    cycles = insn_cycles(p) + max(last_word + _post_tail(p), collector) + 2
    return cycles, done + 1


def spfc_cycles(p, f, load_beats, walk):
    """Predicted cycles of one ``SPFC`` (``walk``: :meth:`SparseEngineModel.work`).

    Terms: the instruction (:data:`INSN_CYCLES`); a load of ``load_beats`` beats (0 when
    the engine holds it) at ``cfg_words + 2`` cycles each, the engine's accumulator clear
    where it outlasts the first beat's reads, then the settle; the walk of the
    busiest PE and the engine's pipeline; the readout, ``cout`` rows, each group of
    ``lanes`` rows waiting for the PostUnit's table load and its ``lanes / post_lanes``
    feeding cycles (``lanes + 3 + lanes / post_lanes``); the requantization tail.
    """
    lanes = p.lanes
    sp = p.sparse
    # The engine's accumulator clear after its reset overlaps the first beat's reads.
    clear = max(0, max(2, sp.rows_pe_max) - cfg_words(lanes) - 1)
    load = load_beats * (cfg_words(lanes) + 2) + 5 + clear if load_beats else 0
    parts = lanes // p.post_lanes
    groups = _groups(f["cout"], lanes)
    # A serial unit takes the next group's first part SERIAL_INTERVAL cycles after the last
    # one; collecting the group's rows and loading its table entries may take less.
    table = _post_table(p)
    wait = max(0, _serial_interval(p) - lanes - table - 4) if p.requant_serial else 0
    return insn_cycles(p) + load + walk + 20 + lanes + f["cout"] + groups * (
        table + 3 + _post_feed(p, parts)) + (groups - 1) * wait + _post_tail(p)
