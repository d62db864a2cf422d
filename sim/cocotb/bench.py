"""The bench base every cocotb bench builds on: set-up, traffic, completion, reset, checks.

A :class:`Bench` reads the core's parameters (``DUT_PARAMS``, with the block's name) and
seed (``SEED``) from the environment, finds the core's ports in the block registry (its
``signature(params)``, or its part's when ``NPUGEN_PART`` names one), and gives every input
stream a :class:`~.streams.Source` and every output stream a :class:`~.streams.Sink` under
one traffic pattern. A bench queues beats (from :mod:`npugen.sim.formats`), records the
expected output beats (from the golden model), runs until every sink has them all and then
compares every word; :meth:`Bench.reset_mid_stream` is the reset check every bench makes.
"""

import json
import os
import random

import numpy as np
from amaranth.lib import stream
from amaranth.lib.wiring import In

from npugen.rtl.common.params import Params

from ..blocks import block_of
from ..models.intmath import signed_range
from .streams import Sink, Source, StreamEngine

__all__ = ["TRAFFIC", "Bench", "check_words", "random_values", "write_result"]

#: Traffic patterns: (probability of an idle cycle between input beats, of a stalled output).
TRAFFIC = {
    "steady": (0.0, 0.0),
    "gaps": (0.4, 0.0),
    "backpressure": (0.0, 0.6),
    "both": (0.3, 0.3),
}


def random_values(nrng, bits, shape, kind="random"):
    """Signed ``bits``-bit test data: random (salted with both extremes), extremes, min, max."""
    lo, hi = signed_range(bits)
    if kind == "random":
        x = nrng.integers(lo, hi + 1, size=shape, dtype=np.int64)
        # Salt with the extremes so every run sees e.g. -128 and 127.
        x.flat[nrng.integers(0, x.size, size=max(1, x.size // 8))] = lo
        x.flat[nrng.integers(0, x.size, size=max(1, x.size // 8))] = hi
        return x
    if kind == "extremes":
        return nrng.choice([lo, hi], size=shape)
    if kind == "min":
        return np.full(shape, lo, dtype=np.int64)
    if kind == "max":
        return np.full(shape, hi, dtype=np.int64)
    raise ValueError(f"kind must be random, extremes, min or max, not {kind!r}")


def check_words(dut, got, expected, what):
    """Compare every received word with the model; log the first mismatches precisely."""
    assert len(got) == len(expected), f"{what}: {len(got)} words, expected {len(expected)}"
    bad = [i for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e]
    for i in bad[:5]:
        dut._log.error("%s word %d: got %s expected %s", what, i, got[i], expected[i])
    assert not bad, f"{what}: {len(bad)} of {len(got)} words differ (first at {bad[0]})"


def write_result(values):
    """Write metrics to the JSON file named by ``NPUGEN_RESULT``, if any."""
    path = os.environ.get("NPUGEN_RESULT")
    if path:
        with open(path, "w") as f:
            json.dump(values, f)


class Bench:
    """A core under test with a source or sink on every stream port.

    Attributes
    ----------
    params : Params
        The core's parameters.
    rng, nrng : random.Random, numpy.random.Generator
        Seeded from ``SEED`` (logged): traffic, test data and timing choices.
    src, snk : dict
        :class:`~.streams.Source` per input stream, :class:`~.streams.Sink` per output
        stream, by port name; also reachable as attributes (``bench.i_act``, ``bench.o``).
    expected : dict
        Expected output beats per sink, in order.
    engine : StreamEngine
        Clock, reset and the cycle loop.
    """

    def __init__(self, dut, traffic="steady"):
        self.dut = dut
        self.params = Params.from_json(os.environ["DUT_PARAMS"])
        part = os.environ.get("NPUGEN_PART")
        block = block_of(self.params)
        members = (block.part(part).signature if part else block.signature)(self.params)
        seed = int(os.environ["SEED"])
        dut._log.info("params %s%s, SEED=%d, traffic %s", self.params.to_json(),
                      f" ({part})" if part else "", seed, traffic)
        self.rng = random.Random(seed)
        self.nrng = np.random.default_rng(seed)
        idle, stall = TRAFFIC[traffic]
        self.src, self.snk = {}, {}
        for name, member in members.items():
            if member.is_signature and isinstance(member.signature, stream.Signature):
                layout = member.signature.members["payload"].shape
                if member.flow == In:
                    self.src[name] = Source(dut, name, layout, idle)
                else:
                    self.snk[name] = Sink(dut, name, layout, stall)
        self.expected = {name: [] for name in self.snk}
        self.engine = StreamEngine(dut, self.rng, self.src.values(), self.snk.values())

    def __getattr__(self, name):
        ports = self.__dict__.get("src", {}) | self.__dict__.get("snk", {})
        if name in ports:
            return ports[name]
        raise AttributeError(name)

    def expect(self, sink, beats):
        """Append ``beats`` to what output stream ``sink`` must deliver."""
        self.expected[sink] += list(beats)

    def done(self):
        """Return whether every sink has received every expected beat."""
        return all(len(s.got) >= len(self.expected[n]) for n, s in self.snk.items())

    async def start(self):
        """Start the clock and hold reset for two cycles."""
        await self.engine.start()

    async def run(self, until=None, timeout=100_000):
        """Step until ``until()`` (default: :meth:`done`); fail after ``timeout`` cycles."""
        await self.engine.run(until or self.done, timeout=timeout)

    async def finish(self, what, timeout=100_000, view=None):
        """Run until done, idle five more cycles, then compare every word of every sink.

        ``view(sink name, beats)`` maps received beats before the comparison (e.g. blank the
        lanes a mask marks as absent).
        """
        await self.run(timeout=timeout)
        await self.engine.idle(5)
        for name, sink in self.snk.items():
            got = view(name, sink.got) if view else sink.got
            check_words(self.dut, got, self.expected[name], f"{what}: {name}")

    def clear(self):
        """Forget received and expected beats (after a reset)."""
        for name, sink in self.snk.items():
            sink.got.clear()
            sink.cycles.clear()
            self.expected[name].clear()

    async def reset_mid_stream(self, quiet, cycles=None, view=None):
        """Reset now, with traffic in flight: the standard check of every bench.

        Checks that what came out before is a prefix of the model's output, holds reset for
        ``cycles`` (default: 1 to 3 at random), forgets everything queued, then idles for
        ``quiet`` cycles in which nothing may come out.
        """
        for name, sink in self.snk.items():
            got = view(name, sink.got) if view else list(sink.got)
            assert got == self.expected[name][:len(got)], \
                f"{name}: output before reset is not a prefix of the model's"
        await self.engine.reset(self.rng.randrange(1, 4) if cycles is None else cycles)
        self.clear()
        await self.engine.idle(quiet)
        stale = {name: len(sink.got) for name, sink in self.snk.items() if sink.got}
        assert not stale, f"stale beats after reset: {stale}"
