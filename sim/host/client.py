"""The host side of the UART link: a client for any block, and a serial transport.

The client is written once, against an async transport with ``send(data)`` and
``recv(count)``: :class:`SerialTransport` drives a board through pyserial and
``npugen.sim.cocotb.uart.SimUart`` drives the Verilator model of the same board core, so the
path host -> UART -> block -> UART -> host is the same code in CI and on hardware.
"""

import serial

from npugen.rtl.link import protocol as P
from npugen.rtl.link import stream_ports

from ..formats.beats import pack, unpack
from ..formats.link import crc16, frame

__all__ = ["HostClient", "LinkError", "SerialTransport", "finish_workload"]


class LinkError(RuntimeError):
    """The board answered with an error frame, or not at all.

    ``code`` is the protocol's error code of an error reply (None otherwise), ``length`` its
    length field (for ERR_STALL: the beats the block took).
    """

    def __init__(self, message, *, code=None, length=0):
        super().__init__(message)
        self.code = code
        self.length = length


def _nbytes(width):
    return -(-width // 8)


class HostClient:
    """Drive a :class:`~npugen.rtl.link.HostLink` through ``transport``.

    ``signature`` is the block's members (its ``signature(params)``): the stream ports give
    the protocol's port numbers (signature order) and the payload layouts. Beats are payload
    values (ints, lists, dicts), packed and unpacked with those layouts.

    Every request carries the next sequence number (0..127) and the client waits for the
    reply with that number, dropping anything else: a reply to an earlier request the client
    gave up on, a frame with a bad CRC, stray bytes. So after any error the next request
    simply works: the client resynchronises by itself.
    """

    def __init__(self, transport, signature, buffer_bytes=512):
        self.transport = transport
        inputs, outputs = stream_ports(signature)
        layouts = {name: m.signature.members["payload"].shape for name, m in signature.items()
                   if m.is_signature}
        self.inputs = {name: (n, w, layouts[name]) for n, (name, w) in enumerate(inputs)}
        self.outputs = {name: (n, w, layouts[name]) for n, (name, w) in enumerate(outputs)}
        self._out_widths = [w for _, w in outputs]
        self.buffer_bytes = buffer_bytes
        self.seq = 0
        #: Frames dropped while waiting for a reply (stale, corrupt), for diagnostics.
        self.dropped = 0

    def _payload_bytes(self, cmd, port, length):
        if cmd == P.CMD_READ | P.REPLY:
            if port >= len(self._out_widths):
                return None
            return length * _nbytes(self._out_widths[port])
        if cmd in (P.CMD_STATUS | P.REPLY, P.CMD_INFO | P.REPLY):
            return length
        return 0

    async def _frame(self):
        """Receive the next well-formed reply frame: ``(seq, cmd, port, length, payload)``."""
        while True:
            while (await self.transport.recv(1))[0] != P.SYNC:
                pass
            head = await self.transport.recv(P.HEADER_BYTES)
            if head[0] == P.SYNC:
                self.dropped += 1  # a sync byte where a seq belongs: not a reply's start
                continue
            seq, cmd, port, length = head[0], head[1], head[2], head[3] | head[4] << 8
            size = self._payload_bytes(cmd, port, length)
            if size is None or size > max(self.buffer_bytes, P.STATUS_BYTES, 512):
                self.dropped += 1
                continue
            rest = await self.transport.recv(size + 2)
            if crc16(head + rest[:-2]) != int.from_bytes(rest[-2:], "big"):
                self.dropped += 1
                continue
            return seq, cmd, port, length, bytes(rest[:-2])

    async def request(self, cmd, port=0, length=0, payload=b""):
        """Send one request and return its reply ``(cmd, port, length, payload)``.

        Raises LinkError on an error reply (with its code) or when no reply comes.
        """
        seq = self.seq
        self.seq = (self.seq + 1) & P.SEQ_MAX
        await self.transport.send(frame(seq, cmd, port, length, payload))
        while True:
            r_seq, r_cmd, r_port, r_len, data = await self._frame()
            if r_seq != seq:
                self.dropped += 1
                continue
            if r_cmd == P.REPLY_ERROR:
                raise LinkError(f"board error {r_port}: {P.ERRORS.get(r_port, 'unknown')}",
                                code=r_port, length=r_len)
            if r_cmd != cmd | P.REPLY:
                raise LinkError(f"unexpected reply 0x{r_cmd:02x} to 0x{cmd:02x}")
            return r_cmd, r_port, r_len, data

    async def write(self, name, beats):
        """Send payload values ``beats`` to input stream ``name``, in frames that fit."""
        port, width, layout = self.inputs[name]
        nb = _nbytes(width)
        per_frame = self.buffer_bytes // nb
        words = [pack(layout, b) for b in beats]
        for start in range(0, len(words), per_frame):
            chunk = words[start:start + per_frame]
            payload = b"".join(w.to_bytes(nb, "little") for w in chunk)
            await self.request(P.CMD_WRITE, port, len(chunk), payload)

    async def read(self, name, count, attempts=20):
        """Read ``count`` beats (payload values) from output stream ``name``, polling."""
        port, width, layout = self.outputs[name]
        nb = _nbytes(width)
        out, empty = [], 0
        while len(out) < count:
            want = min(count - len(out), self.buffer_bytes // nb)
            _, _, got, data = await self.request(P.CMD_READ, port, want)
            out += [unpack(layout, int.from_bytes(data[k * nb:(k + 1) * nb], "little"))
                    for k in range(got)]
            empty = empty + 1 if got == 0 else 0
            if empty >= attempts:
                raise LinkError(f"{name}: {len(out)} of {count} beats, then nothing")
        return out

    async def status(self):
        """Return the flags and cycle counters (see ``protocol``)."""
        _, _, _, data = await self.request(P.CMD_STATUS)
        word = [int.from_bytes(data[1 + 4 * k:5 + 4 * k], "little") for k in range(3)]
        return {"block_error": bool(data[0] & 1), "bad_frame": bool(data[0] & 2),
                "stalled": bool(data[0] & 4), "counters": not (data[0] & 8),
                "cycles": word[0], "first_in": word[1], "last_out": word[2]}

    async def info(self):
        """Return the link's version, buffer size and port widths (see ``protocol``)."""
        _, _, _, data = await self.request(P.CMD_INFO)
        n_in, n_out = data[1], data[2]
        widths = [int.from_bytes(data[5 + 2 * k:7 + 2 * k], "little")
                  for k in range(n_in + n_out)]
        return {"version": data[0], "buffer_bytes": int.from_bytes(data[3:5], "little"),
                "inputs": widths[:n_in], "outputs": widths[n_in:]}

    async def check_board(self):
        """Fail unless the board speaks this protocol and has the ports this client expects."""
        info = await self.info()
        if info["version"] != P.VERSION:
            raise LinkError(f"the board speaks link protocol v{info['version']}, this host "
                            f"v{P.VERSION}: rebuild the bitstream")
        want = ([w for _, w, _ in self.inputs.values()], self._out_widths)
        if (info["inputs"], info["outputs"]) != want:
            raise LinkError(f"the board's ports (in {info['inputs']}, out {info['outputs']} "
                            f"bits) are not these parameters' (in {want[0]}, out {want[1]})")
        self.buffer_bytes = min(self.buffer_bytes, info["buffer_bytes"])
        return info

    async def reset(self):
        """Reset the block and the counters."""
        await self.request(P.CMD_RESET)


class SerialTransport:
    """pyserial transport for a real board (blocking I/O behind the async interface)."""

    def __init__(self, device, baud=115200, timeout=2.0):
        self.port = serial.Serial(device, baud, timeout=timeout)

    async def send(self, data):
        """Write ``data`` to the serial port."""
        self.port.write(data)

    async def recv(self, count):
        """Read exactly ``count`` bytes or raise LinkError on timeout."""
        data = self.port.read(count)
        if len(data) != count:
            raise LinkError(f"timeout: {len(data)} of {count} bytes from the board")
        return data

    def close(self):
        """Close the port."""
        self.port.close()


async def finish_workload(client, words, mismatches, log):
    """Read STATUS after a workload; log it; return the workload's summary dictionary.

    ``words`` output words were compared with the golden model, ``mismatches`` differed.
    """
    status = await client.status()
    timing = (f"first input to last output {status['last_out'] - status['first_in']} cycles"
              if status["counters"] else "no cycle counters in this link")
    log(f"status: block error {int(status['block_error'])}, bad frame "
        f"{int(status['bad_frame'])}, {timing}")
    return {"words": words, "mismatches": mismatches, **status}
