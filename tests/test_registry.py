"""Every block in the registry is complete, and everything that lists blocks uses it."""

import importlib
import inspect
from pathlib import Path

import pytest
from amaranth.hdl import Fragment
from amaranth.lib import stream, wiring

from npugen.rtl.common.params import Params
from npugen.sim.blocks import BLOCKS, Block, DemoCase, Part, SweepPoint
from npugen.sim.cli import _parser
from npugen.sim.flow import demo, sweep

ROOT = Path(__file__).resolve().parent.parent
BLOCK_LIST = list(BLOCKS.values())


def _stream_ports(members):
    return {name: member.flow for name, member in members.items()
            if member.is_signature and isinstance(member.signature, stream.Signature)}


@pytest.mark.parametrize("block", BLOCK_LIST, ids=lambda b: b.name)
def test_entry_is_complete(block):
    assert isinstance(block, Block)
    assert block.name == block.params.block and block.summary
    assert issubclass(block.params, Params)
    for name in ("component", "signature", "model", "workload", "sweep"):
        assert callable(getattr(block, name)), name
    assert inspect.iscoroutinefunction(block.workload)
    assert block.demo and all(isinstance(c, DemoCase) for c in block.demo)
    assert all(isinstance(p, block.params) for p in (block.small, *block.corners))
    assert block.corners, "corner configurations for the lint and manifest tests"
    points = block.sweep(False)
    assert points and all(isinstance(pt, SweepPoint) and pt.params.block == block.name
                          for pt in points)
    assert all(isinstance(part, Part) for part in block.parts)


@pytest.mark.parametrize("block", BLOCK_LIST, ids=lambda b: b.name)
def test_bench_and_demo_tests_exist(block):
    bench = importlib.import_module(block.bench)
    for case in block.demo:
        assert getattr(bench, case.test, None) is not None, f"{block.bench}.{case.test}"
    for part in block.parts:
        assert importlib.import_module(part.bench)


@pytest.mark.parametrize(("block", "params", "part"),
                         [(b, p, None) for b in BLOCK_LIST for p in (b.params(), *b.corners)]
                         + [(b, b.params(), part) for b in BLOCK_LIST for part in b.parts],
                         ids=lambda x: getattr(x, "slug", getattr(x, "name", "")))
def test_signature_and_streams_match_the_gateware(block, params, part):
    """The port description is the component's own, and every stream has a builder/parser."""
    build, signature, streams = ((block.component, block.signature, block.streams) if part is None
                                 else (part.build, part.signature, part.streams))
    component = build(params)
    described = wiring.Signature(signature(params))
    assert component.signature == described, "signature(params) differs from the component"
    missing = sorted(set(_stream_ports(signature(params))) - set(streams))
    assert not missing, f"no beat builder or parser for {missing}"
    fn = (part.model if part else block.model)(params)
    assert callable(fn) and fn.__module__.startswith("npugen.sim.models.")
    Fragment.get(component, None)  # elaborates: the signature is used, not just declared


def test_everything_that_lists_blocks_lists_the_registry():
    parser = _parser()
    commands = parser._subparsers._group_actions[0].choices
    for command in ("generate", "synth", "run"):
        sub = commands[command]._subparsers._group_actions[0].choices
        assert list(sub) == list(BLOCKS), command
    board = commands["board"]
    (block_flag,) = [a for a in board._actions if "--block" in a.option_strings]
    assert list(block_flag.choices) == list(BLOCKS)
    assert [c.params.block for c in demo.demo_cases()] == \
        [b.name for b in BLOCK_LIST for _ in b.demo]
    assert {pt.params.block for pt in sweep.grid()} == set(BLOCKS)


def test_every_bench_module_is_named_by_the_registry():
    """A bench nobody runs is a test that cannot fail: each tb_*.py belongs to an entry."""
    named = {b.bench for b in BLOCK_LIST} | {p.bench for b in BLOCK_LIST for p in b.parts}
    named.add("npugen.sim.cocotb.tb_board")  # the link part, run for every block
    # compiled networks on the NPU: `npugen infer --engine verilator`,
    # tests/cocotb/test_npu_infer.py
    named.add("npugen.sim.cocotb.tb_npu_infer")
    named.add("npugen.sim.cocotb.tb_board_infer")  # tests/cocotb/test_board_infer.py
    found = {f"npugen.sim.cocotb.{p.stem}" for p in (ROOT / "sim" / "cocotb").glob("tb_*.py")}
    assert found == named
