"""`npugen board` builds bitstreams with the yowasp tools; `npugen run` fails cleanly."""

import re
import subprocess
import sys

import pytest

from npugen.sim.cli import main

SMALL = ["--n-pe", "2", "--rows-max", "16", "--cols-max", "16", "--entries-max", "64"]


# The iCEBreaker's flow (yosys, nextpnr-ice40, icepack, the same checks) is the NPU
# bitstream's below; a second iCEBreaker build took 90 s of CI for nothing more.
@pytest.mark.parametrize(("board", "suffix", "clock"), [("ulx3s-85f", "bit", 25)])
def test_bitstream(board, suffix, clock, tmp_path, capsys):
    out = tmp_path / "build"
    assert main(["board", board, "--block", "sparse", *SMALL, "-o", str(out)]) == 0
    # the summary line: resources with their counts, and the clock's Fmax
    (summary,) = [line for line in capsys.readouterr().out.splitlines()
                  if line.startswith("nextpnr: ")]
    assert re.search(r"\d+/[\d,]+ \(\d+%\)", summary), summary
    assert re.search(rf"Fmax [\d.]+ MHz \(PASS at {clock}\.00 MHz\)", summary), summary
    (bitstream,) = out.glob(f"*.{suffix}")
    assert bitstream.stat().st_size > 10_000
    (report,) = out.glob("*.tim")
    fmax = re.findall(r"Max frequency for clock .*: ([\d.]+) MHz \(PASS at ([\d.]+) MHz\)",
                      report.read_text())
    assert fmax and float(fmax[-1][1]) == clock, "timing must pass at the board clock"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "npugen.sim.cli", *args],
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize(("args", "code", "message"), [
    (["board", "icebreaker", "--block", "sparse", "--n-pe", "99"], 2,
     "n_pe must be in 1..64, not 99"),
    (["board", "icebreaker", "--block", "sparse", "--bogus", "1"], 2, "unrecognized arguments"),
    (["board", "nope", "--block", "sparse"], 2, "invalid choice: 'nope'"),
    (["board", "icebreaker", "--block", "sparse", "--link-counters", "maybe"], 2,
     "invalid choice: 'maybe'"),
    (["board", "icebreaker", "--block", "sparse", "--baud", "0"], 2,
     "baud must be in 300..3000000, not 0"),
    (["board", "ulx3s-85f", "--block", "sparse", "--baud", "300"], 2,
     "baud must be in 382..6250000 for the ulx3s-85f's 25 MHz clock, not 300"),
    (["board", "icebreaker", "--block", "sparse", "--rows", "16"], 2,
     "unrecognized arguments: --rows 16"),
    (["board", "icebreaker", "--block", "systolic", "--multiplier", "ecp5"], 2,
     "multiplier=ecp5 is for ecp5 devices, not for board icebreaker"),
])
def test_board_errors_leave_no_files(args, code, message, tmp_path):
    proc = _cli(*args, "-o", str(tmp_path / "out"))
    assert proc.returncode == code and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_run_without_board_fails_in_one_line(tmp_path):
    proc = _cli("run", "sparse", "--port", str(tmp_path / "ttyNONE"), "--seed", "1")
    assert proc.returncode == 1
    assert "could not open port" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_npu_icebreaker_bitstream_fits(tmp_path, capsys):
    """The iCEBreaker bitstream of the digits CNN's NPU builds (97% full: any growth shows)."""
    out = tmp_path / "ib"
    assert main(["board", "icebreaker", "--block", "npu", "--preset", "icebreaker",
                 "--link-counters", "false", "-o", str(out)]) == 0
    (bitstream,) = out.glob("*.bin")
    assert bitstream.stat().st_size > 10_000
    (summary,) = [line for line in capsys.readouterr().out.splitlines()
                  if line.startswith("nextpnr: ")]
    cells = re.search(r"ICESTORM_LC ([\d,]+)/5,280", summary)
    assert cells and int(cells[1].replace(",", "")) <= 5280, summary
    assert re.search(r"Fmax [\d.]+ MHz \(PASS at 12\.00 MHz\)", summary), summary
    (report,) = out.glob("*.tim")
    fmax = re.findall(r"Max frequency for clock .*: ([\d.]+) MHz \(PASS at ([\d.]+) MHz\)",
                      report.read_text())
    assert fmax and float(fmax[-1][1]) == 12, "timing must pass at the board clock"
    print(summary)


def test_a_design_too_large_is_named_with_its_cells(tmp_path, capsys):
    """The 4-lane UP5K NPU behind the link does not fit the iCEBreaker.

    The error says by how much, and how to build the NPU that fits.
    """
    out = tmp_path / "up5k"
    code = main(["board", "icebreaker", "--block", "npu", "--preset", "up5k", "-o", str(out)])
    err = capsys.readouterr().err
    assert code != 0
    (line,) = [x for x in err.splitlines() if x.startswith("npugen: error: ")]
    assert re.search(r"does not fit the icebreaker's FPGA: ICESTORM_LC [\d,]+/5,280 "
                     r"\(\d+%\)", line), line
    assert "--preset icebreaker --link-counters false" in line
