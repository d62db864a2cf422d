"""UART host link: any npugen block's streams behind the framed protocol of ``protocol.py``."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, ResetInserter, Shape, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..common.params import Validated, check_int
from . import protocol as P
from .link_parts import FrameReceiver, ReadCollector, ReplySender, WriteReplay, nbytes
from .uart import UartRx, UartTx

__all__ = ["HostLink", "stream_ports"]


def stream_ports(members):
    """Return ``(inputs, outputs)``: lists of ``(name, width)`` of the stream members.

    ``members`` is a signature's members (``component.signature.members``) or a dict of
    them, as a block's ``signature(params)`` returns. Port numbers in the protocol are
    positions in these lists (signature order).
    """
    inputs, outputs = [], []
    for name, member in members.items():
        if member.is_signature and isinstance(member.signature, stream.Signature):
            width = Shape.cast(member.signature.members["payload"].shape).width
            (inputs if member.flow == In else outputs).append((name, width))
    return inputs, outputs


def info_bytes(inputs, outputs, buffer_bytes):
    """Return the INFO reply's payload (see :mod:`.protocol`)."""
    out = [P.VERSION, len(inputs), len(outputs), buffer_bytes & 0xFF, buffer_bytes >> 8]
    for _, width in inputs + outputs:
        out += [width & 0xFF, width >> 8]
    return out


class _Counters(wiring.Component):
    """Cycle counters for STATUS (32 bits each, wrapping).

    Members
    -------
    in_fire, out_fire : In(1)
        A beat enters / leaves the block this cycle.
    clear : In(1)
        Forget the first input and last output (the block is reset).
    cycles, first_in, last_out : Out(32)
        Free-running count; its value at the first input beat and at the last output beat
        since ``clear``.
    """

    in_fire: In(1)
    out_fire: In(1)
    clear: In(1)
    cycles: Out(32)
    first_in: Out(32)
    last_out: Out(32)

    @property
    def values(self):
        """The three counters, in STATUS order."""
        return [self.cycles, self.first_in, self.last_out]

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        seen_in = Signal()
        m.d.sync += self.cycles.eq(self.cycles + 1)
        with m.If(self.clear):
            m.d.sync += [seen_in.eq(0), self.first_in.eq(0), self.last_out.eq(0)]
        with m.Else():
            with m.If(self.in_fire & ~seen_in):
                m.d.sync += [seen_in.eq(1), self.first_in.eq(self.cycles)]
            with m.If(self.out_fire):
                m.d.sync += self.last_out.eq(self.cycles)
        return m


