"""The formal tier: SymbiYosys proofs (k-induction, Yices) of the stream rules and invariants.

Each proof is small (a few seconds); every result, with its depth and time, is printed so a
CI log holds the figures. ``docs/formal.md`` lists what is proved and what is not.
"""

import itertools
import random
from dataclasses import replace

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from npugen.rtl.npu import Requantizer
from npugen.rtl.npu.requant_compact import CompactRequantizer
from npugen.rtl.npu.requant_serial import SerialRequantizer
from npugen.rtl.sparse import SparseParams
from npugen.rtl.sparse.engine_parts import OUT_DEPTH
from npugen.rtl.systolic import Multiplier, SystolicParams
from npugen.rtl.systolic.ports import os_buffer_depth, ws_buffer_depth
from npugen.rtl.winograd import WinogradF23
from npugen.sim.blocks import BLOCKS
from npugen.sim.flow.formal import ProofError, combinational_paths, prove
from npugen.sim.flow.properties import (
    ActivationRules,
    CreditRules,
    DecoderRows,
    FrameRules,
    StreamRules,
    crc16_residue,
)
from npugen.sim.formats.link import crc16

pytestmark = pytest.mark.formal


def _check(result):
    print(result)
    assert result["status"] == "PASS"


def _tops():
    """Return the block tops for the stream rules.

    Each block's link-test size and its smallest corner per dataflow. Corners with vendor
    multipliers or RAMs need the vendor's simulation models, which a proof cannot read;
    they share the stream logic of these configurations.
    """
    sys_small = BLOCKS["systolic"].small
    return [
        ("systolic-ws", BLOCKS["systolic"].component, sys_small),
        ("systolic-os", BLOCKS["systolic"].component, replace(sys_small, dataflow="os")),
        ("systolic-1x1-ws", BLOCKS["systolic"].component, BLOCKS["systolic"].corners[0]),
        ("systolic-1x1-os", BLOCKS["systolic"].component, BLOCKS["systolic"].corners[2]),
        ("sparse", BLOCKS["sparse"].component, BLOCKS["sparse"].small),
        ("sparse-1pe", BLOCKS["sparse"].component, BLOCKS["sparse"].corners[0]),
        ("sparse-decoder", lambda p: BLOCKS["sparse"].part("decoder").build(p, 1),
         BLOCKS["sparse"].small),
        ("winograd", BLOCKS["winograd"].component, BLOCKS["winograd"].small),
        ("winograd-engine", BLOCKS["winograd"].part("engine").build, BLOCKS["winograd"].small),
        ("npu-requantizer", Requantizer, 8),
        ("npu-requantizer-serial", SerialRequantizer, 8),
        ("npu-requantizer-compact", CompactRequantizer, 8),
    ]


@pytest.mark.parametrize(("label", "build", "params"), _tops(), ids=[t[0] for t in _tops()])
def test_stream_rules(label, build, params, tmp_path):
    """Every stream output keeps ``valid`` and its payload until the transfer.

    Inputs are assumed to do the same; proved from any reachable state by 3-step induction.
    """
    _check(prove(StreamRules(build(params)), f"rules_{label.replace('-', '_')}", tmp_path,
                 depth=3))


@pytest.mark.parametrize("block", list(BLOCKS.values()), ids=lambda b: b.name)
def test_outputs_do_not_wait_for_ready(block, tmp_path):
    """No combinational path from ``o.ready`` to ``o.valid`` or ``o.payload``."""
    dut = block.component(block.small)
    found = combinational_paths(dut, f"paths_{block.name}", tmp_path, ["o__ready"],
                                ["o__valid", "o__payload"])
    assert found == []


class _SkipsZeros(wiring.Component):
    """A stream stage whose ``i.ready`` depends on the payload (zeros are taken at once)."""

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):  # noqa: D102
        m = Module()
        m.d.comb += [self.o.payload.eq(self.i.payload),
                     self.o.valid.eq(self.i.valid & (self.i.payload != 0)),
                     self.i.ready.eq(self.o.ready | (self.i.payload == 0))]
        return m


