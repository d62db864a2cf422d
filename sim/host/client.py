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
from ..formats.link import frame

__all__ = ["HostClient", "LinkError", "SerialTransport", "finish_workload"]


class LinkError(RuntimeError):
    """The board answered with an error frame, a corrupt frame, or not at all."""


def _nbytes(width):
    return -(-width // 8)


class HostClient:
    """Drive a :class:`~npugen.rtl.link.HostLink` through ``transport``.

    ``signature`` is the block's members (its ``signature(params)``): the stream ports give
    the protocol's port numbers (signature order) and the payload layouts. Beats are payload
    values (ints, lists, dicts), packed and unpacked with those layouts.
    """

    def __init__(self, transport, signature, buffer_bytes=512):
        self.transport = transport
        inputs, outputs = stream_ports(signature)
        layouts = {name: m.signature.members["payload"].shape for name, m in signature.items()
                   if m.is_signature}
        self.inputs = {name: (n, w, layouts[name]) for n, (name, w) in enumerate(inputs)}
        self.outputs = {name: (n, w, layouts[name]) for n, (name, w) in enumerate(outputs)}
        self.buffer_bytes = buffer_bytes

    async def reply(self, expect_cmd, payload_bytes):
        """Receive one reply frame of ``expect_cmd``; return ``(port, len, payload)``.

        ``payload_bytes(len)`` gives the payload size. Error frames raise LinkError.
        """
        while (await self.transport.recv(1))[0] != P.SYNC:
            pass
        head = await self.transport.recv(4)
        cmd, port, length = head[0], head[1], head[2] | head[3] << 8
        size = payload_bytes(length) if cmd == expect_cmd else 0
        rest = await self.transport.recv(size + 1)
        if (sum(head) + sum(rest)) & 0xFF:
            raise LinkError("reply with a bad check byte")
        if cmd == P.REPLY_ERROR:
            raise LinkError(f"board error {port}: {P.ERRORS.get(port, 'unknown')}")
        if cmd != expect_cmd:
            raise LinkError(f"unexpected reply 0x{cmd:02x} (expected 0x{expect_cmd:02x})")
        return port, length, bytes(rest[:-1])

    async def write(self, name, beats):
        """Send payload values ``beats`` to input stream ``name``, in frames that fit."""
        port, width, layout = self.inputs[name]
        nb = _nbytes(width)
        per_frame = self.buffer_bytes // nb
        words = [pack(layout, b) for b in beats]
        for start in range(0, len(words), per_frame):
            chunk = words[start:start + per_frame]
            payload = b"".join(w.to_bytes(nb, "little") for w in chunk)
            await self.transport.send(frame(P.CMD_WRITE, port, len(chunk), payload))
            await self.reply(P.CMD_WRITE | P.REPLY, lambda n: 0)

    async def read(self, name, count, attempts=20):
        """Read ``count`` beats (payload values) from output stream ``name``, polling."""
        port, width, layout = self.outputs[name]
        nb = _nbytes(width)
        out, empty = [], 0
        while len(out) < count:
            want = min(count - len(out), self.buffer_bytes // nb)
            await self.transport.send(frame(P.CMD_READ, port, want))
            _, got, data = await self.reply(P.CMD_READ | P.REPLY, lambda n: n * nb)
            out += [unpack(layout, int.from_bytes(data[k * nb:(k + 1) * nb], "little"))
                    for k in range(got)]
            empty = empty + 1 if got == 0 else 0
            if empty >= attempts:
                raise LinkError(f"{name}: {len(out)} of {count} beats, then nothing")
        return out

    async def status(self):
        """Return the flags and cycle counters (see ``protocol``)."""
        await self.transport.send(frame(P.CMD_STATUS, 0, 0))
        _, _, data = await self.reply(P.CMD_STATUS | P.REPLY, lambda n: n)
        word = [int.from_bytes(data[1 + 4 * k:5 + 4 * k], "little") for k in range(3)]
        return {"block_error": bool(data[0] & 1), "bad_frame": bool(data[0] & 2),
                "cycles": word[0], "first_in": word[1], "last_out": word[2]}

    async def reset(self):
        """Reset the block and the counters."""
        await self.transport.send(frame(P.CMD_RESET, 0, 0))
        await self.reply(P.CMD_RESET | P.REPLY, lambda n: 0)


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
    log(f"status: block error {int(status['block_error'])}, bad frame "
        f"{int(status['bad_frame'])}, first input to last output "
        f"{status['last_out'] - status['first_in']} cycles")
    return {"words": words, "mismatches": mismatches, **status}
