"""Host side of the UART link: frames, a client, a serial transport, and block workloads.

The client is written once, against an async transport with ``send(data)`` and
``recv(count)``; :class:`SerialTransport` drives a board through pyserial and
``npugen.sim.cocotb.uart.SimUart`` drives the Verilator model of the same board core, so the
path host -> UART -> block -> UART -> host is the same code in CI and on hardware.
"""

import numpy as np

from npugen.rtl.link import protocol as P

__all__ = [
    "WORKLOADS", "HostClient", "LinkError", "SerialTransport", "frame", "port_map", "run_sparse",
    "run_systolic", "run_winograd",
]


class LinkError(RuntimeError):
    """The board answered with an error frame, a corrupt frame, or not at all."""


def frame(cmd, port, length, payload=b""):
    """Encode one frame: sync, header, payload and the check byte (module ``protocol``)."""
    body = bytes([cmd, port, length & 0xFF, length >> 8]) + bytes(payload)
    return bytes([P.SYNC]) + body + bytes([(-sum(body)) & 0xFF])


def port_map(params, block=None):
    """Return ``(inputs, outputs)`` stream ports ``[(name, width)]`` of ``params``' block."""
    from npugen.rtl.blocks import BLOCKS
    from npugen.rtl.link import stream_ports

    if block is None:
        block = BLOCKS[params.block].build(params)
        block._MustUse__silence = True  # only its signature is needed here
    return stream_ports(block)


