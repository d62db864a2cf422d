"""The npugen command: generate, parameter errors, help, atomic output."""

import json
import re
import subprocess
import sys

import pytest
from amaranth.hdl import Fragment

from npugen.rtl.sparse import SparseParams
from npugen.rtl.systolic import SystolicParams
from npugen.sim.cli import main
from npugen.sim.flow import build


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "npugen.sim.cli", *args],
                          capture_output=True, text=True, check=False)


def test_generate_writes_verilog_and_manifest(tmp_path):
    out = tmp_path / "out"
    assert main(["generate", "systolic", "--rows", "3", "--cols", "5", "--acc-width", "20",
                 "--dataflow", "os", "-o", str(out)]) == 0
    p = SystolicParams(rows=3, cols=5, acc_width=20, dataflow="os")
    v = (out / f"{p.slug}.v").read_text()
    manifest = json.loads((out / f"{p.slug}.json").read_text())
    assert sorted(x.name for x in out.iterdir()) == [f"{p.slug}.json", f"{p.slug}.v"]
    assert manifest["params"] == p.to_dict()
    assert manifest["params"]["block"] == "systolic"
    assert {row["name"]: row["value"] for row in manifest["parameters"]} == \
        {k: v for k, v in p.to_dict().items() if k != "block"}
    assert manifest["module"] == p.slug
    assert manifest["golden_model"] == "npugen.sim.models.systolic:os_tile"
    header = re.search(rf"module {p.slug}\((.*?)\);", v, re.S).group(1)
    verilog_ports = {x.strip() for x in header.split(",")}
    assert {port["name"] for port in manifest["ports"]} == verilog_ports
    by_name = {port["name"]: port for port in manifest["ports"]}
    assert by_name["o__payload"]["width"] == 5 * 20 + 1
    assert by_name["i__payload"]["direction"] == "in"
    assert by_name["i__ready"]["direction"] == "out"
    fields = {f["name"]: f for f in by_name["i__payload"]["fields"]}
    assert fields["b[4]"] == {"name": "b[4]", "offset": 3 * 8 + 4 * 8, "width": 8, "signed": True}
    assert manifest["latency_cycles"]["last_beat_to_first_row"] > 0


@pytest.mark.parametrize(("args", "message"), [
    (["--rows", "0"], "rows must be in 1..64, not 0"),
    (["--cols", "65"], "cols must be in 1..64, not 65"),
    (["--acc-width", "3"], "acc_width must be in 16..48, not 3"),
    (["--dataflow", "xs"], "dataflow must be one of ws, os, not 'xs'"),
    (["--rows", "four"], "rows must be an integer in 1..64, not 'four'"),
    (["--a-width", "2.5"], "a_width must be an integer in 2..16, not '2.5'"),
    (["--bogus", "1"], "unrecognized arguments: --bogus 1"),
])
def test_bad_parameters_one_line_exit_2_no_files(tmp_path, args, message):
    out = tmp_path / "out"
    proc = run_cli("generate", "systolic", *args, "-o", str(out))
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("npugen: error: ")
    assert message in lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_generate_sparse(tmp_path):
    assert main(["generate", "sparse", "--n-pe", "3", "--relu", "true", "--act-width", "16",
                 "-o", str(tmp_path)]) == 0
    p = SparseParams(n_pe=3, relu=True, act_width=16)
    manifest = json.loads((tmp_path / f"{p.slug}.json").read_text())
    assert manifest["params"] == p.to_dict()
    assert manifest["golden_model"] == "npugen.sim.models.sparse:sparse_matvec"
    by_name = {port["name"]: port for port in manifest["ports"]}
    assert by_name["i_cfg__payload"]["width"] == 40
    assert by_name["i_act__payload"]["width"] == 4 * 16 + 1
    assert by_name["pe_active"]["width"] == 3


@pytest.mark.parametrize(("args", "message"), [
    (["--n-pe", "65"], "n_pe must be in 1..64, not 65"),
    (["--relu", "maybe"], "relu must be one of true, false (or 1, 0), not 'maybe'"),
    (["--act-width", "12"], "act_width must be one of 8, 16, not 12"),
])
def test_bad_sparse_parameters(tmp_path, args, message):
    proc = run_cli("generate", "sparse", *args, "-o", str(tmp_path / "out"))
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_help_lists_every_parameter_with_default_and_range():
    proc = run_cli("generate", "systolic", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for name, spec, default in SystolicParams.leaf_specs():
        flag = "--" + name.replace("_", "-")
        assert flag in text
        assert f"{' '.join(spec.help.split())}; valid: {spec.valid()} (default: {default})" in text


def test_failed_write_leaves_no_files(tmp_path, monkeypatch):
    """If the second file cannot be written, the first does not appear either."""
    good = tmp_path / "a.v"
    missing = tmp_path / "no-such-dir" / "a.json"
    with pytest.raises(OSError):
        build._atomic_write_all({good: "x", missing: "y"})
    assert list(tmp_path.iterdir()) == []


def test_generation_error_leaves_no_files(tmp_path, monkeypatch):
    def boom(component, **kwargs):
        Fragment.get(component, None)  # elaborated: no "never elaborated" warning
        raise RuntimeError("conversion failed")
    monkeypatch.setattr(build.verilog, "convert", boom)
    with pytest.raises(RuntimeError):
        build.write_core(SystolicParams(), tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("npugen ")


@pytest.mark.parametrize("block", ["systolic", "winograd"])
def test_run_without_a_board_fails_in_one_line(block):
    proc = run_cli("run", block, "--port", "/nonexistent/tty", "--seed", "1")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "/nonexistent/tty" in proc.stderr


@pytest.mark.parametrize("name", ["demo", "up5k", "icebreaker"])
def test_npu_preset_is_the_named_configuration(tmp_path, name):
    """``--preset`` starts from a named NPU; flags given with it override its values."""
    from npugen.rtl.npu import NpuParams
    from npugen.sim.blocks import BLOCKS

    preset = BLOCKS["npu"].presets[name]
    out = tmp_path / "out"
    assert main(["generate", "npu", "--preset", name, "-o", str(out)]) == 0
    assert json.loads((out / f"{preset.slug}.json").read_text())["params"] == preset.to_dict()
    tuned = tmp_path / "tuned"
    assert main(["generate", "npu", "--preset", name, "--imem-words", "20", "-o",
                 str(tuned)]) == 0
    (manifest,) = tuned.glob("*.json")
    params = NpuParams.from_dict(json.loads(manifest.read_text())["params"])
    assert params.imem_words == 20 and params.lanes == preset.lanes
    assert params.requant_compact == preset.requant_compact


def test_npu_preset_errors_are_one_line(tmp_path):
    proc = run_cli("generate", "npu", "--preset", "nope", "-o", str(tmp_path / "a"))
    assert proc.returncode == 2 and "invalid choice: 'nope'" in proc.stderr
    # the preset's 4 lanes against a 2x2 array: the parameters' own error
    proc = run_cli("generate", "npu", "--preset", "up5k", "--systolic-rows", "2", "-o",
                   str(tmp_path / "b"))
    assert proc.returncode == 2 and "systolic.rows must equal lanes (4), not 2" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "b").exists()


def test_a_closed_stdout_pipe_ends_quietly(tmp_path):
    """`npugen ... | head`: the reader goes away; no traceback, no error line, exit 141."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "npugen.sim.cli", "generate", "systolic",
                             "-o", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before anything is written
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 141, (proc.returncode, err)
    assert err == b"", err
