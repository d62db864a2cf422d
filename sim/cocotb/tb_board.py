"""cocotb bench for a board core (block behind the UART host link), driven by the host client.

The same :class:`npugen.sim.host.client.HostClient` and workload as ``npugen run`` talk to
the Verilator model through a bit-level simulated UART; every output word is checked against
the golden model. Besides the end-to-end run: every kind of bad frame, and the link's
robustness (a block that stops taking beats, the rest of a bad frame, errors that an
additive check would miss, lost and stale replies). Environment: ``DUT_PARAMS`` (the
block's params), ``SEED``, ``NPUGEN_DIVISOR`` and ``NPUGEN_STALL`` (the link's clock cycles
per UART bit and its stall limit).
"""

import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from npugen.rtl.common.params import Params
from npugen.rtl.link import protocol as P

from ..blocks import block_of
from ..formats.link import crc16, frame
from ..host.client import HostClient, LinkError
from .uart import SimUart

#: The board clock's period in the simulation.
PERIOD_NS = 10


async def _setup(dut):
    params = Params.from_json(os.environ["DUT_PARAMS"])
    seed = int(os.environ["SEED"])
    divisor = int(os.environ["NPUGEN_DIVISOR"])
    dut._log.info("params %s, SEED=%d, divisor %d", params.to_json(), seed, divisor)
    Clock(dut.clk, PERIOD_NS, unit="ns").start(start_high=False)
    dut.rst.value = 1
    dut.rx.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    uart = SimUart(dut, divisor, PERIOD_NS)
    client = HostClient(uart, block_of(params).signature(params))
    await client.check_board()
    return params, seed, uart, client


async def _workload(dut, client, params, seed, vectors=1):
    result = await block_of(params).workload(client, params, seed, vectors=vectors,
                                             log=dut._log.info)
    assert result["words"] > 0, result
    assert result["mismatches"] == 0, result
    assert not result["block_error"], result
    return result


@cocotb.test()
@cocotb.parametrize(gap=[0, 3])
async def test_end_to_end(dut, gap):
    """Load, run and read back through the UART; every word equals the golden model."""
    params, seed, uart, client = await _setup(dut)
    uart.gap = gap  # idle bit times between bytes, as a slow host would leave
    result = await _workload(dut, client, params, seed, vectors=2)
    assert not result["bad_frame"], result
    assert result["last_out"] > result["first_in"] > 0, result


async def _expect_error(client, data, code, seq):
    """Send raw ``data``; the reply must be an error ``code`` for ``seq``."""
    await client.transport.send(data)
    while True:
        r_seq, cmd, port, _, _ = await client._frame()
        if r_seq == seq:
            assert (cmd, port) == (P.REPLY_ERROR, code), (hex(cmd), port, code)
            return


