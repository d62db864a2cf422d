"""The Verilator model's C++ optimisation level reaches make, and nothing else changes."""

import os
import subprocess

from npugen.sim.flow.build import BUILD_FAST, RUN_FAST, _cxx_opt


def test_level_reaches_make_and_environment_is_restored(tmp_path, monkeypatch):
    # verilated.mk assigns OPT_FAST itself, as this makefile does
    (tmp_path / "Makefile").write_text("OPT_FAST = -Os\nall:\n\t@echo $(OPT_FAST) $(OPT_GLOBAL)\n")
    monkeypatch.delenv("MAKEFLAGS", raising=False)
    with _cxx_opt(BUILD_FAST):
        out = subprocess.run(["make", "-s", "-C", str(tmp_path)], capture_output=True,
                             text=True, check=True).stdout.split()
    assert out == [BUILD_FAST, BUILD_FAST]
    assert "MAKEFLAGS" not in os.environ
    monkeypatch.setenv("MAKEFLAGS", "-k")
    with _cxx_opt(RUN_FAST):
        assert os.environ["MAKEFLAGS"] == f"-k OPT_FAST={RUN_FAST} OPT_GLOBAL={RUN_FAST}"
    assert os.environ["MAKEFLAGS"] == "-k"
