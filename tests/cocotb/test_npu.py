"""Verilator + cocotb tier for the NPU: programs against the instruction-level simulator."""

from pathlib import Path

import pytest

from npugen.rtl.npu import NpuParams
from npugen.rtl.sparse.params import SparseParams
from npugen.rtl.systolic.params import SystolicParams
from npugen.rtl.winograd.params import WinogradParams
from npugen.sim.blocks import NPU_DEMO, NPU_UP5K
from npugen.sim.flow.build import build_lock, run_checked
from npugen.sim.flow.infer import model_dir

ROOT = Path(__file__).resolve().parents[2]

CONFIGS = [
    NPU_DEMO,
    # the UP5K build: SB_MAC16 array, SB_SPRAM256KA weights, a serial requantizer (yosys's
    # models of the iCE40 primitives)
    NPU_UP5K,
    # with the sparse engine (SPFC), and one serial requantizer
    NpuParams(lanes=3, act_words=100, wgt_words=400, acc_words=40, tab_entries=16,
              imem_words=8, requant_lanes=1, requant_serial=True,
              systolic=SystolicParams(rows=3, cols=3),
              sparse=SparseParams(n_pe=2, rows_max=16, cols_max=14, entries_max=64,
                                  act_width=16, act_lanes=3, queue_depth=4)),
    # with the Winograd engine (CONV with engine 1) on its ECP5 primitives (DP16KD filter
    # store, MULT18X18D, the output transform in four steps: four cycles more per result
    # than the Amaranth tests' inferred ones),
    # two requantizers
    NpuParams(lanes=4, act_words=256, wgt_words=512, acc_words=64, tab_entries=16,
              imem_words=8, requant_lanes=2, systolic=SystolicParams(rows=4, cols=4),
              winograd=WinogradParams(c_max=6, k_max=10, primitives="ecp5")),
]


@pytest.mark.parametrize("params", CONFIGS, ids=lambda p: p.slug)
def test_npu(params, seed):
    # demo, programs x4, bad programs, reset x2, benchmark layer (+ the SPFC benchmark)
    sparse = params.sparse is not None
    # The demo NPU's model is the one test_npu_infer.py's networks run on (npugen infer's
    # folder and flags): built once for both, whichever comes first.
    root = ROOT / "build" / "cocotb"
    folder = model_dir(params, root) if params == NPU_DEMO else root / params.slug
    with build_lock(folder) as build_dir:
        names = run_checked(params, build_dir=build_dir, seed=seed,
                            test_filter=None if sparse else r"^(?!.*test_benchmark_spfc$)")
    assert len(names) == 9 + sparse, names