def test_path_check_finds_a_path(tmp_path):
    """The path check is not a rubber stamp: it finds a payload-to-ready path."""
    found = combinational_paths(_SkipsZeros(), "paths_pos", tmp_path,
                                ["i__payload"], ["o__valid", "i__ready"])
    assert ("i__payload", "i__ready") in found and ("i__payload", "o__valid") in found


class _Withdraws(wiring.Component):
    """A broken stream source: ``valid`` falls after one cycle, taken or not."""

    o: Out(stream.Signature(8))
    go: In(1)

    def elaborate(self, platform):  # noqa: D102
        m = Module()
        m.d.sync += self.o.valid.eq(self.go & ~self.o.valid)
        return m


def test_a_broken_stream_fails_the_proof(tmp_path):
    with pytest.raises(ProofError, match="'o kept'"):
        prove(StreamRules(_Withdraws()), "broken", tmp_path, depth=3)


def emitted_buffers():
    """Return every ``(depth, max_reserve)`` of a result buffer the generator can emit.

    The systolic arrays' over their whole parameter space (rows and columns 1..64, both
    dataflows, every multiplier), the sparse engine's readout and the Winograd engine's.
    """
    pairs = {(OUT_DEPTH, 1), (WinogradF23.BUFFER_DEPTH, 1)}
    for rows, cols in itertools.product(range(1, 65), repeat=2):
        for multiplier in Multiplier:
            ws = SystolicParams(rows=rows, cols=cols, dataflow="ws", multiplier=multiplier)
            os_ = replace(ws, dataflow="os")
            pairs |= {(ws_buffer_depth(ws), 1), (os_buffer_depth(os_), rows)}
    return sorted(pairs)


def credit_cases():
    """Small depths, the extremes of every reservation size, and a seeded sample.

    The proof is 1-inductive (k = 2 suffices at every depth), so its cost hardly grows with
    the depth; proving all few thousand emitted pairs takes about two hours, so CI proves the
    small and extreme ones and a different sample of the rest on every run.
    """
    emitted = emitted_buffers()
    chosen = {(1, 1), (2, 1), (3, 1), (4, 2), (8, 2), (9, 3), (16, 4)}
    by_reserve = {}
    for depth, reserve in emitted:
        by_reserve.setdefault(reserve, []).append(depth)
    for reserve in (1, 2, 3, 8, 16, 32, 64):
        chosen |= {(min(by_reserve[reserve]), reserve), (max(by_reserve[reserve]), reserve)}
    return sorted(chosen), emitted


SMALL_AND_EXTREME, EMITTED = credit_cases()


@pytest.mark.parametrize(("depth", "max_reserve"), SMALL_AND_EXTREME,
                         ids=[f"d{d}r{r}" for d, r in SMALL_AND_EXTREME])
def test_result_buffer_credits(depth, max_reserve, tmp_path):
    """Credits conserved, no overflow, ``can_reserve`` safe, none lost or duplicated.

    k-induction with k = 2 (the buffer's ``consistent`` invariant makes it 1-inductive).
    """
    _check(prove(CreditRules(depth, max_reserve), f"credits_{depth}_{max_reserve}", tmp_path,
                 depth=2))


def test_result_buffer_credits_sample(seed, tmp_path):
    """The same proof for eight emitted buffers drawn with the session's seed."""
    sample = random.Random(seed).sample(EMITTED, 8)
    print(f"{len(EMITTED)} emitted (depth, max_reserve) pairs; proving {sample}")
    for depth, max_reserve in sample:
        _check(prove(CreditRules(depth, max_reserve), f"credits_{depth}_{max_reserve}",
                     tmp_path, depth=2))


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_result_buffer_order(depth, tmp_path):
    """Words leave in write order and intact (bounded: until the pointers wrapped twice)."""
    storage = 1 << depth.bit_length()
    _check(prove(CreditRules(depth, 1, tagged=True), f"order_{depth}", tmp_path,
                 depth=2 * storage + 6, mode="bmc"))