def _nbytes(width):
    return -(-width // 8)


class HostClient:
    """Drive a :class:`~npugen.rtl.link.HostLink` through ``transport``.

    ``inputs``/``outputs`` are the block's stream ports as :func:`port_map` returns them;
    beats are unsigned integers of the port's payload width (``npugen.sim.cocotb.packing``).
    """

    def __init__(self, transport, inputs, outputs, buffer_bytes=512):
        self.transport = transport
        self.inputs = {name: (n, w) for n, (name, w) in enumerate(inputs)}
        self.outputs = {name: (n, w) for n, (name, w) in enumerate(outputs)}
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
        """Send ``beats`` to input stream ``name``, in frames that fit the link's buffer."""
        port, width = self.inputs[name]
        nb = _nbytes(width)
        per_frame = self.buffer_bytes // nb
        beats = list(beats)
        for start in range(0, len(beats), per_frame):
            chunk = beats[start:start + per_frame]
            payload = b"".join(int(b).to_bytes(nb, "little") for b in chunk)
            await self.transport.send(frame(P.CMD_WRITE, port, len(chunk), payload))
            await self.reply(P.CMD_WRITE | P.REPLY, lambda n: 0)

    async def read(self, name, count, attempts=20):
        """Read ``count`` beats from output stream ``name`` (polling while none arrive)."""
        port, width = self.outputs[name]
        nb = _nbytes(width)
        out, empty = [], 0
        while len(out) < count:
            want = min(count - len(out), self.buffer_bytes // nb)
            await self.transport.send(frame(P.CMD_READ, port, want))
            _, got, data = await self.reply(P.CMD_READ | P.REPLY, lambda n: n * nb)
            out += [int.from_bytes(data[k * nb:(k + 1) * nb], "little") for k in range(got)]
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
        import serial

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


async def run_sparse(client, params, seed, vectors=3, log=print):
    """Load a random compressed matrix into a sparse engine and check ``vectors`` results.

    Returns a summary dictionary; ``mismatches`` counts output words that differ from
    :func:`npugen.sim.models.sparse.sparse_matvec`.
    """
    from npugen.rtl.sparse.engine import CFG_LAYOUT, act_layout, out_layout
    from npugen.sim.cocotb.packing import pack, unpack
    from npugen.sim.compress import act_beats, encode, load_program
    from npugen.sim.models.sparse import dense_weights, sparse_matvec

    nrng = np.random.default_rng(seed)
    rows, cols = params.rows_max, params.cols_max
    density = 0.3
    while True:
        w_idx = np.where(nrng.random((rows, cols)) < density,
                         nrng.integers(1, 16, size=(rows, cols)), 0)
        codebook = nrng.integers(-32768, 32768, size=16)
        codebook[0] = 0
        enc = encode(w_idx, params.n_pe, codebook=codebook)
        if max(len(e) for e in enc.entries) <= params.entries_max:
            break
        density /= 2
    w_q = dense_weights(codebook, w_idx)
    await client.reset()
    program = load_program(enc)
    log(f"loading {rows} x {cols} matrix: {enc.stored} entries, {len(program)} i_cfg beats")
    await client.write("i_cfg", [pack(CFG_LAYOUT, b) for b in program])
    mismatches, words = 0, 0
    lo, hi = -(1 << (params.act_width - 1)), (1 << (params.act_width - 1)) - 1
    for v in range(vectors):
        x = np.where(nrng.random(cols) < 0.5, nrng.integers(lo, hi + 1, size=cols), 0)
        await client.write("i_act", [pack(act_layout(params), b)
                                     for b in act_beats(x, params.act_lanes)])
        got = [unpack(out_layout(params), raw) for raw in await client.read("o", rows)]
        want = sparse_matvec(params, w_q, x)
        bad = sum(g["y"] != int(e) or g["last"] != int(i == rows - 1)
                  for i, (g, e) in enumerate(zip(got, want, strict=True)))
        log(f"vector {v}: {rows} outputs, {bad} mismatches")
        if bad:
            log(f"  got  {[g['y'] for g in got][:8]} last {[g['last'] for g in got]}")
            log(f"  want {[int(e) for e in want][:8]}")
        mismatches += bad
        words += rows
    status = await client.status()
    log(f"status: block error {int(status['block_error'])}, bad frame "
        f"{int(status['bad_frame'])}, first input to last output "
        f"{status['last_out'] - status['first_in']} cycles")
    return {"words": words, "mismatches": mismatches, **status}


async def run_systolic(client, params, seed, vectors=3, log=print):
    """Run two random tiles through a systolic array; check every output word.

    Weight-stationary: each tile is ``rows`` weight beats followed by ``vectors``
    activation vectors (random operands, random partial sums, ``last`` on the final one),
    compared with :func:`npugen.sim.models.systolic.ws_tile`; ``vectors`` is kept within
    the array's result buffer, so a tile never waits for a read. Output-stationary: each
    tile is K = ``vectors`` beats of A columns and B rows, its ``rows`` result vectors
    compared with :func:`~npugen.sim.models.systolic.os_tile`. Results are read back after
    each tile. Returns a summary dictionary like :func:`run_sparse`.
    """
    from npugen.rtl.systolic import Dataflow, systolic_array
    from npugen.sim.cocotb.packing import pack, unpack
    from npugen.sim.models.systolic import os_tile, ws_tile

    arr = systolic_array(params)
    arr._MustUse__silence = True  # only its layouts and timing are needed here
    ws = params.dataflow is Dataflow.WS
    if ws:
        vectors = min(vectors, arr.buffer_depth)
    nrng = np.random.default_rng(seed)

    def ints(width, shape):
        return nrng.integers(-(1 << (width - 1)), 1 << (width - 1), size=shape)

    await client.reset()
    mismatches, words = 0, 0
    for t in range(2):
        if ws:
            w = ints(params.w_width, (params.rows, params.cols))
            a = ints(params.a_width, (vectors, params.rows))
            psum = ints(params.acc_width, (vectors, params.cols))
            await client.write("i_weight", [pack(arr.weight_layout, [int(x) for x in row])
                                            for row in w])
            await client.write("i_act", [pack(arr.act_layout, {
                "a": [int(x) for x in a[m]], "psum": [int(x) for x in psum[m]],
                "last": int(m == vectors - 1)}) for m in range(vectors)])
            want = ws_tile(params, a, w, psum)
        else:
            a = ints(params.a_width, (params.rows, vectors))
            b = ints(params.w_width, (vectors, params.cols))
            await client.write("i", [pack(arr.in_layout, {
                "a": [int(x) for x in a[:, k]], "b": [int(x) for x in b[k]],
                "last": int(k == vectors - 1)}) for k in range(vectors)])
            want = os_tile(params, a, b)
        n = len(want)
        got = [unpack(arr.out_layout, raw) for raw in await client.read("o", n)]
        bad = sum(int(g["y"][c] != int(want[m, c])) for m, g in enumerate(got)
                  for c in range(params.cols))
        bad += sum(g["last"] != int(m == n - 1) for m, g in enumerate(got))
        log(f"tile {t}: {n} result vectors x {params.cols} outputs, {bad} mismatches")
        if bad:
            log(f"  got  {[g['y'] for g in got][:2]}")
            log(f"  want {want[:2].tolist()}")
        mismatches += bad
        words += n * params.cols
    status = await client.status()
    log(f"status: block error {int(status['block_error'])}, bad frame "
        f"{int(status['bad_frame'])}, first input to last output "
        f"{status['last_out'] - status['first_in']} cycles")
    return {"words": words, "mismatches": mismatches, **status}


def winograd_layers(params, count):
    """Return ``count`` layer shapes ``(H, W, C, K, padding)`` for :func:`run_winograd`.

    Each layer's output is at most 12 beats, within the tile engine's result buffer (15):
    the link forwards a WRITE frame completely before it serves a READ, so a layer whose
    output had to be read while its pixels were still being written would stall the link. The shapes
    alternate between valid padding and same padding on an odd size (masked edge tiles).
    """
    p = params
    c = min(p.c_max, 3)
    shapes = [(min(p.h_max, 6), min(p.w_max, 6), c, min(p.k_max, 3), "valid"),
              (min(p.h_max, 5), 3, c, min(p.k_max, 2), "same")]
    return [shapes[i % 2] for i in range(count)]


async def run_winograd(client, params, seed, vectors=3, log=print):
    """Run ``vectors`` small convolution layers through a Winograd layer; check every pixel.

    Each layer (:func:`winograd_layers`) is its configuration, random filters (raw or
    host-transformed, as the build takes them) and random pixels; the output beats are read
    back and compared, lane by lane where the mask says the pixel exists, with
    :func:`npugen.sim.models.winograd.layer_output_beats` (direct convolution). Returns a
    summary dictionary like :func:`run_sparse`.
    """
    from npugen.rtl.winograd import WinogradConv
    from npugen.sim.cocotb.packing import pack, unpack
    from npugen.sim.models.winograd import filter_stream, layer_output_beats

    layer = WinogradConv(params)
    layer._MustUse__silence = True  # only its layouts are needed here
    nrng = np.random.default_rng(seed)
    lo, hi = -(1 << (params.data_width - 1)), 1 << (params.data_width - 1)
    await client.reset()
    mismatches, words = 0, 0
    for n, (h, w, c, k, padding) in enumerate(winograd_layers(params, vectors)):
        x = nrng.integers(lo, hi, size=(h, w, c))
        g = nrng.integers(lo, hi, size=(k, c, 3, 3))
        want = layer_output_beats(params, x, g, padding)
        await client.write("i_cfg", [pack(layer.cfg_layout, {
            "height": h, "width": w, "channels": c, "filters": k,
            "same": int(padding == "same")})])
        await client.write("i_filter", [pack(layer.filter_layout, b)
                                        for b in filter_stream(params, g)])
        await client.write("i_pixel", [pack(layer.pixel_layout, {
            "x": [int(x[r, q, ch]) if ch < c else 0 for ch in range(params.c_max)],
            "last": int(r == h - 1 and q == w - 1)}) for r in range(h) for q in range(w)])
        got = [unpack(layer.out_layout, raw) for raw in await client.read("o", len(want))]
        bad = 0
        for g_beat, e_beat in zip(got, want, strict=True):
            bad += g_beat["mask"] != e_beat["mask"] or g_beat["last"] != e_beat["last"]
            bad += sum(v != e for v, e in zip(g_beat["y"], e_beat["y"], strict=True)
                       if e is not None)
        log(f"layer {n}: {h} x {w} x {c}, K = {k}, {padding}: {len(want)} output beats, "
            f"{bad} mismatches")
        if bad:
            log(f"  got  {got[:2]}")
            log(f"  want {want[:2]}")
        mismatches += bad
        words += sum(e is not None for b in want for e in b["y"])
    status = await client.status()
    log(f"status: block error {int(status['block_error'])}, bad frame "
        f"{int(status['bad_frame'])}, first input to last output "
        f"{status['last_out'] - status['first_in']} cycles")
    return {"words": words, "mismatches": mismatches, **status}


#: The self-checking workload ``npugen run`` and the board bench use for each block.
WORKLOADS = {"sparse": run_sparse, "systolic": run_systolic, "winograd": run_winograd}
