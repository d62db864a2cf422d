"""Shared pytest options: --seed (reproduce a random run), --waves (FST dumps), --slow.

Every Verilator bench of the session collects line coverage (and toggle coverage with
``--toggle-coverage``, three to four times slower) into a folder of its own,
``build/coverage/session-*`` (``NPUGEN_COVERAGE``; set it to ``off`` to build without); the
table is printed at the end of the run and written to
``build/coverage/summary.md``. Two sessions in one checkout never touch each other's files:
a session holds a lock on its folder, and only folders whose lock is free (their session
has ended) are removed.
"""

import fcntl
import os
import random
import shutil
import time
from pathlib import Path

import pytest

from npugen.sim.flow import coverage

COVERAGE_DIR = Path(__file__).resolve().parents[1] / "build" / "coverage"


def pytest_addoption(parser):
    parser.addoption("--seed", type=int, default=None,
                     help="seed for every random test (default: random, printed in the header)")
    parser.addoption("--waves", action="store_true",
                     help="dump an FST waveform from every cocotb run (same as NPUGEN_WAVES=fst)")
    parser.addoption("--slow", action="store_true", help="also run tests marked slow")
    parser.addoption("--toggle-coverage", action="store_true",
                     help="add Verilator toggle coverage to the line coverage (same as "
                          "NPUGEN_COVERAGE_TOGGLES=1; the benches run 3-4x slower)")


def pytest_configure(config):
    seed = config.getoption("--seed")
    if hasattr(config, "workerinput"):
        # pytest-xdist worker: use the controller's seed, so the header's seed reproduces.
        seed = config.workerinput["npugen_seed"]
    elif seed is None:
        seed = int(os.environ.get("NPUGEN_SEED", random.randrange(1 << 31)))
    config.npugen_seed = seed
    if not hasattr(config, "workerinput"):
        # The controller starts a fresh collection; workers inherit the environment.
        if os.environ.get(coverage.ENV, "") == "off":
            os.environ.pop(coverage.ENV)
        elif coverage.ENV not in os.environ:
            os.environ[coverage.ENV] = str(_session_folder(COVERAGE_DIR))
        if config.getoption("--toggle-coverage"):
            os.environ[coverage.TOGGLES_ENV] = "1"
    if config.getoption("--waves"):
        os.environ["NPUGEN_WAVES"] = "fst"


_LOCKS = []  # open lock files of this session's coverage folder, held until exit


def _session_folder(root):
    """Create and lock a fresh coverage folder under ``root``; remove ended sessions' ones."""
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("session-*"):
        try:
            fd = os.open(old / ".lock", os.O_RDWR)
        except OSError:
            continue  # not a session folder we made
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # its session is still running
            continue
        shutil.rmtree(old, ignore_errors=True)
        os.close(fd)
    # Locked before it gets its session-* name, so no other session can take it for ended.
    name = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    making = root / f".making-{name}"
    making.mkdir()
    fd = os.open(making / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    _LOCKS.append(fd)
    folder = root / f"session-{name}"
    making.rename(folder)
    return folder


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """Hand the controller's seed to each pytest-xdist worker."""
    node.workerinput["npugen_seed"] = node.config.npugen_seed


def pytest_report_header(config):
    return f"npugen seed: {config.npugen_seed} (rerun with --seed {config.npugen_seed})"


def pytest_terminal_summary(terminalreporter, config):
    """Print the coverage of every Verilog file the session's benches simulated."""
    folder = os.environ.get(coverage.ENV)
    if hasattr(config, "workerinput") or not folder or not list(Path(folder).glob("*.dat")):
        return
    table = coverage.report(folder)
    terminalreporter.write_sep("-", f"Verilator coverage ({folder})")
    terminalreporter.write_line(table)
    summary = coverage.report(folder, markdown=True) + "\n"
    Path(folder, "summary.md").write_text(summary)
    if Path(folder).parent == COVERAGE_DIR:
        (COVERAGE_DIR / "summary.md").write_text(summary)


#: Test files whose tests take tens of seconds to minutes each (Verilator builds, place and
#: route, the wheel). They run first, so that the two workers finish together instead of
#: one running the last long test alone; pytest-xdist hands out one test at a time
#: (``--maxschedchunk=1`` in pyproject.toml), or one worker would get them all.
LONG = ("test_packaging.py", "flow/test_boards.py", "flow/test_synth.py", "cocotb/")


def _duration_class(item):
    path = item.nodeid.split("::")[0]
    if "slow" in item.keywords:
        return 0
    return 1 if any(long in path for long in LONG) else 2


def pytest_collection_modifyitems(config, items):
    items.sort(key=_duration_class)  # stable: the order within a class is kept
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def seed(request):
    """Return the session seed; it is printed on failure so the run can be reproduced."""
    value = request.config.npugen_seed
    print(f"seed = {value}")
    return value
