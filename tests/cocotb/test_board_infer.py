"""The digits networks on the NPU's board core in Verilator, through the simulated UART.

``npugen infer --engine board``'s client and host code (:func:`infer_on_client`) drive
``HostLink(Npu)`` bit by bit; every output element equals onnxruntime's. One build of the
board core with a sparse engine (``NPU_SPARSE_DEMO``) runs the CNN, then, in a second
simulation from reset, the MLP, whose pruned hidden layer is an SPFC loaded over the link.
The iCEBreaker bitstream's core (``NPU_ICEBREAKER``, its link without cycle counters) runs
the CNN.

The bench collects no line coverage: it would make it ten times slower (the MLP's 316,513
cycles took 99 s instead of 9 s: Verilator counts every line of every combinational block on
each evaluation, and the NPU's QLinearAdd and requantization units are thousands of lines),
and the NPU benches (test_npu.py) and the board benches (test_board.py) cover the same
gateware.
"""

import json
from pathlib import Path

import numpy as np

from npugen.sim.blocks import NPU_ICEBREAKER, NPU_SPARSE_DEMO
from npugen.sim.compiler.artifact import read_compiled
from npugen.sim.compiler.execute import input_words, outputs_of
from npugen.sim.flow.board import link_part
from npugen.sim.flow.build import run_checked
from npugen.sim.flow.digits import held_out_split, network_path
from npugen.sim.flow.infer import compile_model, infer, onnxruntime_outputs

ROOT = Path(__file__).resolve().parents[2]
DIVISOR = 4


def test_digits_over_uart(tmp_path, seed):
    rng = np.random.default_rng(seed)
    x_te, _ = held_out_split()
    pick = rng.choice(len(x_te), size=3, replace=False)
    build_dir = ROOT / "build" / "cocotb" / f"{NPU_SPARSE_DEMO.slug}_board_infer"
    for name, x in (("digits_cnn", x_te[pick]), ("digits_mlp", x_te[pick].reshape(3, -1))):
        plan = compile_model(network_path(name), tmp_path / name, NPU_SPARSE_DEMO)
        assert ("sparse" in [layer["engine"] for layer in plan["layers"]]) == (
            name == "digits_mlp")
        compiled = read_compiled(tmp_path / name)
        spec, result = tmp_path / f"{name}.json", tmp_path / f"{name}.result.json"
        spec.write_text(json.dumps({"compiled": str(tmp_path / name),
                                    "inputs": input_words(compiled, x), "result": str(result)}))
        names = run_checked(NPU_SPARSE_DEMO, part=link_part(DIVISOR), seed=seed,
                            test_module="npugen.sim.cocotb.tb_board_infer",
                            extra_env={"NPUGEN_DIVISOR": str(DIVISOR), "NPUGEN_INFER": str(spec)},
                            build_dir=build_dir, cover=False)
        assert names == ["test_infer_over_uart"], names
        r = json.loads(result.read_text())
        y = outputs_of(compiled, r["outputs"])
        ref = onnxruntime_outputs(network_path(name), x)
        assert np.array_equal(y.view(np.uint32), ref.view(np.uint32)), name
        # the NPU's cycle counter per image against the ISA simulator (the MLP's first image
        # loads the sparse matrix)
        isa = infer(tmp_path / name, x, engine="isa")
        assert len(r["cycles"]) == 3
        for cycles, model in zip(r["cycles"], isa.cycles, strict=True):
            assert abs(cycles - model) <= 0.05 * cycles, (name, r["cycles"], isa.cycles)


def test_icebreaker_cnn_over_uart(tmp_path, seed):
    """The iCEBreaker bitstream's core runs the digits CNN over the UART, exactly.

    NPU_ICEBREAKER behind a link without cycle counters, with yosys's models of the iCE40
    primitives; the NPU's cycle counter equals the ISA simulator's model.
    """
    rng = np.random.default_rng([seed, 5])
    x_te, _ = held_out_split()
    x = x_te[rng.choice(len(x_te), size=2, replace=False)]
    name = "digits_cnn"
    compile_model(network_path(name), tmp_path / name, NPU_ICEBREAKER)
    compiled = read_compiled(tmp_path / name)
    spec, result = tmp_path / "spec.json", tmp_path / "result.json"
    spec.write_text(json.dumps({"compiled": str(tmp_path / name),
                                "inputs": input_words(compiled, x), "result": str(result)}))
    names = run_checked(NPU_ICEBREAKER, part=link_part(DIVISOR, counters=False), seed=seed,
                        test_module="npugen.sim.cocotb.tb_board_infer",
                        extra_env={"NPUGEN_DIVISOR": str(DIVISOR), "NPUGEN_INFER": str(spec),
                                   "NPUGEN_LINK_COUNTERS": "0"},
                        build_dir=ROOT / "build" / "cocotb" / f"{NPU_ICEBREAKER.slug}_board",
                        cover=False)
    assert names == ["test_infer_over_uart"], names
    r = json.loads(result.read_text())
    y = outputs_of(compiled, r["outputs"])
    ref = onnxruntime_outputs(network_path(name), x)
    assert np.array_equal(y.view(np.uint32), ref.view(np.uint32))
    isa = infer(tmp_path / name, x, engine="isa")
    assert r["cycles"] == isa.cycles, (r["cycles"], isa.cycles)  # the model is exact here
