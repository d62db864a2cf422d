"""The digits CNN on the NPU's board core in Verilator, through the simulated UART.

``npugen infer --engine board``'s client and host code (:func:`infer_on_client`) drive
``HostLink(Npu)`` bit by bit; every output element equals onnxruntime's.
"""

import json
from pathlib import Path

import numpy as np

from npugen.sim.blocks import NPU_DEMO
from npugen.sim.compiler.artifact import read_compiled
from npugen.sim.compiler.execute import input_words, outputs_of
from npugen.sim.flow.board import link_part
from npugen.sim.flow.build import run_checked
from npugen.sim.flow.digits import held_out_split, network_path
from npugen.sim.flow.infer import compile_model, onnxruntime_outputs

ROOT = Path(__file__).resolve().parents[2]
DIVISOR = 4


def test_digits_cnn_over_uart(tmp_path, seed):
    rng = np.random.default_rng(seed)
    x_te, _ = held_out_split()
    x = x_te[rng.choice(len(x_te), size=3, replace=False)]
    compile_model(network_path("digits_cnn"), tmp_path / "cnn", NPU_DEMO)
    compiled = read_compiled(tmp_path / "cnn")
    spec, result = tmp_path / "infer.json", tmp_path / "result.json"
    spec.write_text(json.dumps({"compiled": str(tmp_path / "cnn"),
                                "inputs": input_words(compiled, x), "result": str(result)}))
    names = run_checked(NPU_DEMO, part=link_part(DIVISOR), seed=seed,
                        test_module="npugen.sim.cocotb.tb_board_infer",
                        extra_env={"NPUGEN_DIVISOR": str(DIVISOR), "NPUGEN_INFER": str(spec)},
                        build_dir=ROOT / "build" / "cocotb" / f"{NPU_DEMO.slug}_board_infer")
    assert names == ["test_infer_over_uart"], names
    r = json.loads(result.read_text())
    y = outputs_of(compiled, r["outputs"])
    ref = onnxruntime_outputs(network_path("digits_cnn"), x)
    assert np.array_equal(y.view(np.uint32), ref.view(np.uint32))
    assert len(r["cycles"]) == 3 and min(r["cycles"]) > 0
