"""End to end in Verilator: host client -> simulated UART -> link -> block -> host, per block."""

from pathlib import Path

import pytest

from npugen.sim.blocks import BLOCKS
from npugen.sim.flow.board import link_part
from npugen.sim.flow.build import run_checked

ROOT = Path(__file__).resolve().parents[2]
DIVISOR = 8
EXTRA = [BLOCKS["systolic"].params(rows=2, cols=3, dataflow="os")]  # both dataflows


@pytest.mark.parametrize("params", [b.small for b in BLOCKS.values()] + EXTRA,
                         ids=lambda p: p.slug)
def test_over_uart(params, seed):
    part = link_part(DIVISOR)
    env = {"NPUGEN_DIVISOR": str(DIVISOR)}
    if params.block == "npu":
        # each fuzz round's workload is a whole NPU program through the simulated UART (about
        # 4 s each): 8 rounds, every kind of malformed input once (16 for the other blocks)
        env["NPUGEN_FUZZ_ROUNDS"] = "8"
    names = run_checked(params, part=part, seed=seed, extra_env=env,
                        build_dir=ROOT / "build" / "cocotb" / f"{params.slug}_board")
    # end to end x2, bad frames, stall, rest of a bad frame, compensating errors, resync, fuzz
    assert len(names) == 8, names
