"""The parameter declarations: checks, nesting, JSON, manifest rows and CLI flags from one place."""

import json
from dataclasses import dataclass

import pytest

from npugen.rtl.common.params import ACC_WIDTH_MAX, Params, check_int, flag, nested, param
from npugen.rtl.sparse import SparseParams
from npugen.rtl.systolic import SystolicParams
from npugen.rtl.winograd import WinogradParams
from npugen.sim.blocks import BLOCKS
from npugen.sim.cli import main


@dataclass(frozen=True, kw_only=True)
class _Outer(Params, block="test_outer"):
    """A composite of blocks, as the NPU's parameters are."""

    lanes: int = param(2, "lanes", lo=1, hi="4 * 2")
    fast: bool = flag(False, "go fast")
    systolic: SystolicParams | None = nested(SystolicParams, "the array",
                                             default=SystolicParams(rows=4, cols=4),
                                             optional=True)
    sparse: SparseParams | None = nested(SparseParams, "the sparse engine", optional=True)
    winograd: WinogradParams = nested(WinogradParams, "the Winograd unit")

    @property
    def slug(self):
        return "outer"


def test_block_name_travels_with_the_values():
    p = SystolicParams(rows=3)
    assert p.to_dict()["block"] == "systolic"
    assert Params.from_json(p.to_json()) == p  # the base class picks the block by name
    assert SystolicParams.from_dict({"rows": 3}) == p  # a block's class needs no name
    with pytest.raises(ValueError, match="these are sparse parameters, not systolic"):
        SystolicParams.from_dict({"block": "sparse"})
    with pytest.raises(ValueError, match="block must be one of .*not 'nope'"):
        Params.from_dict({"block": "nope"})


def test_nested_parameters_round_trip_through_json():
    p = _Outer(lanes=3, sparse=SparseParams(n_pe=2))
    data = json.loads(p.to_json())
    assert data["systolic"] == SystolicParams(rows=4, cols=4).to_dict()
    assert data["sparse"]["block"] == "sparse" and data["sparse"]["n_pe"] == 2
    assert Params.from_json(p.to_json()) == p
    off = _Outer(systolic=None)
    assert json.loads(off.to_json())["systolic"] is None
    assert Params.from_json(off.to_json()) == off


def test_nested_checks_name_the_field():
    with pytest.raises(TypeError, match="systolic must be SystolicParams or None, not 3"):
        _Outer(systolic=3)
    with pytest.raises(TypeError, match="winograd must be WinogradParams, not None"):
        _Outer(winograd=None)
    with pytest.raises(ValueError, match=r"lanes must be in 1\.\.8, not 9"):
        _Outer(lanes=9)
    with pytest.raises(ValueError, match=r"rows must be in 1\.\.64, not 0"):
        _Outer.from_dict({"systolic": {"rows": 0}})


def test_leaf_names_cover_nested_fields():
    names = [name for name, _, _ in _Outer.leaf_specs()]
    assert names[:3] == ["lanes", "fast", "systolic"]
    assert "systolic.rows" in names and "sparse.n_pe" in names and "winograd.c_max" in names
    defaults = {name: default for name, _, default in _Outer.leaf_specs()}
    assert defaults["systolic.rows"] == 4 and defaults["sparse.n_pe"] == 4


def test_from_leaves_builds_and_switches():
    p = _Outer.from_leaves({"systolic.rows": 2, "winograd.c_max": 3, "fast": "on"})
    assert (p.systolic.rows, p.systolic.cols, p.winograd.c_max, p.fast) == (2, 4, 3, True)
    assert p.sparse is None  # off by default
    assert _Outer.from_leaves({"sparse.n_pe": 2}).sparse == SparseParams(n_pe=2)
    assert _Outer.from_leaves({"sparse": "on"}).sparse == SparseParams()
    assert _Outer.from_leaves({"systolic": "off"}).systolic is None
    with pytest.raises(ValueError, match="systolic is switched off; drop systolic.rows"):
        _Outer.from_leaves({"systolic": "off", "systolic.rows": 2})
    with pytest.raises(ValueError, match="unknown test_outer parameter.*systolic.bogus"):
        _Outer.from_leaves({"systolic.bogus": 1})


