"""Verilator + cocotb tier for the sparse matrix-vector engine: every output word vs numpy."""

from pathlib import Path

import pytest

from npugen.rtl.sparse import SparseParams
from npugen.sim.blocks import BLOCKS
from npugen.sim.flow.build import BUILD_FAST, run_checked

ROOT = Path(__file__).resolve().parents[2]

CONFIGS = [
    # Runs > 100 in one PE need > 101 local rows.
    SparseParams(n_pe=1, rows_max=130, cols_max=20, entries_max=4096, act_lanes=1,
                 queue_depth=1),
    # primitives=ecp5 (npugen's models of DP16KD and MULT18X18D): entries in the 8192 x 2,
    # 1024 x 18 and 2048 x 9 block RAM shapes, pointers and accumulators in 512 x 36.
    # acc_banks=2: the readout beside the next vector's MAC phase.
    SparseParams(n_pe=2, rows_max=211, cols_max=23, entries_max=8192, act_lanes=3, relu=True,
                 acc_banks=2, primitives="ecp5"),
    SparseParams(n_pe=4, rows_max=37, cols_max=64, act_width=16, acc_width=16,
                 primitives="ecp5"),
    # 2048 entries: the only run of the 2048 x 9 DP16KD shape. 450 x 17 (dense: 969 entries
    # in the fullest PE) since 2026-12-07: 900 x 18 filled it to 2034 with twice the
    # simulation time (112 s in CI).
    SparseParams(n_pe=8, rows_max=450, cols_max=17, entries_max=2048, act_lanes=8,
                 queue_depth=4, acc_banks=2, primitives="ecp5"),
]


@pytest.mark.parametrize("params", CONFIGS, ids=lambda p: p.slug)
def test_sparse(params, seed):
    names = run_checked(params, seed=seed,
                        build_dir=ROOT / "build" / "cocotb" / params.slug,
                        test_filter=r"\.(test_matrices|test_reset_mid_run|test_malformed|"
                                    r"test_zero_skipping|test_demo|test_config_after_vector|"
                                    r"test_stream)")
    # matrices x4, reset x3, malformed, zero skipping, demo, a load right behind a vector,
    # vectors back to back
    assert len(names) == 12, names


DECODER_CONFIGS = [
    SparseParams(n_pe=1, rows_max=200),
    SparseParams(n_pe=8, rows_max=1000),
]


@pytest.mark.parametrize("params", DECODER_CONFIGS, ids=lambda p: p.slug)
def test_decoder(params, seed):
    names = run_checked(params, part=BLOCKS["sparse"].part("decoder"), seed=seed,
                        build_dir=ROOT / "build" / "cocotb" / f"{params.slug}_decoder",
                        cxx_opt=BUILD_FAST)  # 1-2 s of simulation: the build is the time
    assert len(names) == 5, names  # columns x4, overflow and reset
