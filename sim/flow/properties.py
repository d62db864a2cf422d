"""Formal property wrappers: a design under proof plus ``Assert``/``Assume`` statements.

Written with Amaranth's public API only: the wrappers see the design through its ports, and
where a proof needs an internal invariant the design exposes it as a documented signal.
"""

from amaranth.hdl import Assert, Assume, Cat, Const, Module, ResetSignal, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In

from npugen.rtl.common.result_buffer import ResultBuffer
from npugen.rtl.link import protocol as P
from npugen.rtl.link.link_parts import FrameReceiver
from npugen.rtl.sparse.decoder import RelIndexDecoder
from npugen.rtl.sparse.engine_parts import ActivationInput

__all__ = ["ActivationRules", "CreditRules", "DecoderRows", "FrameRules", "StreamRules",
           "after_reset", "crc16_residue", "stream_ports"]


def stream_ports(component):
    """``[(name, flow, interface)]`` of ``component``'s stream members."""
    out = []
    for name, member in component.signature.members.items():
        if member.is_signature and isinstance(member.signature, stream.Signature):
            out.append((name, member.flow, getattr(component, name)))
    return out


def after_reset(m):
    """Return a signal that is 1 in every cycle after the first that follows no reset.

    These are the cycles in which the stream rules apply (a reset drops ``valid``).
    """
    past_rst = Signal(init=1)
    m.d.sync += past_rst.eq(ResetSignal())
    return ~past_rst


class StreamRules(wiring.Component):
    """``dut`` with the stream rules on every stream port.

    Inputs: assumed (the environment keeps ``valid`` and the payload until the transfer).
    Outputs: asserted (``valid``, once high without ``ready``, stays high with the same
    payload until the transfer). ``rst`` is free: the rules restart after every reset.
    Every port of ``dut`` is a port of the wrapper, so the solver drives inputs freely.
    ``exempt`` names ports whose documented protocol differs (each caller says why).
    """

    def __init__(self, dut, *, exempt=()):
        self.dut = dut
        self.exempt = tuple(exempt)
        super().__init__(dict(dut.signature.members.items()))

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        m.submodules.dut = dut = self.dut
        for (_, member, outer), (_, _, inner) in zip(self.signature.flatten(self),
                                                      dut.signature.flatten(dut), strict=True):
            if member.flow == In:
                m.d.comb += inner.eq(outer)
            else:
                m.d.comb += outer.eq(inner)
        live = after_reset(m)
        for name, flow, port in stream_ports(dut):
            if name in self.exempt:
                continue
            valid, ready, payload = port.valid, port.ready, Value.cast(port.payload).as_unsigned()
            prev_valid = Signal(name=f"{name}_prev_valid")
            prev_ready = Signal(name=f"{name}_prev_ready")
            prev_payload = Signal(len(payload), name=f"{name}_prev_payload")
            m.d.sync += [prev_valid.eq(valid), prev_ready.eq(ready), prev_payload.eq(payload)]
            waiting = live & prev_valid & ~prev_ready
            kept = valid & (payload == prev_payload)
            rule = (Assume if flow == In else Assert)(~waiting | kept, f"{name} kept")
            m.d.comb += rule
        return m


