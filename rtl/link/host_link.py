"""UART host link: any npugen block's streams behind the framed protocol of ``protocol.py``."""

from amaranth.hdl import Array, Cat, Const, Module, ResetInserter, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..common.params import Validated, check_int
from . import protocol as P
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


def _bytes(width):
    return -(-width // 8)


class HostLink(Validated, wiring.Component):
    """A block behind a UART: load, run, read back and check status over one serial link.

    Parameters
    ----------
    block : wiring.Component
        Any component whose streams are its interface (every npugen top); an ``error``
        output, if present, shows in STATUS. Other members are left unconnected.
    divisor : int
        Clock cycles per UART bit (clock / baud rate).
    buffer_bytes : int
        Frame buffer: the largest WRITE payload and READ reply (one block RAM).
    idle_cycles : int
        Quiet line mid-frame for this long is a timeout; a READ stops collecting after an
        output stream has been idle this long. Default: 30 bit times.

    Members
    -------
    rx : In(1), tx : Out(1)
        The serial lines, idle high, 8N1.

    Throughput is the UART's (10 bit times per byte); the link adds two cycles per byte.
    """

    @classmethod
    def validate(cls, block, *, divisor, buffer_bytes=512, idle_cycles=None):
        """Check the arguments (see :class:`~npugen.rtl.common.params.Validated`)."""
        inputs, outputs = stream_ports(block.signature.members)
        if not inputs or not outputs:
            raise ValueError("block must have at least one input and one output stream")
        widest = max(_bytes(w) for _, w in inputs + outputs)
        check_int("buffer_bytes", buffer_bytes, widest, 65535)
        check_int("divisor", divisor, 4, 65535)

    def __init__(self, block, *, divisor, buffer_bytes=512, idle_cycles=None):
        self.block = block
        self.divisor = divisor
        self.inputs, self.outputs = stream_ports(block.signature.members)
        self.buffer_bytes = buffer_bytes
        self.idle_cycles = 30 * divisor if idle_cycles is None else idle_cycles
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    def manifest_info(self):
        """Return timing, protocol notes and port roles for the JSON manifest."""
        ins = [name for name, _ in self.inputs]
        outs = [name for name, _ in self.outputs]
        return {
            "latency": {"uart_bit_cycles": self.divisor},
            "throughput": {"bytes_per_cycle": f"1/{10 * self.divisor}"},
            "protocol": [(f"framed UART protocol (npugen.rtl.link.protocol); input ports "
                          f"{ins}, output ports {outs}; buffer {self.buffer_bytes} bytes")],
            "roles": {"rx": "UART receive line (host to board)",
                      "tx": "UART transmit line (board to host)"},
        }

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        m.submodules.uart_rx = rx = UartRx(self.divisor)
        m.submodules.uart_tx = tx = UartTx(self.divisor)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]
        block_reset = Signal()
        m.submodules.block = ResetInserter(block_reset)(self.block)
        blk = self.block

        m.submodules.buffer = buf = Memory(shape=8, depth=self.buffer_bytes, init=[])
        buf_w = buf.write_port()
        buf_r = buf.read_port()

        ins = [getattr(blk, name) for name, _ in self.inputs]
        outs = [getattr(blk, name) for name, _ in self.outputs]
        in_bytes = [_bytes(w) for _, w in self.inputs]
        out_bytes = [_bytes(w) for _, w in self.outputs]
        max_in, max_out = max(in_bytes), max(out_bytes)
        n_in, n_out = len(ins), len(outs)

        # ---- counters and flags ----
        cycles = Signal(32)
        first_in = Signal(32)
        seen_in = Signal()
        last_out = Signal(32)
        bad_frame = Signal()
        clear_counters = Signal()
        m.d.sync += cycles.eq(cycles + 1)
        in_fire = Cat(s.valid & s.ready for s in ins).any()
        out_fire = Cat(s.valid & s.ready for s in outs).any()
        with m.If(clear_counters):
            m.d.sync += [seen_in.eq(0), first_in.eq(0), last_out.eq(0)]
        with m.Else():
            with m.If(in_fire & ~seen_in):
                m.d.sync += [seen_in.eq(1), first_in.eq(cycles)]
            with m.If(out_fire):
                m.d.sync += last_out.eq(cycles)
        block_error = getattr(blk, "error", Const(0, 1))

        # ---- frame state ----
        cmd = Signal(8)
        port = Signal(8)
        length = Signal(16)
        check = Signal(8)
        hidx = Signal(range(4))
        beat = Signal(16)
        bib = Signal(range(max(max_in, max_out) + 1))  # byte in beat
        addr = Signal(range(self.buffer_bytes + 1))
        quiet = Signal(range(self.idle_cycles + 1))
        err = Signal(8)
        shift_in = Signal(8 * max_in)
        shift_out = Signal(8 * max_out)
        reset_count = Signal(2)

        in_bpb = Array(Const(b, 8) for b in in_bytes + [1])[port]
        out_bpb = Array(Const(b, 8) for b in out_bytes + [1])[port]
        in_cap = Array(Const(self.buffer_bytes // b, 16) for b in in_bytes + [1])[port]
        out_cap = Array(Const(self.buffer_bytes // b, 16) for b in out_bytes + [1])[port]

        byte = rx.o.payload
        got = Signal()
        m.d.comb += got.eq(rx.o.valid & rx.o.ready)

        # Reply: header, payload (buffer or status), check byte.
        r_cmd = Signal(8)
        r_port = Signal(8)
        r_len = Signal(16)
        r_bytes = Signal(16)  # payload bytes
        r_idx = Signal(16)
        r_sum = Signal(8)
        r_status = Signal()
        status = Signal(8 * P.STATUS_BYTES)

        out_byte = Signal(8)
        hdr = Array([Const(P.SYNC, 8), r_cmd, r_port, r_len[:8], r_len[8:]])
        status_bytes = Array(status[8 * k:8 * (k + 1)] for k in range(P.STATUS_BYTES))

        def reply(m, cmd_value, port_value, len_value, nbytes, from_status=False):
            m.d.sync += [r_cmd.eq(cmd_value), r_port.eq(port_value), r_len.eq(len_value),
                         r_bytes.eq(nbytes), r_idx.eq(0), r_sum.eq(0),
                         r_status.eq(from_status)]
            m.next = "SEND"

        def error(m, code):
            m.d.sync += [err.eq(code), bad_frame.eq(1)]
            reply(m, P.REPLY_ERROR, code, 0, 0)

        with m.FSM():
            with m.State("SYNC"):
                m.d.comb += rx.o.ready.eq(1)
                with m.If(got & (byte == P.SYNC)):
                    m.d.sync += [check.eq(0), hidx.eq(0), quiet.eq(0)]
                    m.next = "HEADER"

            with m.State("HEADER"):
                m.d.comb += rx.o.ready.eq(1)
                m.d.sync += quiet.eq(quiet + 1)
                with m.If(got):
                    m.d.sync += [check.eq(check + byte), hidx.eq(hidx + 1), quiet.eq(0)]
                    with m.Switch(hidx):
                        with m.Case(0):
                            m.d.sync += cmd.eq(byte)
                        with m.Case(1):
                            m.d.sync += port.eq(byte)
                        with m.Case(2):
                            m.d.sync += length[:8].eq(byte)
                        with m.Case(3):
                            m.d.sync += length[8:].eq(byte)
                            m.next = "VALIDATE"
                with m.Elif(quiet == self.idle_cycles):
                    error(m, P.ERR_TIMEOUT)

            def validate(port_ok, length_ok, then):
                with m.If(~port_ok):
                    m.d.sync += err.eq(P.ERR_PORT)
                    m.next = "DRAIN"
                with m.Elif(~length_ok):
                    m.d.sync += err.eq(P.ERR_LENGTH)
                    m.next = "DRAIN"
                with m.Else():
                    m.next = then

            with m.State("VALIDATE"):
                m.d.sync += [beat.eq(0), bib.eq(0), addr.eq(0), quiet.eq(0)]
                with m.Switch(cmd):
                    with m.Case(P.CMD_WRITE):
                        validate(port < n_in, (length != 0) & (length <= in_cap), "PAYLOAD")
                    with m.Case(P.CMD_READ):
                        validate(port < n_out, (length != 0) & (length <= out_cap), "CHECK")
                    with m.Case(P.CMD_STATUS, P.CMD_RESET):
                        validate(port == 0, length == 0, "CHECK")
                    with m.Default():
                        m.d.sync += err.eq(P.ERR_COMMAND)
                        m.next = "DRAIN"

            with m.State("PAYLOAD"):
                m.d.comb += [rx.o.ready.eq(1), buf_w.addr.eq(addr), buf_w.data.eq(byte),
                             buf_w.en.eq(got)]
                m.d.sync += quiet.eq(quiet + 1)
                with m.If(got):
                    m.d.sync += [check.eq(check + byte), addr.eq(addr + 1), quiet.eq(0),
                                 bib.eq(bib + 1)]
                    with m.If(bib == in_bpb - 1):
                        m.d.sync += [bib.eq(0), beat.eq(beat + 1)]
                        with m.If(beat == length - 1):
                            m.next = "CHECK"
                with m.Elif(quiet == self.idle_cycles):
                    error(m, P.ERR_TIMEOUT)

            with m.State("CHECK"):
                m.d.comb += rx.o.ready.eq(1)
                m.d.sync += quiet.eq(quiet + 1)
                with m.If(got):
                    m.d.sync += [addr.eq(0), beat.eq(0), bib.eq(0), quiet.eq(0)]
                    with m.If(((check + byte) & 0xFF) != 0):
                        error(m, P.ERR_CHECK)
                    with m.Elif(cmd == P.CMD_WRITE):
                        m.next = "W_READ"
                    with m.Elif(cmd == P.CMD_READ):
                        m.next = "R_WAIT"
                    with m.Elif(cmd == P.CMD_STATUS):
                        m.d.sync += [status.eq(Cat(block_error, bad_frame, Const(0, 6),
                                                   cycles, first_in, last_out)),
                                     bad_frame.eq(0)]
                        reply(m, P.CMD_STATUS | P.REPLY, 0, P.STATUS_BYTES, P.STATUS_BYTES,
                              from_status=True)
                    with m.Else():
                        m.d.sync += reset_count.eq(3)
                        m.next = "RESET"
                with m.Elif(quiet == self.idle_cycles):
                    error(m, P.ERR_TIMEOUT)

            with m.State("DRAIN"):
                # Drop the rest of a bad frame: wait for a quiet line, then answer.
                m.d.comb += rx.o.ready.eq(1)
                m.d.sync += quiet.eq(quiet + 1)
                with m.If(got):
                    m.d.sync += quiet.eq(0)
                with m.Elif(quiet == self.idle_cycles):
                    error(m, err)

            # ---- WRITE: replay the buffered beats into the input stream ----
            with m.State("W_READ"):
                m.d.comb += buf_r.addr.eq(addr)
                m.d.sync += addr.eq(addr + 1)
                m.next = "W_SHIFT"
            with m.State("W_SHIFT"):
                m.d.sync += [shift_in.eq(Cat(shift_in[8:], buf_r.data)), bib.eq(bib + 1)]
                with m.If(bib == in_bpb - 1):
                    m.d.sync += bib.eq(0)
                    m.next = "W_BEAT"
                with m.Else():
                    m.next = "W_READ"
            with m.State("W_BEAT"):
                for n, (s, nb) in enumerate(zip(ins, in_bytes, strict=True)):
                    with m.If(port == n):
                        m.d.comb += [s.valid.eq(1),
                                     s.payload.eq(shift_in[8 * (max_in - nb):])]
                        with m.If(s.ready):
                            m.d.sync += beat.eq(beat + 1)
                            with m.If(beat == length - 1):
                                reply(m, P.CMD_WRITE | P.REPLY, port, 0, 0)
                            with m.Else():
                                m.next = "W_READ"

            # ---- READ: collect beats into the buffer ----
            with m.State("R_WAIT"):
                m.d.sync += quiet.eq(quiet + 1)
                taken = Signal()
                for n, s in enumerate(outs):
                    with m.If(port == n):
                        m.d.comb += [s.ready.eq(1), taken.eq(s.valid)]
                        with m.If(s.valid):
                            m.d.sync += shift_out.eq(s.payload)
                with m.If(taken):
                    m.d.sync += [quiet.eq(0), bib.eq(0)]
                    m.next = "R_STORE"
                with m.Elif(quiet == self.idle_cycles):
                    reply(m, P.CMD_READ | P.REPLY, port, beat, addr)
            with m.State("R_STORE"):
                m.d.comb += [buf_w.addr.eq(addr), buf_w.data.eq(shift_out[:8]), buf_w.en.eq(1)]
                m.d.sync += [addr.eq(addr + 1), shift_out.eq(shift_out >> 8), bib.eq(bib + 1)]
                with m.If(bib == out_bpb - 1):
                    m.d.sync += beat.eq(beat + 1)
                    with m.If(beat == length - 1):
                        reply(m, P.CMD_READ | P.REPLY, port, beat + 1, addr + 1)
                    with m.Else():
                        m.next = "R_WAIT"

            # ---- RESET the block and the counters ----
            with m.State("RESET"):
                m.d.comb += [block_reset.eq(1), clear_counters.eq(1)]
                m.d.sync += reset_count.eq(reset_count - 1)
                with m.If(reset_count == 0):
                    reply(m, P.CMD_RESET | P.REPLY, 0, 0, 0)

            # ---- reply: header, payload, check byte; one byte per two cycles ----
            with m.State("SEND"):
                # Address the buffer; the byte is chosen once its read data is valid.
                m.d.comb += buf_r.addr.eq(r_idx - 5)
                m.next = "SEND_BYTE"
            with m.State("SEND_BYTE"):
                # Keep addressing the byte: the transmitter may take many cycles to accept it.
                m.d.comb += buf_r.addr.eq(r_idx - 5)
                payload_end = r_bytes + 5
                with m.If(r_idx < 5):
                    m.d.comb += out_byte.eq(hdr[r_idx[:3]])
                with m.Elif(r_idx < payload_end):
                    with m.If(r_status):
                        m.d.comb += out_byte.eq(status_bytes[(r_idx - 5)[:4]])
                    with m.Else():
                        m.d.comb += out_byte.eq(buf_r.data)
                with m.Else():
                    m.d.comb += out_byte.eq(-r_sum)
                m.d.comb += [tx.i.valid.eq(1), tx.i.payload.eq(out_byte)]
                with m.If(tx.i.ready):
                    with m.If(r_idx != 0):
                        m.d.sync += r_sum.eq(r_sum + out_byte)
                    m.d.sync += r_idx.eq(r_idx + 1)
                    with m.If(r_idx == payload_end):
                        m.next = "SYNC"
                    with m.Else():
                        m.next = "SEND"
        return m
