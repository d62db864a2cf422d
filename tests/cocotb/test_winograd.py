"""Verilator + cocotb tier for the Winograd convolution layer: every output word vs numpy."""

from pathlib import Path

import pytest

from npugen.rtl.winograd import WinogradParams
from npugen.sim.flow.build import BUILD_FAST, RUN_FAST, run_checked

ROOT = Path(__file__).resolve().parents[2]

CONFIGS = [
    # C in {1, 3, 16}, K in {1, 4}, H x W in {4x4, 5x7, 16x16}, valid and same: runtime
    # configuration of one build.
    WinogradParams(c_max=16, k_max=4, h_max=16, w_max=16),
    WinogradParams(c_max=3, k_max=4, h_max=8, w_max=8, filter_input="transformed"),
    WinogradParams(c_max=16, k_max=2, h_max=8, w_max=8, acc_width=16),  # outputs wrap
    # Two engines on DP16KD and MULT18X18D blocks (npugen's models of the primitives).
    WinogradParams(c_max=8, k_max=4, h_max=16, w_max=16, engines=2, primitives="ecp5"),
]
SLOW = [WinogradParams(c_max=16, k_max=8, h_max=64, w_max=64)]


def _run(params, seed, test_filter=None, extra_env=None):
    # The small layers simulate in under 2 s at -Os: their build is the time, compiled at
    # -O0. The others simulate for 4-12 s, three times as long at -O0.
    small = params.h_max * params.w_max * params.c_max * params.k_max <= 8 * 8 * 16 * 2
    return run_checked(params, build_dir=ROOT / "build" / "cocotb" / params.slug, seed=seed,
                       test_filter=test_filter, extra_env=extra_env,
                       cxx_opt=BUILD_FAST if small else RUN_FAST)


@pytest.mark.parametrize("params", CONFIGS, ids=lambda p: p.slug)
def test_winograd_layer(params, seed):
    names = _run(params, seed)
    assert len(names) == 9, names  # layers x4, reset x2, malformed, demo, benchmark layer


@pytest.mark.slow
@pytest.mark.parametrize("params", SLOW, ids=lambda p: p.slug)
def test_winograd_layer_large(params, seed):
    names = _run(params, seed, test_filter=r"\.test_benchmark_layer$",
                 extra_env={"NPUGEN_LAYER": "48,40,16,8,same"})
    assert len(names) == 1
