"""npugen synth: smoke runs of the open toolchain, and its failure paths."""

import json
import subprocess
import sys

import pytest

from npugen.sim import cli
from npugen.sim.cli import main
from npugen.sim.flow import tools


@pytest.mark.parametrize(("device", "router"), [("ice40-up5k", None), ("ecp5-25k", "router2")])
def test_synth_smoke(device, router, tmp_path, capsys):
    out = tmp_path / "out"
    extra = ["--router", router] if router else []
    assert main(["synth", "systolic", "--rows", "2", "--cols", "2", "--device", device,
                 "--freq", "40", "-o", str(out), *extra]) == 0
    report = json.loads((out / f"systolic_ws_2x2_a8w8acc32.{device}.report.json").read_text())
    assert report["router"] == (router or "router1")
    log = (out / f"box_systolic_ws_2x2_a8w8acc32.{device}.seed1.nextpnr.log").read_text()
    assert ("Running router2..." in log) == (router == "router2")  # nextpnr ran the router asked
    assert report["resources"]["luts"] > 0 and report["resources"]["flip_flops"] > 0
    assert report["fmax_mhz"] > 0
    assert report["peak_gops"] == pytest.approx(2 * 4 * report["fmax_mhz"] / 1000, abs=0.01)
    text = capsys.readouterr().out
    assert "nextpnr" in text and "Fmax (MHz)" in text  # progress and the table
    assert (out / f"box_systolic_ws_2x2_a8w8acc32.{device}.seed1.nextpnr.log").exists()


def test_tool_failure_reports_the_log_tail(tmp_path):
    with pytest.raises(tools.ToolError, match=r"(?s)fake tool failed \(exit 3\).*Error: boom"):
        tools.run_tool([sys.executable, "-c", "print('ok'); print('Error: boom'); exit(3)"],
                        tmp_path, "fake.log", "fake tool")


def test_unknown_device_is_a_one_line_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "npugen.sim.cli", "synth", "systolic",
                           "--device", "ecp5-12k", "-o", str(tmp_path / "o")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "--device" in proc.stderr
    assert not (tmp_path / "o").exists()


def _sleeper(pid_file, seconds=60):
    """Return a tool that records its PID, sleeps, then leaves ``<pid_file>.done``."""
    return [sys.executable, "-c",
            (f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
             f"time.sleep({seconds}); open({str(pid_file) + '.done'!r}, 'w').close()")]


def _gone(pid_file):
    import os

    try:
        os.kill(int(pid_file.read_text()), 0)
    except ProcessLookupError:
        return True
    return False


def test_parallel_tools_all_run_and_log(tmp_path):
    started = []
    jobs = [([sys.executable, "-c", f"print('run {k}')"], f"job{k}.log", f"job {k}")
            for k in range(3)]
    tools.run_tools(jobs, tmp_path, parallel=2, started=started.append)
    assert started == ["job 0", "job 1", "job 2"]
    assert [(tmp_path / f"job{k}.log").read_text() for k in range(3)] == \
        [f"run {k}\n" for k in range(3)]


def test_a_failure_stops_the_other_tools(tmp_path):
    pid = tmp_path / "sleeper.pid"
    fail = [sys.executable, "-c",
            (f"import os, time\np = {str(pid)!r}\n"
             "while not (os.path.exists(p) and open(p).read()): time.sleep(0.05)\n"
             "print('Error: broken'); raise SystemExit(2)")]
    with pytest.raises(tools.ToolError, match=r"(?s)bad tool failed \(exit 2\).*Error: broken"):
        tools.run_tools([(_sleeper(pid), "sleep.log", "sleeper"), (fail, "bad.log", "bad tool")],
                         tmp_path, parallel=2)
    assert _gone(pid), "the sleeping tool was left running"
    assert not pid.with_name(pid.name + ".done").exists(), "it was waited for, not stopped"


def test_ctrl_c_stops_every_running_tool(tmp_path):
    pids = [tmp_path / f"s{k}.pid" for k in range(2)]

    def started(what):
        if what == "second":
            import time

            while not all(p.exists() and p.read_text() for p in pids[:1]):
                time.sleep(0.05)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tools.run_tools([(_sleeper(pids[0]), "a.log", "first"),
                          (_sleeper(pids[1]), "b.log", "second")], tmp_path, parallel=2,
                         started=started)
    assert _gone(pids[0]) and not pids[0].with_name(pids[0].name + ".done").exists()
    assert not pids[1].exists()  # interrupted before it started