@pytest.mark.parametrize(("n_pe", "rows_max", "pe", "primitives"),
                         [(1, 1, 0, "inferred"), (3, 12, 2, "inferred"), (4, 2, 3, "ecp5"),
                          (4, 13, 3, "inferred"), (5, 100, 4, "ecp5")])
def test_decoder_rows(n_pe, rows_max, pe, primitives, tmp_path):
    """The sparse decoder never emits a row at or past ``rows``, whatever the entries.

    With the ECP5 primitives its stage 0 also registers the table lookups.
    """
    params = SparseParams(n_pe=n_pe, rows_max=rows_max, cols_max=10, entries_max=64,
                          primitives=primitives)
    _check(prove(DecoderRows(params, pe), f"decoder_{n_pe}_{rows_max}_{pe}_{primitives}",
                 tmp_path, depth=4))


@pytest.mark.parametrize("lanes", [1, 3, 4])
def test_activation_input_zero_flag(lanes, tmp_path):
    """The activation input's registered zero flag agrees with the beat it offers.

    The handshake uses the register (``head_zero``) instead of the head's lanes under the
    mask; the invariant makes every beat's fate (dropped or staged) the same as with the
    comparison. 30 columns: the vector's last beat has a partial mask.
    """
    params = SparseParams(cols_max=30, act_lanes=lanes)
    _check(prove(ActivationRules(params), f"activation_{lanes}", tmp_path, depth=2))


@pytest.mark.parametrize("idle_cycles", [1, 3, 6])
def test_frame_receiver_returns_to_idle(idle_cycles, tmp_path):
    _check(prove(FrameRules([8, 16], [8], buffer_bytes=4, idle_cycles=idle_cycles),
                 f"idle_{idle_cycles}", tmp_path, depth=idle_cycles + 5))


def test_frame_receiver_posts_only_whole_frames(tmp_path):
    """A frame posted as good is a whole frame, as last received.

    A sync byte, its header, a payload of the size the header implies and two CRC bytes;
    payload writes stay in the buffer (bounded: any bytes, long enough for a frame of every
    size). That the CRC bytes are
    right is not in this proof: the equivalence of two CRC circuits over symbolic bytes
    takes the solver hours; the link fuzzer and the compensating-error test check it.
    """
    _check(prove(FrameRules([8, 16], [8], buffer_bytes=4, idle_cycles=2, check_frames=True,
                            check_crc=False), "frames", tmp_path, depth=16, mode="bmc"))


def test_reference_crc_matches_the_host():
    """The proof's bitwise CRC agrees with the host's (so it checks the right polynomial)."""
    frames = [bytes([1, 2, 0, 3, 0]), bytes([0x7F, 1, 1, 2, 0, 0xAA, 0x55, 0xAA, 0x55])]
    result = {}

    class Top(wiring.Component):
        def __init__(self, data):
            self.data = data
            super().__init__({"residue": Out(16)})

        def elaborate(self, platform):  # noqa: D102
            m = Module()
            values = [Signal(8, init=b) for b in self.data]
            m.d.comb += self.residue.eq(crc16_residue(m, values))
            return m

    for frame in frames:
        crc = crc16(frame)
        for tail, key in [(b"", "crc"), (crc.to_bytes(2, "big"), "residue")]:
            top = Top(frame + tail)
            sim = Simulator(top)

            async def bench(ctx, top=top, key=key, frame=frame):
                result[frame, key] = ctx.get(top.residue)

            sim.add_testbench(bench)
            sim.run()
        assert result[frame, "crc"] == crc
        assert result[frame, "residue"] == 0
