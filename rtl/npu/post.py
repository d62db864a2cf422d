"""Post-processing: int32 sums of one output word -> bias, requantization, packed int8 word."""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .isa import TABLE_ENTRY
from .params import NpuParams
from .requant import Requantizer
from .requant_compact import CompactRequantizer
from .requant_serial import SerialRequantizer

__all__ = ["PostUnit", "post_in_layout"]


def post_in_layout(p):
    """One output word to finish: ``lanes`` sums, where it goes, its channels."""
    return data.StructLayout({
        "acc": data.ArrayLayout(signed(32), p.lanes),
        "addr": unsigned(p.act_addr_bits),  # activation word address of the result
        "chan": unsigned(12),   # table entry of lane 0 (the word's first output channel)
        "count": range(p.lanes + 1),  # lanes that hold channels; the rest are 0
    })


class PostUnit(wiring.Component):
    """Bias add, per-channel requantization and packing, for CONV and AVGPOOL results.

    Each input beat is one output word: lane ``l`` becomes
    ``requantize(mode, wrap32(acc[l] + bias), table[chan + l])`` (:class:`Requantizer`,
    rounding ``mode`` of the instruction), lanes ``count`` and up become 0, and the packed
    word is written to activation address ``addr``.

    With ``p.post_lanes`` requantizers a beat has ``lanes / post_lanes`` parts.

    - :class:`Requantizer` (pipelined): the table entries of the word's channels are
      cached: a beat whose ``chan`` differs from the cached one first loads ``count``
      entries (one per cycle, plus one); then one part per cycle.
    - :class:`SerialRequantizer` (``p.requant_serial``; :class:`CompactRequantizer` with
      ``p.requant_compact``): no cache: before each part its
      ``post_lanes`` entries are read (one per cycle, plus one), while the units still
      work on the part before; a part every ``SerialRequantizer.interval`` cycles (the
      parameters allow at most 20 units, 19 with ``requant_ort_only``, so the reads never
      take longer). The last
      entry is not copied: ``tab_data`` holds it until the part is fed (the read port
      must hold its data while ``tab_en`` is low, and no one else may read the table).

    Results never stall (the write port is always free), so a word is written
    ``latency + 1`` cycles after its last part entered (the unit's latency).

    Members
    -------
    i : In(stream.Signature(post_in_layout(p)))
    mode : In(2)
        Rounding (:class:`~.requant.Rounding`), constant during an instruction.
    invalidate : In(1)
        Forget the cached table entries (at every instruction start).
    tab_addr, tab_en : Out  /  tab_data : In(TABLE_ENTRY)
        Table read port (synchronous: data the cycle after ``tab_en``).
    wr_addr, wr_data, wr_en : Out
        Activation write port.
    idle : Out(1)
        Nothing accepted is still on its way to the write port.
    """

    def __init__(self, p):
        if not isinstance(p, NpuParams):
            raise TypeError(f"p must be NpuParams, not {type(p).__name__}")
        self.p = p
        super().__init__({
            "i": In(stream.Signature(post_in_layout(p))),
            "mode": In(2),
            "invalidate": In(1),
            "tab_addr": Out(12), "tab_en": Out(1), "tab_data": In(TABLE_ENTRY),
            "wr_addr": Out(16), "wr_data": Out(8 * p.lanes), "wr_en": Out(1),
            "idle": Out(1),
        })

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.p
        lanes, units = p.lanes, p.post_lanes
        parts = lanes // units
        beat = self.i.payload

        part = Signal(range(max(parts, 2)))
        if p.requant_serial:
            # One part's entries at a time, read while the units work on the part before
            # (``units + 3`` cycles from a feed to the next at the earliest; at most 20
            # units, 19 ort-only, so within the interval): ``units - 1`` registers, the read
            # port holds the last entry (nothing else reads the table while a program runs,
            # and the next part's reads start only after this part is fed).
            entries = [Signal(TABLE_ENTRY, name=f"entry_{u}") for u in range(units - 1)]
            entries.append(self.tab_data)
            fetched = Signal()
            fetching = Signal()
            fetch_idx = Signal(range(max(units, 2)))
            capture = Signal()  # tab_data holds entry capture_idx this cycle
            capture_idx = Signal(range(max(units, 2)))
            lane0 = Signal(range(lanes))
            m.d.comb += lane0.eq(part * units)
            m.d.sync += capture.eq(0)
            with m.If(~fetched & ~fetching & ~capture & self.i.valid & ~self.invalidate):
                m.d.sync += [fetching.eq(1), fetch_idx.eq(0)]
            with m.If(fetching):
                with m.If(lane0 + fetch_idx < beat.count):
                    m.d.comb += [self.tab_addr.eq(beat.chan + lane0 + fetch_idx),
                                 self.tab_en.eq(1)]
                m.d.sync += [capture.eq(1), capture_idx.eq(fetch_idx),
                             fetch_idx.eq(fetch_idx + 1)]
                with m.If(fetch_idx == units - 1):
                    m.d.sync += fetching.eq(0)
            with m.If(capture):
                with m.Switch(capture_idx):
                    for u in range(units - 1):
                        with m.Case(u):
                            m.d.sync += entries[u].eq(self.tab_data)
                with m.If(capture_idx == units - 1):
                    m.d.sync += fetched.eq(1)
            with m.If(self.invalidate):
                m.d.sync += fetched.eq(0)
            ready_to_feed = fetched
            table_busy = fetching | capture

            def entry(lane):
                return entries[lane % units]
        else:
            # Table cache of the word's ``lanes`` channels.
            entries = [Signal(TABLE_ENTRY, name=f"entry_{c}") for c in range(lanes)]
            cached = Signal(12)
            cache_ok = Signal()
            loading = Signal()
            load_idx = Signal(range(lanes + 1))
            capture = Signal()  # tab_data holds entry capture_idx this cycle
            capture_idx = Signal(range(max(lanes, 2)))
            m.d.sync += capture.eq(0)
            with m.If(self.invalidate):
                m.d.sync += cache_ok.eq(0)
            hit = cache_ok & (cached == beat.chan)
            with m.If(~loading & self.i.valid & ~hit & ~self.invalidate):
                m.d.sync += [loading.eq(1), load_idx.eq(0), cached.eq(beat.chan)]
            with m.If(loading):
                with m.If(load_idx < beat.count):
                    m.d.comb += [self.tab_addr.eq(cached + load_idx), self.tab_en.eq(1)]
                    m.d.sync += [capture.eq(1), capture_idx.eq(load_idx)]
                m.d.sync += load_idx.eq(load_idx + 1)
                with m.If(load_idx == lanes):
                    m.d.sync += [loading.eq(0), cache_ok.eq(1)]
            with m.If(capture):
                with m.Switch(capture_idx):
                    for c in range(lanes):
                        with m.Case(c):
                            m.d.sync += entries[c].eq(self.tab_data)
            ready_to_feed = hit & ~loading
            table_busy = loading

            def entry(lane):
                return entries[lane]

        # Feed the requantizers, ``units`` lanes per part.
        units_ = []
        for u in range(units):
            if p.requant_compact:  # (a serial unit too: same hand-shake, longer interval)
                rq = CompactRequantizer(8)
            elif p.requant_serial:
                rq = SerialRequantizer(8, ort_only=p.requant_ort_only)
            else:
                rq = Requantizer(8)
            m.submodules[f"requant_{u}"] = rq
            units_.append(rq)
        present = Signal()  # a part waits for the units; they take it when ready
        feeding = Signal()
        m.d.comb += [present.eq(self.i.valid & ready_to_feed & ~self.invalidate),
                     feeding.eq(present & units_[0].i.ready)]  # the units run in lockstep
        last_part = part == parts - 1
        m.d.comb += self.i.ready.eq(feeding & last_part)
        with m.If(feeding):
            m.d.sync += part.eq(0 if parts == 1 else part + 1)
            with m.If(last_part):
                m.d.sync += part.eq(0)
            if p.requant_serial:
                m.d.sync += fetched.eq(0)
        for u, rq in enumerate(units_):
            m.d.comb += [rq.i.valid.eq(present), rq.o.ready.eq(1)]
            with m.Switch(part):
                for k in range(parts):
                    with m.Case(k):
                        lane = k * units + u
                        e = entry(lane)
                        m.d.comb += [
                            rq.i.payload.acc.eq(beat.acc[lane] + e.bias),
                            rq.i.payload.multiplier.eq(e.multiplier),
                            rq.i.payload.shift.eq(e.shift),
                            rq.i.payload.zero_point.eq(e.zero_point),
                            rq.i.payload.lo.eq(e.lo),
                            rq.i.payload.hi.eq(e.hi),
                            rq.i.payload.mode.eq(self.mode),
                        ]

        # The beat's address, count and part travel beside the requantizers.
        meta = data.StructLayout({"valid": 1, "addr": p.act_addr_bits, "count": range(lanes + 1),
                                  "part": range(max(parts, 2))})
        entering = Signal(meta)
        m.d.comb += [entering.valid.eq(feeding), entering.addr.eq(beat.addr),
                     entering.count.eq(beat.count), entering.part.eq(part)]
        out = Signal(meta)
        if p.requant_serial:
            # At most two parts in flight (LATENCY = INTERVAL + 1): a ring of two, in order.
            ring = [Signal(meta, name=f"meta_{k}") for k in range(2)]
            wp, rp = Signal(), Signal()
            inflight = Signal(range(3))
            done = units_[0].o.valid  # one cycle per result: o.ready is always high
            with m.If(feeding):
                m.d.sync += wp.eq(~wp)
                with m.If(wp):
                    m.d.sync += ring[1].eq(entering)
                with m.Else():
                    m.d.sync += ring[0].eq(entering)
            with m.If(done):
                m.d.sync += rp.eq(~rp)
            m.d.sync += inflight.eq(inflight + feeding - done)
            m.d.comb += [out.eq(Mux(rp, ring[1].as_value(), ring[0].as_value())),
                         out.valid.eq(done)]
            in_flight = inflight != 0
        else:
            line = [Signal(meta, name=f"meta_{k}") for k in range(Requantizer.LATENCY)]
            m.d.sync += line[0].eq(entering)
            m.d.sync += [line[k].eq(line[k - 1]) for k in range(1, len(line))]
            m.d.comb += out.eq(line[-1])
            in_flight = sum(stage.valid for stage in line) != 0
        word = Signal(8 * lanes)
        for u, rq in enumerate(units_):
            with m.If(out.valid):
                with m.Switch(out.part):
                    for k in range(parts):
                        with m.Case(k):
                            lane = k * units + u
                            value = Signal(8, name=f"value_{lane}")
                            m.d.comb += value.eq(rq.o.payload[:8])
                            m.d.sync += word[8 * lane:8 * lane + 8].eq(
                                (lane < out.count) * value)
        write = Signal()
        m.d.sync += [write.eq(out.valid & (out.part == parts - 1)), self.wr_addr.eq(out.addr)]
        m.d.comb += [self.wr_en.eq(write), self.wr_data.eq(word)]
        busy = feeding | table_busy | write | in_flight
        m.d.comb += self.idle.eq(~busy)
        return m
