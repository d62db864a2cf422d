"""Verilator + cocotb tier for the systolic array: every output word against numpy."""

from pathlib import Path

import pytest

from npugen.rtl.systolic import SystolicParams
from npugen.sim.flow.build import BUILD_FAST, run_checked

ROOT = Path(__file__).resolve().parents[2]

CONFIGS = [
    *[SystolicParams(rows=r, cols=c, dataflow=df)
      for df in ("ws", "os") for r, c in [(1, 1), (2, 3), (4, 4), (3, 8), (8, 8)]],
    # 16-bit accumulators: the all -128 tiles really wrap (see tests/models).
    SystolicParams(rows=4, cols=4, acc_width=16, dataflow="ws"),
    SystolicParams(rows=4, cols=4, acc_width=16, dataflow="os"),
    # The narrowed column sums at odd widths, wrapping inside the chain (acc 18 < 16 + 3).
    SystolicParams(rows=5, cols=3, a_width=5, w_width=11, acc_width=18, dataflow="ws"),
    # MULT18X18D with its registers and fabric registers around it (latency 6), and the
    # result buffer in DP16KD block RAMs with output registers (129-bit words: four blocks,
    # the last one partly used), through npugen's models of the primitives.
    SystolicParams(rows=3, cols=4, dataflow="ws", multiplier="ecp5", result_ram="ecp5"),
    SystolicParams(rows=3, cols=4, dataflow="os", multiplier="ecp5", result_ram="ecp5"),
    # Five PEs on MULT18X18D and seven on fabric multipliers of the same latency.
    SystolicParams(rows=3, cols=4, dataflow="ws", multiplier="ecp5", dsp_limit=5),
    # SB_MAC16 in dual 8x8 mode, two PEs per block, through yosys's model of the primitive;
    # 3x3 leaves one PE alone on a block, 5-/7-bit operands sign-extend into the bytes.
    SystolicParams(rows=4, cols=4, dataflow="ws", multiplier="ice40"),
    SystolicParams(rows=3, cols=3, a_width=5, w_width=7, acc_width=20, dataflow="ws",
                   multiplier="ice40"),
    SystolicParams(rows=3, cols=3, dataflow="os", multiplier="ice40"),
]
SLOW = [SystolicParams(rows=16, cols=16, dataflow=df) for df in ("ws", "os")]


def _run(params, seed):
    # Each simulation takes under a second (2.5 s at 16x16); the build is nearly all of the
    # time, so the model is compiled at -O0 (4x4: 8.9 s against 13.7 s at -Os).
    return run_checked(params, build_dir=ROOT / "build" / "cocotb" / params.slug, seed=seed,
                       test_filter=f"test_{params.dataflow.value}_", cxx_opt=BUILD_FAST)


@pytest.mark.parametrize("params", CONFIGS, ids=lambda p: p.slug)
def test_systolic(params, seed):
    names = _run(params, seed)
    # tiles x4 traffic, reset x2, timing, demo, GEMM (+ K chaining x2 for WS)
    assert len(names) == (11 if params.dataflow.value == "ws" else 9), names


@pytest.mark.slow
@pytest.mark.parametrize("params", SLOW, ids=lambda p: p.slug)
def test_systolic_large(params, seed):
    _run(params, seed)
