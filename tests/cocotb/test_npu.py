"""Verilator + cocotb tier for the NPU: programs against the instruction-level simulator."""

from pathlib import Path

import pytest

from npugen.rtl.npu import NpuParams
from npugen.rtl.systolic.params import SystolicParams
from npugen.sim.blocks import NPU_DEMO
from npugen.sim.flow.build import run_checked

ROOT = Path(__file__).resolve().parents[2]

CONFIGS = [
    NPU_DEMO,
    NpuParams(lanes=3, act_words=100, wgt_words=400, acc_words=40, tab_entries=16,
              imem_words=8, requant_lanes=1, systolic=SystolicParams(rows=3, cols=3)),
]


@pytest.mark.parametrize("params", CONFIGS, ids=lambda p: p.slug)
def test_npu(params, seed):
    names = run_checked(params, build_dir=ROOT / "build" / "cocotb" / params.slug, seed=seed)
    assert len(names) == 9, names  # demo, programs x4, bad programs, reset x2, benchmark
