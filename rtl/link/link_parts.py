"""The pieces of :class:`~.host_link.HostLink`: receiver, replay, collector, sender.

::

    rx bytes -> FrameReceiver --(payload)--> buffer --> WriteReplay --> block input streams
                    |  (one checked request at a time)      ^
                    v                                       |
               HostLink's executor ----------------------> ReadCollector <-- block outputs
                    |                                          |
                    v                                          v (results)
               ReplySender <-- buffer / status ---------------+--> tx bytes

Every piece goes back to idle on its own in bounded time: the receiver on a quiet line, the
write replay when the block stops taking beats, the read collector when the block stops
producing them; nothing waits on the block forever.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import crc, data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from . import protocol as P

__all__ = ["FrameReceiver", "ReadCollector", "ReplySender", "WriteReplay", "frame_layout",
           "nbytes"]

#: CRC-16/CCITT-FALSE, one byte per cycle.
CRC16 = crc.catalog.CRC16_CCITT_FALSE(data_width=8)


def nbytes(width):
    """Bytes per beat of a ``width``-bit payload."""
    return -(-width // 8)


def frame_layout(buffer_bytes):
    """Return the layout of a checked request: seq, cmd, port, length, error code (0: ok).

    A checked request's ``length`` is at most ``buffer_bytes`` (beats of one byte at most
    fill the buffer; STATUS, RESET and INFO have none), so it is that narrow.
    """
    return data.StructLayout({"seq": 8, "cmd": 8, "port": 8, "length": range(buffer_bytes + 1),
                              "error": 8})


def _buffer_write(buffer_bytes):
    return data.StructLayout({"en": 1, "addr": range(buffer_bytes), "data": 8})


def _abandon_on(m, abort):
    """In an FSM state: go back to IDLE when ``abort`` is high (this takes priority)."""
    with m.If(abort):
        m.next = "IDLE"


def _table(values, index, width=16):
    """``values[index]`` for a port number, 1 past the end (and above) reading the last+1."""
    return Array(Const(v, width) for v in [*values, values[-1]])[index]


class HeaderCheck(wiring.Component):
    """Checks a request header (combinational): the error code, or the payload's size.

    Members
    -------
    seq, cmd, port : In(8), length : In(16)
    error : Out(8)
        0, or ERR_COMMAND (unknown command, ``seq`` above 127), ERR_PORT (no such port; a
        STATUS, RESET or INFO with a port other than 0), ERR_LENGTH (0 beats, more than the
        buffer holds, or a STATUS, RESET or INFO with a length).
    payload_bytes : Out(16)
        A WRITE's payload size (``length`` x the port's bytes per beat); 0 otherwise.
    """

    def __init__(self, in_widths, out_widths, *, buffer_bytes):
        self._in = [nbytes(w) for w in in_widths]
        self._out = [nbytes(w) for w in out_widths]
        self._buffer_bytes = buffer_bytes
        super().__init__({"seq": In(8), "cmd": In(8), "port": In(8), "length": In(16),
                          "error": Out(8), "payload_bytes": Out(16)})

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        port, length = self.port, self.length
        in_cap = _table([self._buffer_bytes // b for b in self._in], port)
        out_cap = _table([self._buffer_bytes // b for b in self._out], port)
        in_bpb = _table(self._in, port, 8)

        def fields(port_ok, length_ok):
            with m.If(self.seq > P.SEQ_MAX):
                m.d.comb += self.error.eq(P.ERR_COMMAND)
            with m.Elif(~port_ok):
                m.d.comb += self.error.eq(P.ERR_PORT)
            with m.Elif(~length_ok):
                m.d.comb += self.error.eq(P.ERR_LENGTH)

        with m.Switch(self.cmd):
            with m.Case(P.CMD_WRITE):
                fields(port < len(self._in), (length != 0) & (length <= in_cap))
                m.d.comb += self.payload_bytes.eq(length * in_bpb)
            with m.Case(P.CMD_READ):
                fields(port < len(self._out), (length != 0) & (length <= out_cap))
            with m.Case(P.CMD_STATUS, P.CMD_RESET, P.CMD_INFO):
                fields(port == 0, length == 0)
            with m.Default():
                m.d.comb += self.error.eq(P.ERR_COMMAND)
        return m


class FrameReceiver(wiring.Component):
    """Parses request frames from the UART's bytes, checks them, and hands them on one by one.

    Every byte is taken as it arrives (``rx.ready`` is always 1). A frame's header is
    checked as soon as it is complete (sequence number, command, port, length); a WRITE's
    payload goes into the buffer; the CRC is checked after its two bytes. A good frame, or
    the error of a bad one, is posted to ``frame`` (a one-entry mailbox). After an error in
    mid-frame the receiver drops bytes until the line has been quiet for ``idle_cycles``
    and only then posts the error, so the rest of a bad frame never starts a new one. A
    frame that completes while the mailbox is full is dropped (``bad`` pulses), except a
    good RESET, which replaces the mailbox's request and pulses ``abort``.

    Parameters
    ----------
    in_widths, out_widths : list of int
        Payload widths of the block's input and output streams (port order).
    buffer_bytes : int
    idle_cycles : int

    Members
    -------
    rx : In(stream.Signature(8))
    frame : Out(stream.Signature(frame_layout(buffer_bytes)))
    buf_w : Out(StructLayout{en, addr, data})
        Payload bytes, written only while ``may_write`` was high when the payload started.
    may_write : In(1)
        The executor is idle and the mailbox empty: the buffer is free.
    abort : Out(1)
        A good RESET arrived while a request was pending or running.
    bad : Out(1)
        A bad or dropped frame (one cycle).
    idle : Out(1)
        Waiting for a sync byte (no frame in progress). A quiet line brings the receiver
        here within ``idle_cycles + 2`` cycles from any state (proved in the formal tier).
    consistent : Out(1)
        The state register holds one of its states and, in a frame, the quiet-line counter is
        at most ``idle_cycles``. Always 1; the invariant that makes the formal proof inductive.
    """

    def __init__(self, in_widths, out_widths, *, buffer_bytes, idle_cycles):
        self._in = [nbytes(w) for w in in_widths]
        self._out = [nbytes(w) for w in out_widths]
        self._buffer_bytes = buffer_bytes
        self._idle_cycles = idle_cycles
        super().__init__({
            "rx": In(stream.Signature(8)),
            "frame": Out(stream.Signature(frame_layout(buffer_bytes))),
            "buf_w": Out(_buffer_write(buffer_bytes)),
            "may_write": In(1), "abort": Out(1), "bad": Out(1), "idle": Out(1),
            "consistent": Out(1),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        m.submodules.crc = check = crc.Processor(CRC16)
        byte = self.rx.payload
        got = Signal()
        hold = Signal()  # VALIDATE and CHECK: a byte waits in the UART (it holds one)
        m.d.comb += [self.rx.ready.eq(~hold), got.eq(self.rx.valid & ~hold),
                     check.data.eq(byte)]
        seq, cmd, port = Signal(8), Signal(8), Signal(8)
        length = Signal(16)
        hidx = Signal(range(P.HEADER_BYTES))
        count = Signal(range(self._buffer_bytes + 2))  # payload bytes, then CRC bytes
        total = Signal.like(count)
        owned = Signal()  # the payload may go into the buffer
        code = Signal(8)
        quiet = Signal(range(self._idle_cycles + 1))
        m.submodules.header = header = HeaderCheck(
            [8 * b for b in self._in], [8 * b for b in self._out],
            buffer_bytes=self._buffer_bytes)
        m.d.comb += [header.seq.eq(seq), header.cmd.eq(cmd), header.port.eq(port),
                     header.length.eq(length)]
        with m.If(self.frame.valid & self.frame.ready):
            m.d.sync += self.frame.valid.eq(0)

        def post(m, error):
            """Hand the frame (or its error) to the executor; drop it if the mailbox is full."""
            reset = (error == 0) & (cmd == P.CMD_RESET)
            with m.If(~self.frame.valid | reset):
                m.d.sync += [self.frame.valid.eq(1), self.frame.payload.seq.eq(seq),
                             self.frame.payload.cmd.eq(cmd), self.frame.payload.port.eq(port),
                             self.frame.payload.length.eq(length),
                             self.frame.payload.error.eq(error)]
                m.d.comb += self.abort.eq(reset & (self.frame.valid | ~self.may_write))
            with m.Else():
                m.d.comb += self.bad.eq(1)
            with m.If(error != 0):
                m.d.comb += self.bad.eq(1)
            m.next = "SYNC"

        def quiet_timeout(m):
            m.d.sync += quiet.eq(Mux(got, 0, quiet + 1))
            with m.If(~got & (quiet == self._idle_cycles)):
                post(m, P.ERR_TIMEOUT)

        with m.FSM() as fsm:
            m.d.comb += self.idle.eq(fsm.ongoing("SYNC"))
            with m.State("SYNC"):
                with m.If(got & (byte == P.SYNC)):
                    m.d.comb += check.start.eq(1)
                    m.d.sync += [hidx.eq(0), quiet.eq(0)]
                    m.next = "HEADER"
            with m.State("HEADER"):
                quiet_timeout(m)
                with m.If(got):
                    with m.If((hidx == 0) & (byte == P.SYNC)):
                        m.d.comb += check.start.eq(1)  # a stray sync byte: start again
                    with m.Else():
                        m.d.comb += check.valid.eq(1)
                        m.d.sync += hidx.eq(hidx + 1)
                        with m.Switch(hidx):
                            with m.Case(0):
                                m.d.sync += seq.eq(byte)
                            with m.Case(1):
                                m.d.sync += cmd.eq(byte)
                            with m.Case(2):
                                m.d.sync += port.eq(byte)
                            with m.Case(3):
                                m.d.sync += length[:8].eq(byte)
                            with m.Case(4):
                                m.d.sync += length[8:].eq(byte)
                                m.next = "VALIDATE"
            with m.State("VALIDATE"):
                # The header is complete: check it; a bad header drains the rest of the frame.
                m.d.comb += hold.eq(1)
                m.d.sync += [count.eq(0), owned.eq(self.may_write & ~self.frame.valid),
                             total.eq(header.payload_bytes), code.eq(header.error)]
                m.next = "PAYLOAD"
                with m.If(header.error != 0):
                    m.next = "DRAIN"
            with m.State("PAYLOAD"):
                # Payload bytes (if any), then the two CRC bytes.
                quiet_timeout(m)
                with m.If(got):
                    m.d.comb += check.valid.eq(1)
                    m.d.sync += count.eq(count + 1)
                    with m.If(count < total):
                        m.d.comb += [self.buf_w.en.eq(owned), self.buf_w.addr.eq(count),
                                     self.buf_w.data.eq(byte)]
                    with m.If(count == total + 1):
                        m.next = "CHECK"
            with m.State("CHECK"):
                # The CRC register holds the residue one cycle after the last byte.
                m.d.comb += hold.eq(1)
                with m.If(~check.match_detected):
                    m.d.sync += [code.eq(P.ERR_CRC), quiet.eq(0)]
                    m.next = "DRAIN"
                with m.Elif((cmd == P.CMD_WRITE) & ~owned):
                    post(m, P.ERR_BUSY)
                with m.Elif((cmd != P.CMD_RESET) & self.frame.valid):
                    post(m, P.ERR_BUSY)
                with m.Else():
                    post(m, 0)
            with m.State("DRAIN"):
                # Drop bytes until the line is quiet, then report the error.
                m.d.sync += quiet.eq(Mux(got, 0, quiet + 1))
                with m.If(~got & (quiet == self._idle_cycles)):
                    post(m, code)
        states = ("SYNC", "HEADER", "VALIDATE", "PAYLOAD", "CHECK", "DRAIN")
        legal = 0
        for state in states:
            legal = legal | fsm.ongoing(state)
        # (In SYNC the counter is unused and may sit one past the limit.)
        m.d.comb += self.consistent.eq(legal & (self.idle | (quiet <= self._idle_cycles)))
        return m


class WriteReplay(wiring.Component):
    """Replays a WRITE's buffered beats into the block's input stream ``port``.

    Reads the beat's bytes from the buffer (two cycles per byte), then offers the beat
    until the block takes it. If the block takes no beat for ``stall_cycles``, the WRITE
    ends with ``stalled``: nothing waits on the block forever.

    Parameters
    ----------
    in_widths : list of int
    buffer_bytes, stall_cycles : int

    Members
    -------
    start : In(1), port : In(8), length : In(range(buffer_bytes + 1))
        Begin replaying ``length`` beats to input ``port``. ``port`` and ``length`` are
        read from the cycle after ``start`` on, so the caller holds them while ``busy``
        (they are not copied).
    abort : In(1)
        Stop now (withdraw the beat).
    buf_addr : Out, buf_data : In(8)
        Buffer read port (registered read).
    beat : Out(max width), valid : Out(n_in), ready : In(n_in)
        The beat, and its ``valid`` for port p (bit p), the block's ``ready`` per port.
    busy : Out(1)
    done : Out(1)
        One cycle when the replay ends, with ``stalled`` and ``delivered`` (beats taken).
    """

    def __init__(self, in_widths, *, buffer_bytes, stall_cycles):
        self._widths = list(in_widths)
        self._stall_cycles = stall_cycles
        self._buffer_bytes = buffer_bytes
        super().__init__({
            "start": In(1), "port": In(8), "length": In(range(buffer_bytes + 1)),
            "abort": In(1), "buf_addr": Out(range(buffer_bytes)), "buf_data": In(8),
            "beat": Out(8 * max(nbytes(w) for w in in_widths)),
            "valid": Out(len(in_widths)), "ready": In(len(in_widths)),
            "busy": Out(1), "done": Out(1), "stalled": Out(1),
            "delivered": Out(range(buffer_bytes + 1)),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        in_bytes = [nbytes(w) for w in self._widths]
        max_in = max(in_bytes)
        port, length = self.port, self.length  # held by the caller
        bpb = _table(in_bytes, port, 8)
        addr = Signal(range(self._buffer_bytes + 1))
        bib = Signal(range(max_in + 1))
        shift = Signal(8 * max_in)
        wait = Signal(range(self._stall_cycles + 1))
        stalled = Signal()
        taken = (self.valid & self.ready).any()
        m.d.comb += self.buf_addr.eq(addr)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [addr.eq(0), bib.eq(0), self.delivered.eq(0), stalled.eq(0)]
                    m.next = "READ"
            with m.State("READ"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += addr.eq(addr + 1)
                m.next = "SHIFT"
                _abandon_on(m, self.abort)
            with m.State("SHIFT"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [shift.eq(Cat(shift[8:], self.buf_data)), bib.eq(bib + 1)]
                with m.If(bib == bpb - 1):
                    m.d.sync += [bib.eq(0), wait.eq(0)]
                    m.next = "OFFER"
                with m.Else():
                    m.next = "READ"
                _abandon_on(m, self.abort)
            with m.State("OFFER"):
                m.d.comb += self.busy.eq(1)
                # The beat's bytes end at the top of the shift register.
                for n, nb in enumerate(in_bytes):
                    with m.If(port == n):
                        m.d.comb += [self.valid[n].eq(~self.abort),
                                     self.beat.eq(shift[8 * (max_in - nb):])]
                m.d.sync += wait.eq(wait + 1)
                with m.If(taken):
                    m.d.sync += self.delivered.eq(self.delivered + 1)
                    with m.If(self.delivered == length - 1):
                        m.next = "DONE"
                    with m.Else():
                        m.next = "READ"
                with m.Elif(wait == self._stall_cycles):
                    m.d.sync += stalled.eq(1)
                    m.next = "DONE"
                _abandon_on(m, self.abort)
            with m.State("DONE"):
                m.d.comb += [self.busy.eq(1), self.done.eq(1), self.stalled.eq(stalled)]
                m.next = "IDLE"
        return m


class ReadCollector(wiring.Component):
    """Collects up to ``length`` beats of the block's output stream ``port`` into the buffer.

    Takes a beat whenever the block offers one, then writes its bytes (one per cycle). Stops
    with ``length`` beats, or when the stream has been idle for ``idle_cycles``.

    Members
    -------
    start : In(1), port : In(8), length : In(range(buffer_bytes + 1))
        Begin collecting from output ``port``. ``port`` and ``length`` are read from the
        cycle after ``start`` on, so the caller holds them while ``busy`` (not copied).
    abort : In(1)
    data : In(max width), valid : In(n_out), ready : Out(n_out)
        The block's output payloads (selected by the top), valids and readies per port.
    buf_w : Out(StructLayout{en, addr, data})
    busy, done : Out(1)
        ``done``: one cycle when the collection ends.
    beats, nbytes : Out(range(buffer_bytes + 1))
        At ``done``: the beats collected and their bytes.
    """

    def __init__(self, out_widths, *, buffer_bytes, idle_cycles):
        self._widths = list(out_widths)
        self._idle_cycles = idle_cycles
        self._buffer_bytes = buffer_bytes
        super().__init__({
            "start": In(1), "port": In(8), "length": In(range(buffer_bytes + 1)),
            "abort": In(1), "data": In(8 * max(nbytes(w) for w in out_widths)),
            "valid": In(len(out_widths)), "ready": Out(len(out_widths)),
            "buf_w": Out(_buffer_write(buffer_bytes)), "busy": Out(1), "done": Out(1),
            "beats": Out(range(buffer_bytes + 1)), "nbytes": Out(range(buffer_bytes + 1)),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        out_bytes = [nbytes(w) for w in self._widths]
        port, length = self.port, self.length  # held by the caller
        bpb = _table(out_bytes, port, 8)
        bib = Signal(range(max(out_bytes) + 1))
        shift = Signal(len(self.data))
        quiet = Signal(range(self._idle_cycles + 1))
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [quiet.eq(0), self.beats.eq(0), self.nbytes.eq(0)]
                    m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += quiet.eq(quiet + 1)
                taken = Signal()
                for n in range(len(out_bytes)):
                    with m.If(port == n):
                        m.d.comb += [self.ready[n].eq(~self.abort), taken.eq(self.valid[n])]
                with m.If(taken):
                    m.d.sync += [shift.eq(self.data), quiet.eq(0), bib.eq(0)]
                    m.next = "STORE"
                with m.Elif(quiet == self._idle_cycles):
                    m.next = "DONE"
                _abandon_on(m, self.abort)
            with m.State("STORE"):
                m.d.comb += [self.busy.eq(1), self.buf_w.en.eq(1),
                             self.buf_w.addr.eq(self.nbytes), self.buf_w.data.eq(shift[:8])]
                m.d.sync += [self.nbytes.eq(self.nbytes + 1), shift.eq(shift >> 8),
                             bib.eq(bib + 1)]
                with m.If(bib == bpb - 1):
                    m.d.sync += self.beats.eq(self.beats + 1)
                    with m.If(self.beats == length - 1):
                        m.next = "DONE"
                    with m.Else():
                        m.next = "WAIT"
                _abandon_on(m, self.abort)
            with m.State("DONE"):
                m.d.comb += [self.busy.eq(1), self.done.eq(1)]
                m.next = "IDLE"
        return m


class ReplySender(wiring.Component):
    """Sends one reply frame: sync, header, payload (buffer or status), CRC.

    One byte every two cycles at most (the buffer's read takes a cycle); the UART sets the
    pace. The CRC covers ``seq`` to the end of the payload, as in the requests.

    Members
    -------
    start : In(1)
        Send a reply with ``seq``, ``cmd``, ``port``, ``length`` and ``count`` payload bytes
        taken from the buffer, or from ``status`` when ``from_status``.
    seq, cmd, port : In(8), length : In(16), count : In(range(max(buffer, status) + 1))
    from_status : In(1)
    status : In(8 * status_bytes)
        The reply's fields. They are read while the reply goes out, so the caller holds
        them from ``start`` until ``busy`` falls (they are not copied).
    buf_addr : Out, buf_data : In(8)
    tx : Out(stream.Signature(8))
    busy : Out(1)
    """

    def __init__(self, *, buffer_bytes, status_bytes):
        self._status_bytes = status_bytes
        self._count_max = max(buffer_bytes, status_bytes)
        super().__init__({
            "start": In(1), "seq": In(8), "cmd": In(8), "port": In(8), "length": In(16),
            "count": In(range(self._count_max + 1)), "from_status": In(1),
            "status": In(8 * status_bytes),
            "buf_addr": Out(range(buffer_bytes)), "buf_data": In(8),
            "tx": Out(stream.Signature(8)), "busy": Out(1),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        m.submodules.crc = gen = crc.Processor(CRC16)
        seq, cmd, port = self.seq, self.cmd, self.port  # held by the caller
        length, count = self.length, self.count
        from_status, status = self.from_status, self.status
        # The frame in four parts; ``idx`` counts bytes within the header and the payload.
        head, payload, crc_hi, crc_lo = range(4)
        part = Signal(2)
        idx = Signal(range(max(self._count_max, P.HEADER_BYTES + 1)))
        out = Signal(8)
        header = Array([Const(P.SYNC, 8), seq, cmd, port, length[:8], length[8:]])
        status_bytes = Array(status[8 * k:8 * (k + 1)] for k in range(self._status_bytes))
        last = Signal()  # idx is the part's last byte
        m.d.comb += [self.buf_addr.eq(idx), gen.data.eq(out)]
        with m.Switch(part):
            with m.Case(head):
                m.d.comb += [out.eq(header[idx[:3]]), last.eq(idx == P.HEADER_BYTES)]
            with m.Case(payload):
                byte = status_bytes[idx[:bits_for(self._status_bytes - 1)]]
                m.d.comb += [out.eq(Mux(from_status, byte, self.buf_data)),
                             last.eq(idx == count - 1)]
            with m.Case(crc_hi):
                m.d.comb += out.eq(gen.crc[8:])
            with m.Case(crc_lo):
                m.d.comb += out.eq(gen.crc[:8])
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [idx.eq(0), part.eq(head)]
                    m.d.comb += gen.start.eq(1)
                    m.next = "ADDRESS"
            with m.State("ADDRESS"):
                # The buffer byte at idx is read; the byte goes out next cycle.
                m.d.comb += self.busy.eq(1)
                m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [self.busy.eq(1), self.tx.valid.eq(1), self.tx.payload.eq(out)]
                with m.If(self.tx.ready):
                    m.d.comb += gen.valid.eq(((part == head) & (idx != 0)) | (part == payload))
                    m.d.sync += idx.eq(idx + 1)
                    m.next = "ADDRESS"
                    with m.Switch(part):
                        with m.Case(head):
                            with m.If(last):
                                m.d.sync += [idx.eq(0), part.eq(Mux(count == 0, crc_hi,
                                                                    payload))]
                        with m.Case(payload):
                            with m.If(last):
                                m.d.sync += part.eq(crc_hi)
                        with m.Case(crc_hi):
                            m.d.sync += part.eq(crc_lo)
                        with m.Case(crc_lo):
                            m.next = "IDLE"
        return m
