"""Compiled digits networks on the Verilator NPU, bit-exact with onnxruntime.

A few held-out images per network through ``npugen infer --engine verilator``'s path: the
program loaded once, each image run autonomously; every output element compared with
onnxruntime, and the cycle counts with the plan's prediction.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from npugen.sim.blocks import NPU_DEMO
from npugen.sim.flow.digits import NETWORKS, held_out_split, network_path
from npugen.sim.flow.infer import compile_model, infer

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", NETWORKS)
def test_digits_in_verilator(tmp_path, seed, name):
    rng = np.random.default_rng(seed)
    x_te, y_te = held_out_split()
    pick = rng.choice(len(x_te), size=6, replace=False)
    x = x_te[pick] if name == "digits_cnn" else x_te[pick].reshape(6, -1)
    p = NPU_DEMO  # 4 lanes: its memories hold both networks; quick to build and run
    compile_model(network_path(name), tmp_path / name, p)
    r = infer(tmp_path / name, x, engine="verilator", check=True,
              build_root=ROOT / "build" / "cocotb", seed=seed)
    assert r.checked and r.mismatches == [], r.mismatches[:10]
    assert r.outputs.shape == (6, 10)
    plan = json.loads((tmp_path / name / "plan.json").read_text())
    for cycles in r.cycles:
        assert abs(cycles - plan["predicted_cycles"]) <= 0.05 * cycles
    print(f"{name}: labels {y_te[pick].tolist()}, predicted {r.outputs.argmax(1).tolist()}, "
          f"{r.cycles[0]} cycles/image (plan {plan['predicted_cycles']}), "
          f"{sum(r.cycles) / r.seconds:,.0f} Verilator cycles/s")