def test_kill_stops_every_running_tool(tmp_path):
    """SIGTERM to a real `npugen`-like parent: its tools go with it, none is orphaned."""
    import signal
    import time

    pids = [tmp_path / f"s{k}.pid" for k in range(2)]
    parent = subprocess.Popen([sys.executable, "-c", (
        "import sys\nfrom npugen.sim.flow import tools\n"
        f"jobs = [({_sleeper(pids[0])!r}, 'a.log', 'a'), ({_sleeper(pids[1])!r}, 'b.log', 'b')]\n"
        f"try:\n    tools.run_tools(jobs, {str(tmp_path)!r}, parallel=2)\n"
        "except KeyboardInterrupt:\n    sys.exit(130)\n")])
    deadline = time.monotonic() + 60
    while not all(p.exists() and p.read_text() for p in pids):
        assert time.monotonic() < deadline and parent.poll() is None, "tools did not start"
        time.sleep(0.05)
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=30) == 130
    assert all(_gone(p) for p in pids), "a tool outlived its parent"


def _fake_yosys(tmp_path, abc9_dies):
    """Write a stand-in yosys that dies after 'Executing ABC9.' unless run with -dff."""
    script = tmp_path / "fake_yosys"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "cmd = sys.argv[-1]\n"
        "print('Executing ABC9.')\n"
        f"if {abc9_dies!r} and ' -dff' not in cmd:\n"
        "    sys.exit(134)\n"
        "print('ok: ' + cmd)\n")
    script.chmod(0o755)
    return str(script)


def test_ecp5_abc9_death_reruns_with_dff(tmp_path, monkeypatch):
    from npugen.sim.flow import synth
    monkeypatch.setattr(synth, "_yosys", lambda: _fake_yosys(tmp_path, True))
    stages, retries = [], []
    synth._synth(tmp_path, "synth_ecp5", "top", "", "top.ecp5.yosys.log", "yosys (core)",
                 stages.append, retries)
    assert len(retries) == 1 and "-dff" in retries[0] and stages == retries
    assert "synth_ecp5 -dff -top top" in (tmp_path / "top.ecp5.dff.yosys.log").read_text()


@pytest.mark.parametrize(("synth_cmd", "dies"), [("synth_ice40 -dsp", True),
                                                  ("synth_ecp5", False)])
def test_no_retry_for_ice40_or_other_failures(tmp_path, monkeypatch, synth_cmd, dies):
    """Only an ECP5 run whose log ends in ABC9 is retried; anything else raises as it was."""
    from npugen.sim.flow import synth
    if dies:
        monkeypatch.setattr(synth, "_yosys", lambda: _fake_yosys(tmp_path, True))
    else:
        script = tmp_path / "fail"
        script.write_text(f"#!{sys.executable}\nprint('ERROR: syntax'); raise SystemExit(1)\n")
        script.chmod(0o755)
        monkeypatch.setattr(synth, "_yosys", lambda: str(script))
    retries = []
    with pytest.raises(tools.ToolError):
        synth._synth(tmp_path, synth_cmd, "top", "", "top.yosys.log", "yosys (core)",
                     lambda _: None, retries)
    assert retries == []


@pytest.mark.parametrize(("block", "given", "expected"), [
    ("npu", None, "router2"),  # router1 oscillates on the NPU's builds (docs/npu.md)
    ("systolic", None, "router1"),
    ("npu", "router1", "router1"),
    ("sparse", "router2", "router2"),
])
def test_router_is_the_blocks_own_unless_given(block, given, expected, tmp_path, monkeypatch):
    asked = []

    class Stop(Exception):
        pass

    def fake_report(params, device, **kwargs):
        asked.append(kwargs["router"])
        raise Stop

    monkeypatch.setattr(cli, "synth_report", fake_report)
    extra = ["--router", given] if given else []
    with pytest.raises(Stop):
        main(["synth", block, "--device", "ecp5-85k", "-o", str(tmp_path / "o"), *extra])
    assert asked == [expected]
