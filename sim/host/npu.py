"""Host side of the NPU's command port: command words, reply parsing, program loading.

Pure functions over 32-bit words (:mod:`npugen.rtl.npu.protocol`): the same words go to the
Amaranth simulation, the Verilator bench and, framed, through the UART link.
"""

import numpy as np

from npugen.rtl.npu.isa import ErrorCode, Op
from npugen.rtl.npu.params import params_hash
from npugen.rtl.npu.protocol import (
    MEMORY_IDS,
    STATUS_FIELDS,
    STATUS_WORDS,
    Command,
    HostError,
    chunks,
)

from ..compiler.execute import output_words_count
from ..formats.program import (
    Program,
    assemble,
    header_for,
    table_words,
    tensor_words,
    weight_words,
)
from ..models.npu import NpuModel, NpuState
from ..models.requant import float32_scale, quantize_multiplier
from .client import finish_workload

__all__ = ["abort", "demo_program", "infer_on_client", "load_program", "read", "read_reply_words",
           "run_npu",
           "start", "status", "status_of", "unpack", "write"]

MASK32 = (1 << 32) - 1


def _command(cmd, memory=0, count=0, arg=0):
    if not 0 <= count < 1 << 24:
        raise ValueError(f"count must be in 0..{(1 << 24) - 1}, not {count}")
    return [int(cmd) | (int(memory) << 4) | (count << 8), arg & MASK32]


def _memory(memory):
    if memory not in MEMORY_IDS:
        raise ValueError(f"memory must be one of {', '.join(MEMORY_IDS)}, not {memory!r}")
    return MEMORY_IDS[memory]


def write(memory, address, words, lanes):
    """Command words that write ``words`` (packed ints) at ``address`` of ``memory``."""
    mid = _memory(memory)
    n = chunks(mid, lanes)
    out = _command(Command.WRITE, mid, len(words), address)
    for word in words:
        out += [(int(word) >> (32 * k)) & MASK32 for k in range(n)]
    return out


def read(memory, address, count):
    """Command words that read ``count`` words of ``memory`` from ``address``."""
    return _command(Command.READ, _memory(memory), count, address)


def read_reply_words(memory, count, lanes):
    """Reply words a READ of ``count`` words of ``memory`` produces."""
    return count * chunks(_memory(memory), lanes)


def unpack(memory, replies, lanes):
    """Memory words (ints) from a READ's reply words."""
    n = chunks(_memory(memory), lanes)
    if len(replies) % n:
        raise ValueError(f"{len(replies)} reply words are not a whole number of words")
    return [sum(int(replies[i + k]) << (32 * k) for k in range(n))
            for i in range(0, len(replies), n)]


def start(address=0):
    """Command words that start the program at instruction ``address``."""
    return _command(Command.START, arg=address)


def status():
    """Command words that ask for the status (:data:`STATUS_WORDS` reply words)."""
    return _command(Command.STATUS)


def abort():
    """Command words that stop a running program."""
    return _command(Command.ABORT)


def status_of(replies):
    """Parse a STATUS reply into a dict (state and codes as enums)."""
    if len(replies) != STATUS_WORDS:
        raise ValueError(f"a status reply is {STATUS_WORDS} words, not {len(replies)}")
    values = dict(zip(STATUS_FIELDS, (int(r) for r in replies), strict=True))
    word = values.pop("state")
    values.update(state=NpuState(word & 3), error=ErrorCode((word >> 4) & 0xF),
                  host_error=HostError((word >> 8) & 0xF), version=(word >> 16) & 0xFF)
    values["pc"] &= 0xFFFF
    return values


def load_program(program, lanes):
    """Command words that load ``program``'s segments and its instructions (from word 0)."""
    out = []
    for memory, address, words in program.segments:
        out += write(memory, address, words, lanes)
    return out + write("imem", 0, program.insns, lanes)


