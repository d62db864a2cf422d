"""Stream helpers for Amaranth-simulator tests (the fast tier below cocotb/Verilator).

Both helpers take a ``random.Random`` and a probability of an idle (or stalled) cycle, so a
test can exercise random gaps and random backpressure reproducibly from a seed.
"""

__all__ = ["cycles_until", "recv", "reset_mid_stream", "send", "simulate"]


async def _handshake(ctx, port, timeout):
    """Wait (``valid`` high) for the edge that takes the beat; fail after ``timeout`` edges."""
    for _ in range(timeout):
        _, _, ready = await ctx.tick().sample(port.ready)
        if ready:
            return
    raise AssertionError(f"timeout: {port} not ready in {timeout} cycles")


async def send(ctx, port, beats, rng=None, idle=0.0, timeout=100_000):
    """Drive ``beats`` (payload values) into the stream ``port``, inserting random gaps.

    The payload is set before ``valid`` and held stable until the handshake. Raises
    AssertionError if a beat waits ``timeout`` cycles (a wedged port fails, never hangs).
    """
    for beat in beats:
        while rng is not None and rng.random() < idle:
            await ctx.tick()
        ctx.set(port.payload, beat)
        ctx.set(port.valid, 1)
        await _handshake(ctx, port, timeout)
        ctx.set(port.valid, 0)


async def cycles_until(ctx, port, beats, condition, limit=1000):
    """Send ``beats`` into ``port`` back to back; count the edges until ``condition``.

    Returns the clock edges from the last handshake's edge until ``condition(ctx)`` holds
    (0: it holds right after that edge). Raises AssertionError if it does not hold within
    ``limit`` edges.
    """
    for beat in beats:
        ctx.set(port.payload, beat)
        ctx.set(port.valid, 1)
        await _handshake(ctx, port, 100_000)
    ctx.set(port.valid, 0)
    for edges in range(limit):
        if condition(ctx):
            return edges
        await ctx.tick()
    raise AssertionError(f"condition not met {limit} cycles after the last beat")


async def recv(ctx, port, count, rng=None, stall=0.0, timeout=100_000):
    """Collect ``count`` payloads from the stream ``port`` with random backpressure.

    Returns the payloads (as simulator values). Raises AssertionError after ``timeout``
    cycles without completing.
    """
    out = []
    for _ in range(timeout):
        if len(out) == count:
            return out
        ready = not (rng is not None and rng.random() < stall)
        ctx.set(port.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        if valid and ready:
            out.append(payload)
    raise AssertionError(f"timeout: got {len(out)} of {count} beats")


def reset_mid_stream(dut, before, after, latency):
    """Fill ``dut`` (a lockstep pipeline) with ``before``, reset it, then stream ``after``.

    ``dut.o`` is held back while ``before`` goes in; the test fails unless a beat waits at the
    output then and nothing comes out in the ``latency + 2`` cycles after the reset. Returns
    the payloads received for ``after``.
    """
    from amaranth.hdl import Module, ResetInserter, Signal

    rst = Signal()
    top = Module()
    top.submodules.dut = ResetInserter(rst)(dut)
    settle = len(before) + latency + 8  # the stream after the reset starts here
    got = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)  # hold everything inside
        for beat in before:
            ctx.set(dut.i.payload, beat)
            ctx.set(dut.i.valid, 1)
            await ctx.tick()
        ctx.set(dut.i.valid, 0)
        await ctx.tick()
        assert ctx.get(dut.o.valid)  # a beat waits at the output
        ctx.set(rst, 1)
        await ctx.tick()
        ctx.set(rst, 0)
        ctx.set(dut.o.ready, 1)
        for _ in range(latency + 2):
            assert not ctx.get(dut.o.valid)
            await ctx.tick()

    async def producer(ctx):
        await ctx.tick().repeat(settle)
        await send(ctx, dut.i, after)

    async def consumer(ctx):
        await ctx.tick().repeat(settle)
        got.extend(await recv(ctx, dut.o, len(after)))

    simulate(top, bench, producer, consumer)
    return got


def simulate(dut, *benches, background=(), period=1e-8):
    """Run ``dut`` with a clock: the ``benches`` to completion, ``background`` ones alongside."""
    from amaranth.sim import Simulator

    sim = Simulator(dut)
    sim.add_clock(period)
    for bench in benches:
        sim.add_testbench(bench)
    for bench in background:
        sim.add_testbench(bench, background=True)
    sim.run()