def test_npu_sparse_engine_switched_on_takes_the_npu_widths():
    """``--sparse on`` alone gives an engine the NPU accepts; a given value still wins."""
    from npugen.rtl.npu import NpuParams

    small = {"lanes": 4, "systolic.rows": 4, "systolic.cols": 4}
    sp = NpuParams.from_leaves({"sparse": "on"}).sparse
    assert (sp.act_width, sp.act_lanes) == (16, 8)
    assert NpuParams.from_leaves({**small, "sparse.n_pe": 2}).sparse == SparseParams(
        n_pe=2, act_width=16, act_lanes=4)
    assert NpuParams.from_leaves(small).sparse is None
    assert NpuParams.from_leaves({**small, "sparse": "off"}).sparse is None
    defaults = {name: default for name, _, default in NpuParams.leaf_specs()}
    assert (defaults["sparse.act_width"], defaults["sparse.act_lanes"]) == (16, 8)  # --help
    with pytest.raises(ValueError, match="sparse.act_lanes must be 4 in the NPU"):
        NpuParams.from_leaves({**small, "sparse.act_lanes": 8})
    with pytest.raises(ValueError, match="sparse.act_width must be 16 in the NPU"):
        NpuParams.from_leaves({"sparse.act_width": 8})
    # a bad lanes is named as lanes, not as the engine's act_lanes it would have set
    with pytest.raises(ValueError, match="^lanes must be"):
        NpuParams.from_leaves({"lanes": 100, "sparse": "on"})
    with pytest.raises(ValueError, match="sparse.act_lanes must be 32 in the NPU"):
        NpuParams.from_leaves({"lanes": 32, "systolic.rows": 32, "systolic.cols": 32,
                               "sparse": "on"})


def test_describe_gives_one_manifest_row_per_leaf():
    rows = {r["name"]: r for r in _Outer(lanes=3).describe()}
    assert rows["lanes"] == {"name": "lanes", "value": 3, "default": 2, "valid": "1..4*2",
                             "meaning": "lanes"}
    assert rows["systolic"]["value"] is True and rows["sparse"]["value"] is None
    assert rows["systolic.acc_width"]["valid"] == f"a_width+w_width..{ACC_WIDTH_MAX}"


def test_one_accumulator_limit_for_every_block():
    """Every accumulator width, nested ones included (the NPU's are its engines')."""
    for block in BLOCKS.values():
        widths = [spec for name, spec, _ in block.params.leaf_specs()
                  if name.split(".")[-1] == "acc_width"]
        assert widths and all(s.hi == ACC_WIDTH_MAX for s in widths), block.name


def test_check_int_names_the_value():
    assert check_int("n", 3, 1, 4) == 3
    with pytest.raises(TypeError, match=r"n must be an integer in 1\.\.4, not '3'"):
        check_int("n", "3", 1, 4)
    with pytest.raises(ValueError, match=r"n must be in 1\.\.4, not 5"):
        check_int("n", 5, 1, 4)


@pytest.mark.parametrize("block", list(BLOCKS.values()), ids=lambda b: b.name)
def test_manifest_and_cli_carry_the_same_parameters(block, tmp_path):
    """A configuration given as CLI flags comes back from its manifest exactly."""
    for params in (block.small,):
        flags = []
        for row in params.describe():
            name, value = row["name"], row["value"]
            if value is None and "." in name:
                continue  # a field of a switched-off nested block
            text = {None: "off", True: "on", False: "false"}.get(value, str(value)) \
                if value is None or isinstance(value, bool) else str(value)
            flags += [f"--{name.replace('_', '-').replace('.', '-')}", text]
        out = tmp_path / params.slug
        assert main(["generate", block.name, *flags, "-o", str(out)]) == 0
        manifest = json.loads((out / f"{params.slug}.json").read_text())
        assert block.params.from_dict(manifest["params"]) == params
        assert [r["name"] for r in manifest["parameters"]] == \
            [n for n, _, _ in block.params.leaf_specs()]


def test_npu_weights_in_spram_rules():
    """``wgt_spram``: at most 16384 words of at most 8 lanes, and only on iCE40 devices."""
    from npugen.rtl.common.ram import Ice40SpRam
    from npugen.rtl.npu import NpuParams

    small = {"lanes": 4, "systolic.rows": 4, "systolic.cols": 4, "wgt_spram": "true"}
    p = NpuParams.from_leaves({**small, "wgt_words": 16384})
    assert p.device_problem("ice40") is None
    assert "wgt_spram=true is for ice40 devices" in p.device_problem("ecp5")
    with pytest.raises(ValueError, match="wgt_spram holds at most 16384 words of at most 8 "
                                         "lanes .* not wgt_words 16385 of lanes 4"):
        NpuParams.from_leaves({**small, "wgt_words": 16385})
    with pytest.raises(ValueError, match="not wgt_words 4096 of lanes 16"):
        NpuParams.from_leaves({"lanes": 16, "systolic.rows": 16, "systolic.cols": 16,
                               "wgt_spram": "true"})
    from amaranth.hdl import Fragment

    for width, depth, blocks in ((32, 16384, 2), (17, 100, 2), (16, 2, 1)):
        ram = Ice40SpRam(width, depth)
        Fragment.get(ram, None)  # elaborated: used
        assert ram.blocks == blocks
    with pytest.raises(ValueError, match="depth must be"):
        Ice40SpRam(32, 16385)
    with pytest.raises(ValueError, match="width must be"):
        Ice40SpRam(65, 16)


