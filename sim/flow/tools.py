"""External tools: find them in this Python environment, run them, and never leave one behind.

:func:`find_tool` looks next to the running interpreter first (a virtual environment's
``bin/``, where the yowasp packages install their commands), then on ``PATH``.
:func:`run_tools` runs tools with their output in log files, each in a process group of its
own, and stops every group on a failure, on Ctrl-C and on SIGTERM, so no tool and no child of
a tool (``make`` -> ``cc1plus``) outlives the command that started it.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

__all__ = ["ToolError", "find_tool", "run_tool", "run_tools", "sigterm_as_interrupt",
           "stop_groups"]


class ToolError(RuntimeError):
    """A tool is missing or failed; the message ends with the relevant lines of its log."""


def find_tool(name, hint="pip install -e '.[synth]'"):
    """Path of command ``name``: this environment's ``bin/`` first, then ``PATH``."""
    exe = Path(sys.executable).parent / name
    found = str(exe) if exe.exists() else shutil.which(name)
    if found is None:
        raise ToolError(f"{name} not found: {hint}")
    return found


def _failure(log, code, what):
    lines = log.read_text(errors="replace").strip().splitlines()
    marker = re.compile(r"ERROR|Error:|error:|Assert|Trap|trap:|exhausted|Killed")
    relevant = [x for x in lines if marker.search(x)][-8:]
    tail = [x for x in lines[-4:] if x not in relevant]
    return ToolError(f"{what} failed (exit {code}); from {log}:\n" + "\n".join(relevant + tail))


def stop_groups(procs, grace=10):
    """Terminate the process groups of ``procs`` (then kill what does not stop) and reap them.

    Each process must lead its own group (``start_new_session=True``), so its children go
    with it.
    """
    def signal_group(proc, sig):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    for proc in procs:
        signal_group(proc, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            signal_group(proc, signal.SIGKILL)
            proc.wait()
        # Children that ignored SIGTERM while their leader exited: make sure they are gone.
        signal_group(proc, signal.SIGKILL)


@contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises KeyboardInterrupt (main thread only), as Ctrl-C does."""
    def on_sigterm(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run_tools(jobs, cwd, parallel=1, started=lambda what: None, env=None):
    """Run ``jobs`` (``(cmd, log_name, what)``), at most ``parallel`` at a time, in ``cwd``.

    Each tool's output goes to its log. ``started(what)`` is called as each one starts;
    ``env`` adds environment variables. The first failure stops the others and raises
    :class:`ToolError` with the relevant lines of its log; Ctrl-C and SIGTERM (``kill``) stop
    every running tool and its children before the interrupt propagates.
    """
    environment = {**os.environ, **(env or {})}
    pending = list(jobs)
    running = []  # (proc, log file, log path, what)
    with sigterm_as_interrupt():
        try:
            while pending or running:
                while pending and len(running) < parallel:
                    cmd, log_name, what = pending.pop(0)
                    started(what)
                    log = Path(cwd, log_name)
                    out = open(log, "w")  # closed when the tool ends, or in the finally below
                    running.append((subprocess.Popen(cmd, cwd=cwd, stdout=out,
                                                     stderr=subprocess.STDOUT, env=environment,
                                                     start_new_session=True),
                                    out, log, what))
                for item in list(running):
                    proc, out, log, what = item
                    code = proc.poll()
                    if code is None:
                        continue
                    out.close()
                    running.remove(item)
                    if code != 0:
                        raise _failure(log, code, what)
                if running:
                    time.sleep(0.2)
        finally:
            stop_groups([proc for proc, *_ in running])
            for _, out, *_ in running:
                out.close()


def run_tool(cmd, cwd, log_name, what, env=None):
    """Run one tool in ``cwd`` with its output in ``log_name``; return the log's path."""
    run_tools([(cmd, log_name, what)], cwd, env=env)
    return Path(cwd, log_name)