class HostLink(Validated, wiring.Component):
    """A block behind a UART: load, run, read back and check status over one serial link.

    ::

        rx -> UartRx -> FrameReceiver -> (one request) -> executor -> WriteReplay  -> block
                                                             |     <- ReadCollector <-
        tx <- UartTx <- ReplySender <------------------------+ (reply)

    The pieces are in :mod:`.link_parts`. The receiver runs on its own, whatever the block
    does: a RESET always gets through (it abandons a WRITE or READ in progress), a WRITE
    whose beats the block stops taking ends after ``stall_cycles`` with an error reply, and
    every malformed frame is answered with its error and never executed.

    Parameters
    ----------
    block : wiring.Component
        Any component whose streams are its interface (every npugen top); an ``error``
        output, if present, shows in STATUS. Other members are left unconnected.
    divisor : int
        Clock cycles per UART bit (clock / baud rate), 4..65535.
    buffer_bytes : int
        Frame buffer: the largest WRITE payload and READ reply (one block RAM).
    idle_cycles : int
        Quiet line mid-frame for this long ends the frame (ERR_TIMEOUT; after an error,
        the end of the frame's rest); a READ stops collecting after an output stream has
        been idle this long. Default: 30 bit times.
    stall_cycles : int
        A WRITE ends (ERR_STALL) when the block takes no beat for this long. Default: 2**20.
    counters : bool
        STATUS's three 32-bit cycle counters (about 300 logic cells on an iCE40, with their
        snapshot register: 1,301 against 987 around a 32-bit stream). Without
        them STATUS reports them as 0 and sets flag bit 3; a block with counters of its own
        (the NPU) loses nothing.

    Members
    -------
    rx : In(1), tx : Out(1)
        The serial lines, idle high, 8N1.

    Throughput is the UART's (10 bit times per byte); the link adds two cycles per byte.
    """

    @classmethod
    def validate(cls, block, *, divisor, buffer_bytes=512, idle_cycles=None,
                 stall_cycles=1 << 20, counters=True):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        inputs, outputs = stream_ports(block.signature.members)
        if not inputs or not outputs:
            raise ValueError("block must have at least one input and one output stream")
        widest = max(nbytes(w) for _, w in inputs + outputs)
        check_int("buffer_bytes", buffer_bytes, widest, 65535)
        check_int("divisor", divisor, 4, 65535)
        check_int("stall_cycles", stall_cycles, 1, 1 << 30)
        if idle_cycles is not None:
            check_int("idle_cycles", idle_cycles, 2 * divisor, 1 << 24)
        if not isinstance(counters, bool):
            raise TypeError(f"counters must be a bool, not {type(counters).__name__}")

    def __init__(self, block, *, divisor, buffer_bytes=512, idle_cycles=None,
                 stall_cycles=1 << 20, counters=True):
        self.block = block
        self.counters = counters
        self.divisor = divisor
        self.inputs, self.outputs = stream_ports(block.signature.members)
        self.buffer_bytes = buffer_bytes
        self.idle_cycles = 30 * divisor if idle_cycles is None else idle_cycles
        self.stall_cycles = stall_cycles
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    def manifest_info(self):
        """Return timing, protocol notes and port roles for the JSON manifest."""
        ins = [name for name, _ in self.inputs]
        outs = [name for name, _ in self.outputs]
        return {
            "latency": {"uart_bit_cycles": self.divisor},
            "throughput": {"bytes_per_cycle": f"1/{10 * self.divisor}"},
            "protocol": [(f"framed UART protocol v{P.VERSION} (npugen.rtl.link.protocol); "
                          f"input ports {ins}, output ports {outs}; buffer "
                          f"{self.buffer_bytes} bytes; quiet line {self.idle_cycles} cycles; "
                          f"stall limit {self.stall_cycles} cycles; cycle counters "
                          f"{'on' if self.counters else 'off (STATUS flag bit 3)'}")],
            "roles": {"rx": "UART receive line (host to board)",
                      "tx": "UART transmit line (board to host)"},
        }

    def _buffer(self, m, rcv, wr, rd, snd):
        """Add the frame buffer and wire its users.

        The receiver and the read collector write it (never at once: the receiver writes
        only while nothing executes); the write replay and the reply sender read it.
        """
        m.submodules.buffer = buf = Memory(shape=8, depth=self.buffer_bytes, init=[])
        buf_w = buf.write_port()
        buf_r = buf.read_port()
        m.d.comb += [
            buf_w.en.eq(rcv.buf_w.en | rd.buf_w.en),
            buf_w.addr.eq(Mux(rd.busy, rd.buf_w.addr, rcv.buf_w.addr)),
            buf_w.data.eq(Mux(rd.busy, rd.buf_w.data, rcv.buf_w.data)),
            buf_r.addr.eq(Mux(wr.busy, wr.buf_addr, snd.buf_addr)),
            wr.buf_data.eq(buf_r.data), snd.buf_data.eq(buf_r.data),
        ]

    @staticmethod
    def _counters(m, ins, outs):
        """STATUS's counters: free-running cycles, first input beat, last output beat."""
        m.submodules.counters = counters = _Counters()
        m.d.comb += [counters.in_fire.eq(Cat(s.valid & s.ready for s in ins).any()),
                     counters.out_fire.eq(Cat(s.valid & s.ready for s in outs).any())]
        return counters

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        in_w = [w for _, w in self.inputs]
        out_w = [w for _, w in self.outputs]
        m.submodules.uart_rx = rx = UartRx(self.divisor)
        m.submodules.uart_tx = tx = UartTx(self.divisor)
        m.submodules.receiver = rcv = FrameReceiver(
            in_w, out_w, buffer_bytes=self.buffer_bytes, idle_cycles=self.idle_cycles)
        m.submodules.write_replay = wr = WriteReplay(
            in_w, buffer_bytes=self.buffer_bytes, stall_cycles=self.stall_cycles)
        m.submodules.read_collector = rd = ReadCollector(
            out_w, buffer_bytes=self.buffer_bytes, idle_cycles=self.idle_cycles)
        info = info_bytes(self.inputs, self.outputs, self.buffer_bytes)
        status_bytes = max(P.STATUS_BYTES, len(info))
        m.submodules.sender = snd = ReplySender(buffer_bytes=self.buffer_bytes,
                                                status_bytes=status_bytes)
        block_reset = Signal()
        m.submodules.block = ResetInserter(block_reset)(self.block)
        blk = self.block
        ins = [getattr(blk, name) for name, _ in self.inputs]
        outs = [getattr(blk, name) for name, _ in self.outputs]
        wiring.connect(m, rx.o, rcv.rx)
        wiring.connect(m, snd.tx, tx.i)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]

        self._buffer(m, rcv, wr, rd, snd)
        # The block's streams.
        for n, s in enumerate(ins):
            m.d.comb += [s.valid.eq(wr.valid[n]), wr.ready[n].eq(s.ready),
                         s.payload.eq(wr.beat[:len(Value.cast(s.payload))])]
        for n, s in enumerate(outs):
            m.d.comb += [rd.valid[n].eq(s.valid), s.ready.eq(rd.ready[n])]
        req = Signal.like(rcv.frame.payload)  # the request being executed
        m.d.comb += rd.data.eq(Array(Value.cast(s.payload) for s in outs)[req.port])
        if self.counters:
            counters = self._counters(m, ins, outs)
            values, clear = counters.values, counters.clear
        else:
            values, clear = [Const(0, 32)] * 3, Signal()
        bad_frame, stalled = Signal(), Signal()
        with m.If(rcv.bad):
            m.d.sync += bad_frame.eq(1)
        block_error = getattr(blk, "error", Const(0, 1))
        flags = Cat(block_error, bad_frame, stalled, Const(not self.counters, 1))

        # The executor: one request at a time, then its reply.
        # (a reply's length and byte count never exceed the buffer or the status bytes)
        most = max(self.buffer_bytes, status_bytes)
        r_cmd, r_port, r_len, r_count = (Signal(8), Signal(8), Signal(range(most + 1)),
                                         Signal(range(most + 1)))
        # STATUS's snapshot (flags and counters; the counters move on while it goes out), or
        # INFO's constant bytes
        r_flags = Signal(len(flags))
        r_values = Signal(96) if self.counters else Const(0, 96)
        r_info = Signal()
        r_from_status = Signal()
        r_status = Mux(r_info, Cat(Const(b, 8) for b in info),
                       Cat(r_flags, Const(0, 8 - len(flags)), r_values))
        reset_count = Signal(2)
        m.d.comb += [
            rcv.may_write.eq(0),
            snd.seq.eq(req.seq), snd.cmd.eq(r_cmd), snd.port.eq(r_port), snd.length.eq(r_len),
            snd.count.eq(r_count), snd.from_status.eq(r_from_status), snd.status.eq(r_status),
            # The request being executed (``req``, written as the executor takes it; the
            # replay and the collector read these from the next cycle on). The sender's
            # fields above are registers that hold still while it sends.
            wr.port.eq(req.port), wr.length.eq(req.length),
            rd.port.eq(req.port), rd.length.eq(req.length),
        ]

        def reply(m, cmd, port=0, length=0, count=0, status=None):
            """Reply next; ``status``: None, "status" (take the snapshot) or "info"."""
            m.d.sync += [r_cmd.eq(cmd), r_port.eq(port), r_len.eq(length), r_count.eq(count),
                         r_from_status.eq(status is not None), r_info.eq(status == "info")]
            if status == "status":
                m.d.sync += r_flags.eq(flags)
                if self.counters:
                    m.d.sync += r_values.eq(Cat(*values))
            m.next = "REPLY"

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [rcv.may_write.eq(~rcv.frame.valid), rcv.frame.ready.eq(1)]
                with m.If(rcv.frame.valid):
                    f = rcv.frame.payload
                    m.d.sync += req.eq(f)
                    with m.If(f.error != 0):
                        reply(m, P.REPLY_ERROR, port=f.error)
                    with m.Elif(f.cmd == P.CMD_WRITE):
                        m.d.comb += wr.start.eq(1)
                        m.next = "WRITE"
                    with m.Elif(f.cmd == P.CMD_READ):
                        m.d.comb += rd.start.eq(1)
                        m.next = "READ"
                    with m.Elif(f.cmd == P.CMD_STATUS):
                        m.d.sync += [bad_frame.eq(0), stalled.eq(0)]
                        reply(m, P.CMD_STATUS | P.REPLY, length=P.STATUS_BYTES,
                              count=P.STATUS_BYTES, status="status")
                    with m.Elif(f.cmd == P.CMD_INFO):
                        reply(m, P.CMD_INFO | P.REPLY, length=len(info), count=len(info),
                              status="info")
                    with m.Else():  # RESET
                        m.d.sync += reset_count.eq(3)
                        m.next = "RESET"
            with m.State("WRITE"):
                with m.If(wr.done):
                    with m.If(wr.stalled):
                        m.d.sync += stalled.eq(1)
                        reply(m, P.REPLY_ERROR, port=P.ERR_STALL, length=wr.delivered)
                    with m.Else():
                        reply(m, P.CMD_WRITE | P.REPLY, port=req.port)
                with m.If(rcv.abort):
                    m.d.comb += wr.abort.eq(1)
                    m.next = "IDLE"
            with m.State("READ"):
                with m.If(rd.done):
                    reply(m, P.CMD_READ | P.REPLY, port=req.port, length=rd.beats,
                          count=rd.nbytes)
                with m.If(rcv.abort):
                    m.d.comb += rd.abort.eq(1)
                    m.next = "IDLE"
            with m.State("RESET"):
                m.d.comb += [block_reset.eq(1), clear.eq(1)]
                m.d.sync += reset_count.eq(reset_count - 1)
                with m.If(reset_count == 0):
                    reply(m, P.CMD_RESET | P.REPLY)
            with m.State("REPLY"):
                with m.If(~snd.busy):
                    m.d.comb += snd.start.eq(1)
                    m.next = "SENDING"
            with m.State("SENDING"):
                with m.If(~snd.busy):
                    m.next = "IDLE"
        return m