class CreditRules(wiring.Component):
    """A :class:`ResultBuffer` of any ``depth`` and ``max_reserve`` with its producer's contract.

    The solver plays a producer that keeps the contract (``reserve <= max_reserve``,
    ``reserve <= free``, a write only into a reserved slot) and a consumer with a free
    ``ready``. Asserted in every cycle: credits are conserved (``free`` + reserved-but-
    unwritten + ``level`` == ``depth``), ``level <= depth`` (no overflow), ``can_reserve``
    only with ``max_reserve`` slots free, the buffer's ``consistent`` invariant, and words
    written minus words taken == ``level`` (none lost, none duplicated).

    With ``tagged``, every written word carries its write number, and each word taken must
    carry the next number: no word lost, duplicated, reordered or altered. The induction of
    that property would need the storage's contents, so it is checked by bounded model
    checking from reset instead (long enough for the pointers to wrap twice).
    """

    def __init__(self, depth, max_reserve, *, tagged=False):
        self.depth, self.max_reserve, self.tagged = depth, max_reserve, tagged
        self.buf = ResultBuffer(data.ArrayLayout(8, 1), depth=depth, max_reserve=max_reserve)
        super().__init__({"reserve": In(range(max_reserve + 1)), "w_en": In(1),
                          "w_data": In(8), "ready": In(1)})

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        m.submodules.buf = buf = self.buf
        depth = self.depth
        outstanding = Signal(range(2 * depth + 2))  # reserved, not yet written
        width = max(8, depth.bit_length() + 1)  # the counters' difference exceeds no depth
        writes, pops = Signal(width), Signal(width)
        pop = buf.o.valid & buf.o.ready
        m.d.comb += [buf.reserve.eq(self.reserve), buf.w_en.eq(self.w_en),
                     buf.o.ready.eq(self.ready),
                     buf.w_data.eq(writes[:8] if self.tagged else self.w_data)]
        m.d.comb += [Assume(self.reserve <= self.max_reserve, "reserve in range"),
                     Assume(self.reserve <= buf.free, "reserve only free slots"),
                     Assume(~self.w_en | (outstanding != 0), "write only reserved slots")]
        m.d.sync += [outstanding.eq(outstanding + self.reserve - self.w_en),
                     writes.eq(writes + self.w_en), pops.eq(pops + pop)]
        m.d.comb += [
            Assert(buf.free + outstanding + buf.level == depth, "credits conserved"),
            Assert(buf.level <= depth, "no overflow"),
            Assert(buf.consistent, "bookkeeping consistent"),
            Assert(~buf.can_reserve | (buf.free >= self.max_reserve), "can_reserve is safe"),
            Assert((writes - pops)[:width] == buf.level, "no word lost or duplicated"),
        ]
        if self.tagged:
            with m.If(pop):
                m.d.comb += Assert(buf.o.payload[0] == pops[:8], "words leave in order, intact")
        return m


class DecoderRows(StreamRules):
    """A :class:`RelIndexDecoder` (any entry sequence, a fixed ``rows``): no row at or past it.

    ``rows`` is held between resets and at most ``rows_max`` (the engine's
    ``ConfigWriter`` rejects larger values with its sticky error).

    Asserted with the stream rules: every output pair's global row (``row * n_pe + pe``) is
    below ``rows``, and the decoder's ``consistent`` invariant holds.
    """

    def __init__(self, params, pe):
        super().__init__(RelIndexDecoder(params, pe))

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = super().elaborate(platform)
        dut = self.dut
        p = dut.params
        rows_q = Signal.like(self.rows)
        m.d.sync += rows_q.eq(self.rows)
        m.d.comb += [Assume(~after_reset(m) | (self.rows == rows_q), "rows is configuration"),
                     Assume(self.rows <= p.rows_max, "rows in range (the engine checks it)")]
        m.d.comb += [
            Assert(dut.consistent, "row trackers consistent"),
            Assert(~self.o.valid | (self.o.payload.row * p.n_pe + dut.pe < self.rows),
                   "no row at or past rows"),
        ]
        return m


class ActivationRules(StreamRules):
    """The sparse engine's :class:`ActivationInput` (any beats, flags and enables).

    Asserted with the stream rules: the input's ``consistent`` invariant (its registered
    handshake flags agree with what they stand for), whatever ``cols``, the lane flags
    (prefix masks, as the configuration writer makes them), ``enable``, ``accept``,
    ``queues_ready`` and ``restart`` do.
    """

    def __init__(self, params):
        # ``item`` is a broadcast whose ``valid`` follows ``queues_ready`` (documented).
        super().__init__(ActivationInput(params), exempt=("item",))

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = super().elaborate(platform)
        # The configuration writer's lane masks are prefixes (lanes below the columns).
        for name in ("first", "second", "third"):
            mask = getattr(self.col_flags, f"{name}_mask")
            m.d.comb += Assume((mask & (mask + 1)) == 0, f"{name} mask is a prefix")
        m.d.comb += Assert(self.dut.consistent, "handshake flags consistent")
        return m


def crc16_residue(m, byte_values):
    """CRC-16/CCITT-FALSE register after ``byte_values`` (Amaranth values), bit by bit.

    An independent, bitwise formulation (polynomial 0x1021, initial 0xFFFF, MSB first) used
    to check the gateware's byte-wise :mod:`amaranth.lib.crc` processor: a frame followed
    by its CRC (big-endian) leaves 0. Each byte's result is a signal of ``m`` (the
    expression would otherwise grow exponentially with the bytes).
    """
    reg = [Const(1, 1)] * 16  # reg[i] is bit i
    for byte in byte_values:
        for bit in range(7, -1, -1):
            feedback = reg[15] ^ byte[bit]
            reg = [feedback] + [reg[i - 1] ^ (feedback if i in (5, 12) else 0)
                                for i in range(1, 16)]
        step = Signal(16)
        m.d.comb += step.eq(Cat(*reg))
        reg = [step[i] for i in range(16)]
    return Cat(*reg)