def demo_program(p, rng, *, size=6, channels=3, features=4, classes=5, mode="ort"):
    """Return a small CNN for NPU ``p``: conv 3x3 (same), max-pool 2x2, fully connected.

    Random int8 input (``size x size x channels``), weights and requantization tables
    (scales of a typical layer, ``mode`` rounding). The convolution runs on the Winograd
    engine when the NPU has one that holds its channels. Returns ``(program, act)``: the
    :class:`~npugen.sim.formats.program.Program` and the activation words of the input
    (written at word 0 before the program runs). The output, ``classes`` int8 values, is at
    activation word ``p.act_words + 64``.
    """
    modes = ("ort", "tflite", "gemmlowp")
    lanes = p.lanes
    a = p.act_words
    half = size // 2
    x = rng.integers(-128, 128, size=(size, size, channels))
    w1 = rng.integers(-128, 128, size=(features, channels, 3, 3))
    w2 = rng.integers(-128, 128, size=(classes, features, half, half))
    table = []
    for _ in range(features + classes):
        scale = float(np.float32(2.0 ** rng.uniform(-13, -9)))
        mult, shift = float32_scale(scale) if mode == "ort" else quantize_multiplier(scale)
        table.append({"bias": int(rng.integers(-2000, 2000)), "multiplier": mult,
                      "shift": shift, "zero_point": int(rng.integers(-10, 10)), "lo": -128,
                      "hi": 127})
    words1 = weight_words(w1, lanes)
    m = modes.index(mode)
    wg = p.winograd
    engine = int(wg is not None and channels <= wg.c_max and features <= wg.k_max)
    insns = [
        header_for(p),
        assemble(Op.CONV, engine=engine, mode=m, src=0, dst=a, wgt=0, tab=0, in_h=size,
                 in_w=size,
                 cin=channels, cout=features, out_h=size, out_w=size, kernel=3, stride=1,
                 pad_t=1, pad_l=1, zp_in=int(rng.integers(-20, 20))),
        assemble(Op.MAXPOOL, src=a, dst=0, in_h=size, in_w=size, channels=features,
                 out_h=half, out_w=half, kernel=2, stride=2, pad_t=0, pad_l=0),
        assemble(Op.CONV, engine=0, mode=m, src=0, dst=a + 64, wgt=len(words1), tab=features,
                 in_h=half, in_w=half, cin=features, cout=classes, out_h=1, out_w=1,
                 kernel=half, stride=1, pad_t=0, pad_l=0, zp_in=int(rng.integers(-20, 20))),
        assemble(Op.HALT),
    ]
    program = Program(params_hash=params_hash(p), insns=insns,
                      segments=[("wgt", 0, words1 + weight_words(w2, lanes)),
                                ("tab", 0, table_words(table))])
    return program, tensor_words(x, lanes)


async def run_npu(client, params, seed, vectors=2, log=print):
    """Run ``vectors`` small CNNs (:func:`demo_program`) through the NPU; check every word.

    Each program and its input go in through the link, the NPU runs it on its own, and the
    output words are read back and compared with the instruction-level simulator
    (:class:`~npugen.sim.models.npu.NpuModel`). Returns the workload summary.
    """
    p = params
    rng = np.random.default_rng(seed)
    await client.reset()
    mismatches, words = 0, 0
    for n in range(vectors):
        mode = ("ort", "tflite", "gemmlowp")[n % 3]
        # Small enough to load quickly over a simulated UART.
        program, act = demo_program(p, rng, size=2, channels=1, features=2, classes=2,
                                    mode=mode)
        model = NpuModel(p)
        model.write("act", 0, act)
        program.load_into(model)
        expected = model.run(0)
        await client.write("i", write("act", 0, act, p.lanes) + load_program(program, p.lanes)
                           + start(0))
        for _ in range(1000):
            await client.write("i", status())
            st = status_of(await client.read("o", STATUS_WORDS))
            if st["state"] is not NpuState.RUNNING:
                break
        out = p.act_words + 64
        await client.write("i", read("act", out, 2))
        got = unpack("act", await client.read("o", read_reply_words("act", 2, p.lanes)),
                     p.lanes)
        want = model.read("act", out, 2)
        bad = sum(g != w for g, w in zip(got, want, strict=True))
        bad += st["state"] is not expected.state
        bad += expected.state is not NpuState.DONE  # the program must fit the NPU
        log(f"program {n} ({mode}): {st['state'].name}, {st['cycles']} cycles, "
            f"{st['retired']} instructions, {bad} mismatches")
        mismatches += bad
        words += len(want)
    return await finish_workload(client, words, mismatches, log)


async def infer_on_client(client, compiled, batch_words, progress=None, max_polls=100_000):
    """Run a compiled network through a link client (the board, or its Verilator model).

    Loads the program once, then for each image (a list of activation words) writes it,
    starts the program, polls the status until the NPU stops and reads the output words.
    Returns ``(outputs, cycles)``: each image's output words and the NPU's cycle count.
    Raises RuntimeError if the NPU stops with an error or never stops.
    """
    p = compiled.params
    await client.reset()
    await client.write("i", load_program(compiled.program, p.lanes))
    address = compiled.plan["input"]["address"]
    out, count = compiled.plan["output"]["address"], output_words_count(compiled)
    outputs, cycles = [], []
    for n, image in enumerate(batch_words):
        await client.write("i", write("act", address, image, p.lanes) + start(0))
        for _ in range(max_polls):
            await client.write("i", status())
            st = status_of(await client.read("o", STATUS_WORDS))
            if st["state"] is not NpuState.RUNNING:
                break
        else:
            raise RuntimeError(f"image {n}: the NPU still runs after {max_polls} polls")
        if st["state"] is not NpuState.DONE:
            raise RuntimeError(f"image {n}: the NPU stopped with {st['state'].name} "
                               f"{st['error'].name} at instruction {st['pc']}")
        await client.write("i", read("act", out, count))
        outputs.append(unpack("act", await client.read("o", read_reply_words(
            "act", count, p.lanes)), p.lanes))
        cycles.append(st["cycles"])
        if progress is not None:
            progress(n + 1, len(batch_words))
    return outputs, cycles
