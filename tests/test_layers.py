"""Layers only look down: every import of every module, read from its syntax tree.

Function-level imports count as much as module-level ones (an import inside a function is
no way around a layer). The order, lowest first, is the README's "Layout" section.
"""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"rtl": "npugen.rtl", "boards": "npugen.boards", "sim": "npugen.sim"}

#: Layers, lowest first: (module prefix, third-party packages it may import besides stdlib).
LAYERS = [
    ("npugen.rtl", {"amaranth"}),
    ("npugen.boards", {"amaranth", "amaranth_boards"}),
    ("npugen.sim.models", {"numpy"}),
    ("npugen.sim.formats", {"numpy", "amaranth"}),
    ("npugen.sim.compiler", {"numpy", "amaranth", "onnx", "ai_edge_litert", "flatbuffers"}),
    ("npugen.sim.host", {"numpy", "amaranth", "serial"}),
    ("npugen.sim.blocks", {"amaranth"}),
    ("npugen.sim.cocotb", {"numpy", "amaranth", "cocotb"}),
    ("npugen.sim.flow", {"numpy", "amaranth", "cocotb_tools", "matplotlib", "onnxruntime",
                         "onnx", "sklearn", "ai_edge_litert"}),
    ("npugen.sim.cli", {"numpy"}),
    ("npugen.sim", set()),  # the package's own __init__: no imports at all
]


def layer_of(module):
    """Index in LAYERS of the most specific prefix of ``module``."""
    best = None
    for index, (prefix, _) in enumerate(LAYERS):
        if (module == prefix or module.startswith(prefix + ".")) and \
                (best is None or len(prefix) > len(LAYERS[best][0])):
            best = index
    return best


def _module_name(path):
    rel = path.relative_to(ROOT)
    parts = [PACKAGES[rel.parts[0]], *rel.parts[1:]]
    parts[-1] = parts[-1].removesuffix(".py")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path):
    """Yield ``(line, imported module)`` for every import in ``path``, at any depth."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            # `from . import x`: x may be a module of that package.
            names = [f"{target}.{a.name}" for a in node.names] if not node.module else [target]
            for name in names:
                yield node.lineno, name


def _sources():
    for top in PACKAGES:
        yield from sorted((ROOT / top).rglob("*.py"))


SOURCES = list(_sources())


def test_every_module_has_a_layer():
    assert SOURCES, "no sources found"
    missing = [str(p.relative_to(ROOT)) for p in SOURCES if layer_of(_module_name(p)) is None]
    assert not missing, missing


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_only_look_down(path):
    module = _module_name(path)
    own = layer_of(module)
    allowed_third_party = LAYERS[own][1]
    wrong = []
    for line, target in _imports(path):
        top = target.split(".")[0]
        if top == "npugen":
            layer = layer_of(target)
            if layer is None or layer > own:
                wrong.append(f"line {line}: {target} is above {LAYERS[own][0]}")
        elif top not in sys.stdlib_module_names and top not in allowed_third_party \
                and LAYERS[own][0] != "npugen.sim.cli":
            wrong.append(f"line {line}: {target} (third-party) is not for {LAYERS[own][0]}")
    assert not wrong, f"{module}: " + "; ".join(wrong)


def test_the_check_sees_function_level_imports(tmp_path):
    """The reader is no rubber stamp: a function-level upward import is reported."""
    fake = ROOT / "rtl" / "_layer_probe.py"
    try:
        fake.write_text("def f():\n    from npugen.sim.flow import build\n    return build\n")
        assert [t for _, t in _imports(fake)] == ["npugen.sim.flow"]
        assert layer_of("npugen.sim.flow") > layer_of(_module_name(fake))
    finally:
        fake.unlink()