class FrameRules(StreamRules):
    """The link's :class:`FrameReceiver` with its frame rules (the solver sends any bytes).

    Asserted with the stream rules on ``rx`` (``frame`` is a one-entry mailbox that a good
    RESET overwrites, so it is exempt):

    * it returns to idle: after ``idle_cycles + 2`` cycles without a byte it waits for a
      sync byte, from any state (k-induction);
    * with ``check_frames`` (bounded, from reset, ``frame.ready`` held high so that each
      posted frame is seen): a frame posted without an error code is exactly the bytes last
      received: a sync byte, the posted header, a payload of the size the header implies
      for this configuration, and a CRC that leaves a zero residue in an independent
      bitwise CRC-16. Payload bytes go into the buffer (``buf_w``) only at addresses below
      ``buffer_bytes``.
    """

    def __init__(self, in_widths, out_widths, *, buffer_bytes, idle_cycles, check_frames=False,
                 check_crc=True):
        self.in_bytes = [-(-w // 8) for w in in_widths]
        self.buffer_bytes, self.idle_cycles = buffer_bytes, idle_cycles
        self.check_frames, self.check_crc = check_frames, check_crc
        # ``frame`` is a mailbox, not a stream: a good RESET replaces a waiting request.
        super().__init__(FrameReceiver(in_widths, out_widths, buffer_bytes=buffer_bytes,
                                       idle_cycles=idle_cycles), exempt=("frame",))

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = super().elaborate(platform)
        got = self.rx.valid & self.rx.ready
        limit = self.idle_cycles + 2
        silent = Signal(range(limit + 2))  # cycles since the last byte, saturating
        with m.If(got):
            m.d.sync += silent.eq(0)
        with m.Elif(silent <= limit):
            m.d.sync += silent.eq(silent + 1)
        m.d.comb += [Assert(self.dut.consistent, "receiver state consistent"),
                     Assert((silent <= limit) | self.dut.idle, "a quiet line brings it to idle")]
        with m.If(self.buf_w.en):
            m.d.comb += Assert(self.buf_w.addr < self.buffer_bytes, "buffer write in range")
        if not self.check_frames:
            return m
        m.d.comb += Assume(self.frame.ready, "every posted frame is taken at once")
        # The last bytes received, newest first.
        longest = 1 + P.HEADER_BYTES + self.buffer_bytes + 2
        history = [Signal(8, name=f"byte_{i}") for i in range(longest)]
        count = Signal(range(longest + 1))  # how many of them are real
        with m.If(got):
            m.d.sync += [history[0].eq(self.rx.payload), count.eq(count + (count < longest))]
            m.d.sync += [history[i].eq(history[i - 1]) for i in range(1, longest)]
        # A posted frame shows up the cycle after it is posted, which is at least one cycle
        # after its last byte: in the cycle it is valid, ``history`` holds it, newest first.
        f = self.frame.payload
        with m.If(self.frame.valid & (f.error == 0)):
            fits = []
            for size in range(0, self.buffer_bytes + 1):
                n = 1 + P.HEADER_BYTES + size + 2
                frame = history[:n][::-1]  # oldest first
                header = Cat(*frame[1:1 + P.HEADER_BYTES])
                expected = (Cat(f.seq, f.cmd, f.port, f.length) == header)
                if size == 0:
                    payload_ok = f.cmd != P.CMD_WRITE
                else:
                    sizes = [f.length * b for b in self.in_bytes]
                    payload_ok = (f.cmd == P.CMD_WRITE) & (
                        Cat(*[(f.port == i) & (s == size) for i, s in enumerate(sizes)]) != 0)
                fit = (count >= n) & (frame[0] == P.SYNC) & expected & payload_ok
                if self.check_crc:
                    fit = fit & (crc16_residue(m, frame[1:]) == 0)
                fits.append(fit)
            m.d.comb += Assert(Cat(*fits) != 0, "a good frame is a whole frame with its CRC")
        return m
