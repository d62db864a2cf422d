"""npugen synth: smoke runs of the open toolchain, and its failure paths."""

import json
import subprocess
import sys

import pytest

from npugen.rtl.cli import main
from npugen.sim import synth


@pytest.mark.parametrize("device", ["ice40-up5k", "ecp5-25k"])
def test_synth_smoke(device, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["synth", "systolic", "--rows", "2", "--cols", "2", "--device", device,
                 "--freq", "40", "-o", str(out)]) == 0
    report = json.loads((out / f"systolic_ws_2x2_a8w8acc32.{device}.report.json").read_text())
    assert report["resources"]["luts"] > 0 and report["resources"]["flip_flops"] > 0
    assert report["fmax_mhz"] > 0
    assert report["peak_gops"] == pytest.approx(2 * 4 * report["fmax_mhz"] / 1000, abs=0.01)
    text = capsys.readouterr().out
    assert "nextpnr" in text and "Fmax (MHz)" in text  # progress and the table
    assert (out / f"box_systolic_ws_2x2_a8w8acc32.{device}.seed1.nextpnr.log").exists()


def test_tool_failure_reports_the_log_tail(tmp_path):
    with pytest.raises(synth.SynthError, match=r"(?s)fake tool failed \(exit 3\).*Error: boom"):
        synth._run_tool([sys.executable, "-c", "print('ok'); print('Error: boom'); exit(3)"],
                        tmp_path, "fake.log", "fake tool")


def test_unknown_device_is_a_one_line_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "npugen.rtl.cli", "synth", "systolic",
                           "--device", "ecp5-12k", "-o", str(tmp_path / "o")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "--device" in proc.stderr
    assert not (tmp_path / "o").exists()
