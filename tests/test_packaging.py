"""What a user installs: the package list, and a wheel from a clean tree that really works.

The wheel test builds a wheel from the files a fresh clone would have (tracked, plus new files
not ignored), installs it (not editable) in a fresh virtual environment, checks that every
file of ``rtl/``, ``sim/`` and ``boards/`` is in it byte for byte (a module or data file
missing from the package fails), and runs the CLI from there, in a folder outside the source
tree: ``npugen generate`` for every block; ``npugen compile`` of the wheel's own digits CNN and
``npugen infer --check`` on 50 held-out images it ships (ISA simulator); and the digits MLP
compiled for the demo NPU with the sparse engine (``NPU_SPARSE_DEMO``) through ``npugen infer
--engine verilator --check`` (Verilator, cocotb and the primitive models found from the
installed package; the MLP's hidden layer on the sparse engine). Every output element is
compared with onnxruntime. ``npugen demo`` is CI's main job (``.ci/run``); this test ran it
too before, two to three minutes of Verilator builds again.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from npugen.sim.blocks import BLOCKS, NPU_SPARSE_DEMO

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"rtl": "npugen.rtl", "sim": "npugen.sim", "boards": "npugen.boards"}


def _config():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_folder_is_listed():
    found = set()
    for top, name in PACKAGES.items():
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([name, *rel.parts]))
    config = _config()["tool"]["setuptools"]
    assert set(config["packages"]) == found
    assert config["package-dir"] == {v: k for k, v in PACKAGES.items()}
    for package, globs in config["package-data"].items():
        folder = ROOT.joinpath(*package.split(".")[1:])
        for pattern in globs:
            assert list(folder.glob(pattern)), f"{package}: {pattern} matches nothing"


def _clean_tree(dest):
    """Copy what a fresh clone of this work tree would hold into ``dest``."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                             "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


@pytest.mark.slow
def test_wheel_from_a_clean_tree_installs_and_runs(tmp_path, seed):
    tree = tmp_path / "tree"
    _clean_tree(tree)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist),
                    str(tree)], check=True, capture_output=True)
    (wheel,) = dist.glob("npugen-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)]
    subprocess.run(pip, check=True, capture_output=True)
    npugen = str(venv / "bin" / "npugen")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin"
    work = tmp_path / "work"  # not the source tree: nothing may come from it
    work.mkdir()
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import npugen.sim.cli as c; print(c.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True)
    assert str(venv) in where.stdout, where.stdout
    site = Path(where.stdout.strip()).parent.parent  # .../site-packages/npugen
    trees = {"rtl": site / "rtl", "sim": site / "sim", "boards": site / "boards"}
    shipped = 0
    for src in sorted(tree.rglob("*")):
        rel = src.relative_to(tree)
        if src.is_file() and rel.parts[0] in trees:
            dest = trees[rel.parts[0]].joinpath(*rel.parts[1:])
            assert dest.is_file(), f"{rel} is not in the wheel"
            assert dest.read_bytes() == src.read_bytes(), f"{rel} differs in the wheel"
            shipped += 1
    assert shipped > 100, shipped
    for name in BLOCKS:
        out = work / name
        proc = subprocess.run([npugen, "generate", name, "-o", str(out)], cwd=work, env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert len(list(out.glob("*.v"))) == 1 and len(list(out.glob("*.json"))) == 1
    def cli(*args):
        proc = subprocess.run([npugen, *args], cwd=work, env=env, capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout

    def held_out(name, count, shape):  # the wheel's own held-out images, into name
        code = ("import numpy as np; from npugen.sim.flow.digits import held_out_split; "
                f"x, _ = held_out_split(); np.save({name!r}, "
                f"x[{seed % 400}:][:{count}].reshape({count}, *{shape}))")
        subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=work, env=env,
                       check=True)

    # the end-to-end steps, from the wheel's own networks and held-out images: the CNN on
    # the ISA simulator, the MLP on the sparse demo NPU in Verilator
    networks = site / "sim" / "flow" / "networks"
    cli("compile", str(networks / "digits_cnn_int8.onnx"), "-o", "cnn", "--preset", "demo")
    held_out("x.npy", 50, (1, 8, 8))
    out = cli("infer", "cnn", "--input", "x.npy", "-o", "y.npy", "--check")
    assert "check: 0 of 500 elements differ from onnxruntime (bit-exact)" in out, out[-3000:]
    out = cli("compile", str(networks / "digits_mlp_int8.onnx"), "-o", "mlp", "--preset",
              "demo", "--sparse", "on", "--sparse-entries-max", "256",
              "--sparse-act-width", "16")
    assert f"for {NPU_SPARSE_DEMO.slug}:" in out, out  # exactly that NPU
    assert " sparse " in out.splitlines()[1], out  # the hidden layer on the sparse engine
    held_out("x3.npy", 3, (64,))
    out = cli("infer", "mlp", "--input", "x3.npy", "-o", "y3.npy", "--engine", "verilator",
              "--check")
    assert "check: 0 of 30 elements differ from onnxruntime (bit-exact)" in out, out[-3000:]
