"""Verilator + cocotb tier for the Winograd tile engine alone: every output tile vs numpy."""

from pathlib import Path

import pytest

from npugen.rtl.winograd import WinogradParams
from npugen.sim.blocks import BLOCKS
from npugen.sim.flow.build import BUILD_FAST, run_checked

ROOT = Path(__file__).resolve().parents[2]

CONFIGS = [
    WinogradParams(c_max=1, k_max=1),
    WinogradParams(c_max=3, k_max=4),
    WinogradParams(c_max=16, k_max=4),
    # DP16KD and MULT18X18D blocks with their registers (npugen's models of the primitives).
    WinogradParams(c_max=16, k_max=4, filter_input="transformed", primitives="ecp5"),
    WinogradParams(c_max=16, k_max=2, acc_width=16),  # outputs really wrap
]


@pytest.mark.parametrize("params", CONFIGS, ids=lambda p: p.slug)
def test_winograd(params, seed):
    # simulations of under a second: the model is compiled at -O0 (the build is the time)
    names = run_checked(params, part=BLOCKS["winograd"].part("engine"), seed=seed,
                        build_dir=ROOT / "build" / "cocotb" / f"{params.slug}_engine",
                        cxx_opt=BUILD_FAST)
    assert len(names) == 9, names  # layers x4, reset x2, malformed, timing, demo
