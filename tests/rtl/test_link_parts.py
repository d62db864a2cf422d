"""The pieces of the host link, each alone in the Amaranth simulator."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from npugen.rtl.link import protocol as P
from npugen.rtl.link.link_parts import FrameReceiver, ReadCollector, ReplySender, WriteReplay
from npugen.sim.flow.pysim import recv, send, simulate
from npugen.sim.formats.link import crc16, frame

IDLE = 40




def _receive(frames, gaps=8, may_write=1, mailbox_ready=True):
    """Feed byte strings to a FrameReceiver; return requests, buffer writes, abort and bad.

    ``gaps`` idle cycles go between bytes, a quiet line between frames.
    """
    dut = FrameReceiver([24, 8], [40], buffer_bytes=64, idle_cycles=IDLE)
    posted, writes, flags = [], {}, {"abort": 0, "bad": 0}

    async def feed(ctx):
        ctx.set(dut.may_write, may_write)
        for data in frames:
            for byte in data:
                await send(ctx, dut.rx, [byte])
                await ctx.tick().repeat(gaps)
            await ctx.tick().repeat(3 * IDLE)

    async def watch(ctx):
        ctx.set(dut.frame.ready, mailbox_ready)
        async for _, _, valid, ready, payload, w, abort, bad in ctx.tick().sample(
                dut.frame.valid, dut.frame.ready, dut.frame.payload, dut.buf_w, dut.abort,
                dut.bad):
            if valid and ready:
                posted.append({k: int(getattr(payload, k))
                               for k in ("seq", "cmd", "port", "length", "error")})
            if w.en:
                writes[int(w.addr)] = int(w.data)
            flags["abort"] += abort
            flags["bad"] += bad

    simulate(dut, feed, background=[watch])
    return posted, writes, flags


def _req(seq, cmd, port=0, length=0, error=0):
    return {"seq": seq, "cmd": cmd, "port": port, "length": length, "error": error}


def test_receiver_posts_good_frames_and_buffers_payload():
    payload = bytes(range(6))  # two 24-bit beats
    posted, writes, flags = _receive([frame(5, P.CMD_WRITE, 0, 2, payload),
                                      frame(6, P.CMD_READ, 0, 3), frame(7, P.CMD_STATUS, 0, 0),
                                      bytes([P.SYNC, P.SYNC]) + frame(8, P.CMD_INFO, 0, 0)[1:]])
    assert posted == [_req(5, P.CMD_WRITE, 0, 2), _req(6, P.CMD_READ, 0, 3),
                      _req(7, P.CMD_STATUS), _req(8, P.CMD_INFO)]
    assert writes == dict(enumerate(payload))
    assert flags == {"abort": 0, "bad": 0}


@pytest.mark.parametrize(("data", "code"), [
    (frame(1, 0x42, 0, 0), P.ERR_COMMAND),
    (frame(1, P.CMD_WRITE, 2, 1, b"xyz"), P.ERR_PORT),
    (frame(1, P.CMD_WRITE, 0, 22, bytes(66)), P.ERR_LENGTH),  # 22 x 3 bytes > 64
    (frame(1, P.CMD_READ, 0, 0), P.ERR_LENGTH),
    (frame(1, P.CMD_STATUS, 0, 1), P.ERR_LENGTH),
    (frame(1, P.CMD_STATUS, 0, 0)[:5], P.ERR_TIMEOUT),
    (frame(1, P.CMD_WRITE, 1, 2, b"\x01\x02")[:-1] + b"\x00", P.ERR_CRC),
])
def test_receiver_reports_every_error_once_and_writes_nothing(data, code):
    posted, writes, flags = _receive([data, frame(2, P.CMD_STATUS, 0, 0)])
    assert [p["error"] for p in posted] == [code, 0]
    if code in (P.ERR_COMMAND, P.ERR_PORT, P.ERR_LENGTH):
        assert writes == {}, "a rejected header lets no payload into the buffer"
    assert flags["bad"] == 1


def test_receiver_drains_the_rest_of_a_bad_frame():
    """A corrupted length: the bytes after the CRC error must not start a frame."""
    inner = frame(3, P.CMD_WRITE, 1, 1, b"\x07")
    outer = bytearray(frame(4, P.CMD_WRITE, 1, 1 + len(inner), b"\x00" + inner))
    outer[4] = 1  # one beat: then two "CRC" bytes, then the inner frame
    posted, writes, _ = _receive([bytes(outer)])
    assert posted == [_req(4, P.CMD_WRITE, 1, 1, P.ERR_CRC)]


def test_receiver_keeps_one_request_and_lets_reset_through():
    posted, _, flags = _receive([frame(1, P.CMD_STATUS, 0, 0), frame(2, P.CMD_WRITE, 1, 1, b"a"),
                                 frame(3, P.CMD_RESET, 0, 0)], may_write=0, mailbox_ready=False)
    assert posted == []  # nobody took the mailbox
    assert flags == {"abort": 1, "bad": 1}  # the WRITE was dropped; the RESET aborted


class _Memory(wiring.Component):
    """A byte buffer with a write and a (registered) read port around a link piece."""

    def __init__(self, piece, depth=64):
        self.piece = piece
        self.depth = depth
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.piece = self.piece
        m.submodules.mem = mem = Memory(shape=8, depth=self.depth, init=range(100, 100 + 64))
        rd = mem.read_port()
        if hasattr(self.piece, "buf_addr"):
            m.d.comb += [rd.addr.eq(self.piece.buf_addr), self.piece.buf_data.eq(rd.data)]
        if hasattr(self.piece, "buf_w"):
            wr = mem.write_port()
            m.d.comb += [wr.en.eq(self.piece.buf_w.en), wr.addr.eq(self.piece.buf_w.addr),
                         wr.data.eq(self.piece.buf_w.data)]
        self.mem = mem
        return m


@pytest.mark.parametrize("stall_after", [None, 2])
def test_write_replay_delivers_beats_and_gives_up_on_a_stall(stall_after, seed):
    top = _Memory(WriteReplay([12, 20], buffer_bytes=64, stall_cycles=50))
    dut = top.piece
    rng = random.Random(seed)
    got, result = [], {}

    async def bench(ctx):
        ctx.set(dut.port, 1)
        ctx.set(dut.length, 4)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        cycles = 0
        while True:
            ready = rng.random() < 0.6 and (stall_after is None or len(got) < stall_after)
            ctx.set(dut.ready, ready << 1)
            _, _, valid, beat, done, stalled, delivered = await ctx.tick().sample(
                dut.valid, dut.beat, dut.done, dut.stalled, dut.delivered)
            cycles += 1
            assert not (valid & 1), "port 0 is not the target"
            if valid & 2 and ready:
                got.append(int(beat) & 0xFFFFF)
            if done:
                result.update(stalled=stalled, delivered=delivered, cycles=cycles)
                return

    simulate(top, bench)
    words = [int.from_bytes(bytes(range(100 + 3 * k, 103 + 3 * k)), "little") & 0xFFFFF
             for k in range(4)]
    n = 4 if stall_after is None else stall_after
    assert got == words[:n]
    assert result["stalled"] == (stall_after is not None) and result["delivered"] == n


def test_read_collector_stores_beats_and_stops_when_idle(seed):
    top = _Memory(ReadCollector([10, 16], buffer_bytes=64, idle_cycles=30))
    dut = top.piece
    rng = random.Random(seed)
    result = {}
    beats = [0x1234, 0xBEEF, 0x0042]

    async def bench(ctx):
        ctx.set(dut.port, 1)
        ctx.set(dut.length, 5)  # asks for more than come: stops when the stream is quiet
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        pending = list(beats)
        while True:
            offer = bool(pending) and rng.random() < 0.5
            ctx.set(dut.valid, offer << 1)
            ctx.set(dut.data, pending[0] if pending else 0)
            _, _, ready, done, n, nbytes = await ctx.tick().sample(dut.ready, dut.done,
                                                                   dut.beats, dut.nbytes)
            if offer and ready & 2:
                pending.pop(0)
            if done:
                result.update(beats=n, nbytes=nbytes)
                break
        stored = []
        for a in range(6):
            stored.append(ctx.get(top.mem.data[a]))
        result["stored"] = stored

    simulate(top, bench)
    assert result == {"beats": 3, "nbytes": 6,
                      "stored": [b for w in beats for b in w.to_bytes(2, "little")]}


def test_reply_sender_frames_with_seq_and_crc(seed):
    top = _Memory(ReplySender(buffer_bytes=64, status_bytes=13))
    dut = top.piece
    rng = random.Random(seed)
    sent = []

    async def bench(ctx):
        for seq, cmd, count, status in ((9, P.CMD_READ | P.REPLY, 5, None),
                                        (10, P.CMD_STATUS | P.REPLY, 13, 0x0102030405),
                                        (11, P.REPLY_ERROR, 0, None)):
            ctx.set(dut.seq, seq)
            ctx.set(dut.cmd, cmd)
            ctx.set(dut.port, 2)
            ctx.set(dut.length, count)
            ctx.set(dut.count, count)
            ctx.set(dut.from_status, status is not None)
            ctx.set(dut.status, status or 0)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            data = await recv(ctx, dut.tx, 6 + count + 2, rng, 0.5)
            sent.append(bytes(int(b) for b in data))
            await ctx.tick().repeat(2)
            assert not ctx.get(dut.busy)

    simulate(top, bench)
    want = [bytes(range(100, 105)), (0x0102030405).to_bytes(13, "little"), b""]
    for data, (seq, cmd), payload in zip(sent, [(9, P.CMD_READ | P.REPLY),
                                                (10, P.CMD_STATUS | P.REPLY),
                                                (11, P.REPLY_ERROR)], want, strict=True):
        body = bytes([seq, cmd, 2, len(payload), 0]) + payload
        assert data == bytes([P.SYNC]) + body + crc16(body).to_bytes(2, "big")


def test_reply_sender_sends_more_than_16_status_bytes(seed):
    """INFO of a block with many ports is longer than 16 bytes; every byte goes out."""
    top = _Memory(ReplySender(buffer_bytes=8, status_bytes=17))
    dut = top.piece
    rng = random.Random(seed)
    status = bytes(range(1, 18))
    sent = []

    async def bench(ctx):
        for name, value in (("seq", 3), ("cmd", P.CMD_INFO | P.REPLY), ("port", 0),
                            ("length", 17), ("count", 17), ("from_status", 1),
                            ("status", int.from_bytes(status, "little"))):
            ctx.set(getattr(dut, name), value)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        sent.extend(int(b) for b in await recv(ctx, dut.tx, 6 + 17 + 2, rng, 0.3))

    simulate(top, bench)
    body = bytes([3, P.CMD_INFO | P.REPLY, 0, 17, 0]) + status
    assert bytes(sent) == bytes([P.SYNC]) + body + crc16(body).to_bytes(2, "big")
