"""Ready/valid stream sources and sinks for cocotb, stepped by one cycle loop.

One coroutine (:class:`StreamEngine`) steps every port each clock cycle: drive, settle
(``ReadOnly``), sample the handshake, clock edge, commit. A single loop is deterministic for a
given seed and about twice as fast as one coroutine per port.

Sources insert random idle cycles between beats (never withdrawing a beat once offered);
sinks drop ``ready`` at random. Sinks also check the stream rule on the DUT side: once
``valid`` is high without ``ready``, the same payload must stay valid until taken.
"""

from collections import deque

from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from ..formats.beats import pack, unpack

__all__ = ["Sink", "Source", "StreamEngine"]


class Source:
    """Drives the input stream ``<name>__{valid,ready,payload}`` of ``dut``.

    Queue items are payload values (dict/list/int, packed with ``layout``) or callables that
    return a payload value or None (not available yet: the source idles), for beats that
    depend on earlier results.
    """

    def __init__(self, dut, name, layout, idle=0.0):
        self.name = name
        self.layout = layout
        self.idle = idle
        self._valid = getattr(dut, f"{name}__valid")
        self._ready = getattr(dut, f"{name}__ready")
        self._payload = getattr(dut, f"{name}__payload")
        self.queue = deque()
        self.current = None
        self.accept_cycles = []
        self._valid.value = 0

    def put(self, *beats):
        """Queue beats (values or callables) to send in order."""
        self.queue.extend(beats)

    @property
    def idle_now(self):
        """True when nothing is offered and nothing is queued."""
        return self.current is None and not self.queue

    def drive(self, rng):
        """Before the edge: offer the next beat, unless a random idle cycle comes first."""
        if self.current is None and self.queue and not (self.idle and rng.random() < self.idle):
            item = self.queue[0]
            beat = item() if callable(item) else item
            if beat is not None:
                self.queue.popleft()
                self.current = pack(self.layout, beat)
                self._payload.value = self.current
                self._valid.value = 1
                return
        if self.current is None:
            self._valid.value = 0

    def sample(self):
        """After settling: return whether the handshake happens on this edge."""
        return self.current is not None and int(self._ready.value) == 1

    def commit(self, fired, cycle):
        """After the edge: retire the beat taken in ``cycle``."""
        if fired:
            self.accept_cycles.append(cycle)
            self.current = None

    def flush(self):
        """Forget everything queued and withdraw the current beat (used with reset)."""
        self.queue.clear()
        self.current = None
        self._valid.value = 0


class Sink:
    """Receives the output stream ``<name>__{valid,ready,payload}`` of ``dut``."""

    def __init__(self, dut, name, layout, stall=0.0):
        self.name = name
        self.layout = layout
        self.stall = stall
        self._valid = getattr(dut, f"{name}__valid")
        self._ready = getattr(dut, f"{name}__ready")
        self._payload = getattr(dut, f"{name}__payload")
        self.got = []
        self.cycles = []
        self._ready_now = False
        self._pending = None  # payload offered but not taken in the previous cycle
        self._ready.value = 0

    def drive(self, rng):
        """Before the edge: raise or drop ``ready`` at random."""
        self._ready_now = not (self.stall and rng.random() < self.stall)
        self._ready.value = int(self._ready_now)

    def sample(self):
        """After settling: check the stream rule and read ``(valid, payload)``."""
        valid = int(self._valid.value) == 1
        if self._pending is not None:
            if not valid:
                raise AssertionError(f"{self.name}: valid dropped before the handshake")
            if int(self._payload.value) != self._pending:
                raise AssertionError(f"{self.name}: payload changed while valid & ~ready")
        raw = int(self._payload.value) if valid else None
        return valid, raw

    def commit(self, sampled, cycle):
        """After the edge: keep the payload if the handshake happened."""
        valid, raw = sampled
        if valid and self._ready_now:
            self.got.append(unpack(self.layout, raw))
            self.cycles.append(cycle)
            self._pending = None
        else:
            self._pending = raw if valid else None

    def flush(self):
        """Forget a pending beat and drop ``ready`` (used with reset)."""
        self._pending = None
        self._ready.value = 0


class StreamEngine:
    """Clock, reset and the cycle loop for a set of sources and sinks."""

    def __init__(self, dut, rng, sources=(), sinks=(), period_ns=10):
        self.dut = dut
        self.rng = rng
        self.sources = list(sources)
        self.sinks = list(sinks)
        self.cycle = 0
        #: Callables ``f(cycle)`` run every cycle after the signals settle (e.g. counters).
        self.monitors = []
        self._period_ns = period_ns
        self._clock = None

    async def start(self):
        """Start the clock and hold reset for two cycles."""
        self._clock = Clock(self.dut.clk, self._period_ns, unit="ns")
        self._clock.start(start_high=False)
        await self.reset()

    async def reset(self, cycles=2):
        """Assert synchronous reset for ``cycles`` edges; ports go idle meanwhile."""
        for port in self.sources + self.sinks:
            port.flush()
        self.dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
            self.cycle += 1
        self.dut.rst.value = 0

    async def step(self):
        """Advance one clock cycle: drive, settle, sample, edge, commit."""
        ports = self.sources + self.sinks
        for port in ports:
            port.drive(self.rng)
        await ReadOnly()
        sampled = [port.sample() for port in ports]
        for monitor in self.monitors:
            monitor(self.cycle)
        await RisingEdge(self.dut.clk)
        for port, s in zip(ports, sampled, strict=True):
            port.commit(s, self.cycle)
        self.cycle += 1

    async def run(self, until, timeout=100_000):
        """Step until ``until()`` is true; fail after ``timeout`` cycles."""
        start = self.cycle
        while not until():
            if self.cycle - start >= timeout:
                state = ", ".join(f"{s.name}: {len(s.got)} received" for s in self.sinks)
                raise AssertionError(f"timeout after {timeout} cycles ({state})")
            await self.step()

    async def idle(self, cycles):
        """Step ``cycles`` cycles regardless of progress."""
        for _ in range(cycles):
            await self.step()