def test_npu_spram_build_is_refused_for_ecp5(capsys):
    """The CLI names the reason (exit 2) before it writes anything."""
    code = main(["synth", "npu", "--lanes", "4", "--systolic-rows", "4", "--systolic-cols", "4",
                 "--wgt-spram", "true", "--device", "ecp5-85k", "-o", "/nonexistent/never"])
    assert code == 2
    assert "wgt_spram=true is for ice40 devices" in capsys.readouterr().err


def test_npu_serial_requantizers_at_most_20():
    """A part's table entries are read between two of a serial unit's values."""
    from npugen.rtl.npu import NpuParams

    wide = {"lanes": 24, "systolic.rows": 24, "systolic.cols": 24, "requant_serial": "true"}
    assert NpuParams.from_leaves({**wide, "requant_lanes": 12}).post_lanes == 12
    with pytest.raises(ValueError, match="requant_serial takes at most 20 requantization "
                                         "units .* not 24"):
        NpuParams.from_leaves(wide)


def test_npu_broadcast_ice40_array_needs_even_lanes():
    """Two PEs of a row share an SB_MAC16's B register in the broadcast array."""
    from npugen.rtl.npu import NpuParams

    odd = {"lanes": 3, "systolic.rows": 3, "systolic.cols": 3,
           "systolic.multiplier": "ice40", "array_broadcast": "true"}
    with pytest.raises(ValueError, match="array_broadcast with systolic.multiplier ice40 "
                                         "needs an even lanes .* not 3"):
        NpuParams.from_leaves(odd)
    assert NpuParams.from_leaves({**odd, "systolic.multiplier": "inferred"}).array_broadcast
    assert NpuParams.from_leaves({**odd, "lanes": 4, "systolic.rows": 4,
                                  "systolic.cols": 4}).array_broadcast


@pytest.mark.parametrize(("flag", "needs", "message"), [
    # MAXPOOL on the array takes the checker's window fields and lockstep weights
    ("pool_on_array", ("serial_setup", "array_broadcast"),
     "pool_on_array needs the systolic array, serial_setup and array_broadcast"),
    # the compact unit is a serial unit that rounds only as ort
    ("requant_compact", ("requant_serial", "requant_ort_only"),
     "requant_compact needs requant_serial and requant_ort_only"),
], ids=["pool_on_array", "requant_compact"])
def test_npu_flags_need_their_prerequisites(flag, needs, message):
    """A flag is accepted with its prerequisites and refused, named, without any of them."""
    from npugen.rtl.npu import NpuParams

    base = {"lanes": 4, "systolic.rows": 4, "systolic.cols": 4, flag: "true",
            **dict.fromkeys(needs, "true")}
    assert getattr(NpuParams.from_leaves(base), flag)
    for name in needs:
        with pytest.raises(ValueError, match=message):
            NpuParams.from_leaves({**base, name: "false"})


def test_npu_pool_on_array_needs_the_array():
    from npugen.rtl.npu import NpuParams

    with pytest.raises(ValueError, match="pool_on_array needs"):
        NpuParams.from_leaves({"lanes": 4, "systolic": "false", "serial_setup": "true",
                               "array_broadcast": "true", "pool_on_array": "true"})


def test_npu_ort_only_serial_requantizers_at_most_19():
    """The ort-only unit's 22-cycle interval leaves room for 19 table reads."""
    from npugen.rtl.npu import NpuParams

    wide = {"lanes": 20, "systolic.rows": 20, "systolic.cols": 20, "requant_serial": "true"}
    assert NpuParams.from_leaves(wide).post_lanes == 20
    with pytest.raises(ValueError, match="at most 19 requantization units .* not 20"):
        NpuParams.from_leaves({**wide, "requant_ort_only": "true"})


def test_npu_winograd_rules():
    """The Winograd engine in the NPU: int8, int32, one engine, raw filters; with its array."""
    from npugen.rtl.npu import NpuParams

    base = {"winograd": "true"}
    p = NpuParams.from_leaves(base)
    assert (p.winograd.data_width, p.winograd.acc_width) == (8, 32)
    assert p.slug.endswith("_wg16k16") and p.slug != NpuParams().slug
    for name, value, message in (
            ("data_width", 9, r"winograd.data_width must be 8 in the NPU .*not 9"),
            ("acc_width", 24, r"winograd.acc_width must be 32 in the NPU .*not 24"),
            ("engines", 2, r"winograd.engines must be 1 in the NPU .*not 2"),
            ("filter_input", "transformed",
             r"winograd.filter_input must be raw in the NPU .*not transformed")):
        with pytest.raises(ValueError, match=message):
            NpuParams.from_leaves({**base, f"winograd.{name}": value})
    with pytest.raises(ValueError, match=r"winograd needs the systolic array"):
        NpuParams.from_leaves({**base, "systolic": "false"})
    with pytest.raises(ValueError, match=r"winograd needs the pipelined requantizers"):
        NpuParams.from_leaves({**base, "requant_serial": "true"})