@cocotb.test()
async def test_bad_frames(dut):
    """Every bad frame is answered with its error code and ignored; the block is untouched."""
    params, seed, uart, client = await _setup(dut)
    port, width, _ = max(client.inputs.values(), key=lambda v: v[0])  # the data input
    nb = -(-width // 8)
    corrupt = bytearray(frame(1, P.CMD_WRITE, port, 1, bytes(nb)))
    corrupt[6] ^= 0x10  # a payload bit flips on the line
    cases = [
        (bytes(corrupt), P.ERR_CRC, 1),
        (frame(2, 0x42, 0, 0), P.ERR_COMMAND, 2),
        (frame(3, P.CMD_READ, 7, 1), P.ERR_PORT, 3),
        (frame(4, P.CMD_READ, 0, 0), P.ERR_LENGTH, 4),
        (frame(5, P.CMD_WRITE, 0, 10_000, bytes(8)), P.ERR_LENGTH, 5),
        (frame(6, P.CMD_STATUS, 1, 0), P.ERR_PORT, 6),
        (frame(7, P.CMD_RESET, 0, 3), P.ERR_LENGTH, 7),
        (frame(8, P.CMD_STATUS, 0, 0)[:4], P.ERR_TIMEOUT, 8),  # truncated: the line goes quiet
    ]
    for data, code, seq in cases:
        await _expect_error(client, data, code, seq)
    # A seq above 127 is a bad header (replies carry it as received).
    body = bytes([0x80, P.CMD_STATUS, 0, 0, 0])
    await _expect_error(client, bytes([P.SYNC]) + body + crc16(body).to_bytes(2, "big"),
                        P.ERR_COMMAND, 0x80)
    status = await client.status()
    assert status["bad_frame"] and not status["block_error"], status
    assert status["first_in"] == 0, "no beat may have reached the block"
    assert not (await client.status())["bad_frame"], "STATUS clears the bad-frame flag"
    await _workload(dut, client, params, seed)


@cocotb.test()
async def test_a_stalled_block_never_locks_the_link(dut):
    """The block stops taking beats: the WRITE ends with ERR_STALL, and everything works after.

    (With the additive-check link this locked up for good: WRITE never answered, and RESET,
    STATUS and READ were ignored until the rst pin.)
    """
    params, seed, uart, client = await _setup(dut)
    port, width, _ = max(client.inputs.values(), key=lambda v: v[0])
    nb = -(-width // 8)
    per_frame = client.buffer_bytes // nb
    stalled = None
    # All-ones beats (every `last` set) until the block's buffers fill and it stops taking
    # them, or the registry's stalling beats for a block that takes any beat at once.
    stall = block_of(params).stall
    payload = b"\xff" * (per_frame * nb) if stall is None else b"".join(
        int(v).to_bytes(nb, "little") for v in stall(params, per_frame)).ljust(per_frame * nb,
                                                                            b"\0")
    for _ in range(64):
        try:
            await client.request(P.CMD_WRITE, port, per_frame, payload)
        except LinkError as exc:
            stalled = exc
            break
    assert stalled is not None and stalled.code == P.ERR_STALL, stalled
    assert 0 <= stalled.length < per_frame
    status = await client.status()
    assert status["stalled"], status
    await client.reset()
    await _workload(dut, client, params, seed)


@cocotb.test()
async def test_the_rest_of_a_bad_frame_is_not_a_frame(dut):
    """A corrupted length byte must not turn the rest of a frame into a frame.

    The WRITE's payload carries a whole WRITE frame to port 0: the link drops it with the
    rest (it drains until the line is quiet), and no beat reaches the block.
    """
    params, seed, uart, client = await _setup(dut)
    (_, width0, _), *_ = sorted(client.inputs.values(), key=lambda v: v[0])
    inner = frame(9, P.CMD_WRITE, 0, 1, bytes(-(-width0 // 8)))
    port, width, _ = max(client.inputs.values(), key=lambda v: v[0])
    nb = -(-width // 8)
    beats = -(-(len(inner) + 8) // nb)
    payload = (bytes(4) + inner).ljust(beats * nb, b"\0")
    outer = bytearray(frame(10, P.CMD_WRITE, port, beats, payload))
    outer[4] = 1  # len_lo: the receiver now expects one beat, then the CRC
    await _expect_error(client, bytes(outer), P.ERR_CRC, 10)
    status = await client.status()
    assert status["first_in"] == 0, "the embedded WRITE reached the block"
    await _workload(dut, client, params, seed)


@cocotb.test()
async def test_crc_catches_compensating_errors(dut):
    """Two payload bytes off by +1 and -1 keep an additive sum; the CRC rejects the frame."""
    params, seed, uart, client = await _setup(dut)
    port, width, _ = max(client.inputs.values(), key=lambda v: v[0])
    nb = -(-width // 8)
    good = bytearray(frame(11, P.CMD_WRITE, port, 2, bytes([0x52] * (2 * nb))))
    good[6] += 1
    good[7] -= 1
    await _expect_error(client, bytes(good), P.ERR_CRC, 11)
    assert (await client.status())["first_in"] == 0
    await _workload(dut, client, params, seed)


@cocotb.test()
async def test_client_resynchronises(dut):
    """Stale replies and stray sync bytes cost nothing: the client gets its own reply."""
    params, seed, uart, client = await _setup(dut)
    # A request whose reply nobody reads, then a normal one: the stale reply is dropped.
    await uart.send(frame(100, P.CMD_STATUS, 0, 0))
    status = await client.status()
    assert status["cycles"] > 0 and client.dropped >= 1
    # A stray sync byte just before a frame: the frame still counts.
    await uart.send(bytes([P.SYNC]))
    info = await client.info()
    assert info["version"] == P.VERSION
    # A garbage burst, then a normal exchange.
    await uart.send(bytes([0x00, 0xFF, P.SYNC, 0x13, 0x37]))
    await ClockCycles(dut.clk, 40 * uart.divisor)
    await _workload(dut, client, params, seed)


def _bad_frame(rng, client, kind):
    """One malformed input of ``kind`` (0..7) and its expected error code (None: no reply)."""
    port, width, _ = max(client.inputs.values(), key=lambda v: v[0])
    nb = -(-width // 8)
    seq = rng.randrange(P.SEQ_MAX + 1)
    if seq == P.SYNC & P.SEQ_MAX:
        # 0x80 | seq (kind 7, or kind 1 flipping bit 7) would be the sync byte itself: the
        # link then rightly resynchronises there, and no reply carries that number.
        seq ^= 1
    if kind == 0:  # line noise without a sync byte
        return bytes(rng.choice([b for b in range(256) if b != P.SYNC])
                     for _ in range(rng.randrange(1, 30))), None, None
    if kind == 1:  # a flipped bit anywhere after the sync byte
        data = bytearray(frame(seq, P.CMD_WRITE, port, 2, bytes(rng.randrange(256)
                                                                for _ in range(2 * nb))))
        data[rng.randrange(1, len(data))] ^= 1 << rng.randrange(8)
        return bytes(data), "any", data[1]
    if kind == 2:
        return frame(seq, rng.choice([0x00, 0x06, 0x42, 0x81, 0xFF]), 0, 0), P.ERR_COMMAND, seq
    if kind == 3:
        return frame(seq, P.CMD_READ, rng.randrange(3, 200), 1), P.ERR_PORT, seq
    if kind == 4:
        length = rng.choice([0, client.buffer_bytes // nb + 1, 0xFFFF])
        return frame(seq, P.CMD_WRITE, port, length, bytes(8)), P.ERR_LENGTH, seq
    if kind == 5:  # cut short: the line goes quiet mid-frame
        data = frame(seq, P.CMD_WRITE, port, 1, bytes(nb))
        return data[:rng.randrange(2, len(data) - 1)], P.ERR_TIMEOUT, seq
    if kind == 6:  # a length byte corrupted: the rest of the frame must not count
        inner = frame((seq + 1) & P.SEQ_MAX, P.CMD_WRITE, port, 1, bytes(nb))
        beats = -(-(len(inner) + 4) // nb)
        data = bytearray(frame(seq, P.CMD_WRITE, port, beats, inner.ljust(beats * nb, b"\0")))
        data[4] = rng.randrange(1, beats)
        return bytes(data), P.ERR_CRC, seq
    body = bytes([0x80 | seq, P.CMD_STATUS, 0, 0, 0])  # a sequence number above 127
    return bytes([P.SYNC]) + body + crc16(body).to_bytes(2, "big"), P.ERR_COMMAND, body[0]


@cocotb.test()
async def test_fuzz(dut):
    """Seeded malformed input interleaved with good workloads.

    Each round: RESET, a random malformed input (noise, bit flips, bad command, port or
    length, a frame cut short, a corrupted length, a bad sequence number), its error reply
    (when it is a frame), STATUS showing that no beat reached the block, then a workload
    whose every word must be exact. ``NPUGEN_FUZZ_ROUNDS`` rounds (default 16); the eight
    kinds of malformed input in a shuffled order, each once in every eight rounds.
    """
    import random

    params, seed, uart, client = await _setup(dut)
    rng = random.Random(seed)
    rounds = int(os.environ.get("NPUGEN_FUZZ_ROUNDS", "16"))
    kinds = [k for _ in range(-(-rounds // 8)) for k in rng.sample(range(8), 8)]
    for r in range(rounds):
        await client.reset()
        data, code, seq = _bad_frame(rng, client, kinds[r])
        await uart.send(data)
        if code is not None:
            while True:
                r_seq, cmd, port, _, _ = await client._frame()
                if r_seq == seq:
                    break
            assert cmd == P.REPLY_ERROR, (r, data.hex(), hex(cmd))
            assert code == "any" or port == code, (r, data.hex(), port, code)
        await ClockCycles(dut.clk, 40 * uart.divisor)  # the line goes quiet
        status = await client.status()
        assert status["first_in"] == 0, f"round {r}: a beat from {data.hex()} reached the block"
        await _workload(dut, client, params, (seed + r) & 0xFFFF)
    dut._log.info("fuzz: %d malformed inputs, %d workloads exact, %d replies dropped",
                  rounds, rounds, client.dropped)
