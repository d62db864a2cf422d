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
    names = run_checked(params, part=part, seed=seed,
                        extra_env={"NPUGEN_DIVISOR": str(DIVISOR)},
                        build_dir=ROOT / "build" / "cocotb" / f"{params.slug}_board")
    # end to end x2, bad frames, stall, rest of a bad frame, compensating errors, resync, fuzz
    assert len(names) == 8, names
