"""Small pipeline helpers: delay lines and a registered OR-reduction tree."""

from functools import reduce
from operator import or_

from amaranth.hdl import Array, Signal, Value

__all__ = ["delay", "in_range", "or_tree", "or_tree_levels", "select"]


def delay(m, value, cycles, *, name, reset_less=False):
    """Return ``value`` delayed by ``cycles`` registers (``cycles == 0`` returns it as is)."""
    for i in range(cycles):
        nxt = Signal.like(value, name=f"{name}_d{i + 1}", reset_less=reset_less)
        m.d.sync += nxt.eq(value)
        value = nxt
    return value


def or_tree_levels(n, fan_in=4):
    """Register levels :func:`or_tree` uses for ``n`` inputs (at least one)."""
    levels = 1
    while n > fan_in:
        n = -(-n // fan_in)
        levels += 1
    return levels


def or_tree(m, items, *, name, fan_in=4, reset_less=False):
    """OR ``items`` together through ``or_tree_levels(len(items))`` register levels.

    Every input sees the same latency, so a value presented on any input in cycle T appears
    at the output in cycle T + levels.
    """
    items = list(items)
    level = 0
    while True:
        groups = [items[i:i + fan_in] for i in range(0, len(items), fan_in)]
        items = []
        for g, group in enumerate(groups):
            reg = Signal(len(group[0]), name=f"{name}_l{level}_{g}", reset_less=reset_less)
            m.d.sync += reg.eq(reduce(or_, group))
            items.append(reg)
        level += 1
        if len(items) == 1:
            return items[0]


def select(items, index):
    """``items[index]`` as a multiplexer, with every value of ``index`` covered.

    Pads the choices with the last item up to ``2**len(index)``, so the generated case
    statement is complete (Verilator's CASEINCOMPLETE) and out-of-range indices are defined.
    """
    items = [Value.cast(x) for x in items]
    items += [items[-1]] * ((1 << len(Value.cast(index))) - len(items))
    return Array(items)[index]


def in_range(field, lo, hi):
    """``lo <= field <= hi`` for an unsigned field, without comparisons that are constant.

    A bound that the field's width already implies is left out, so the Verilog has no
    always-true comparison (Verilator's CMPCONST).
    """
    field = Value.cast(field)
    ok = field >= lo if lo > 0 else None
    if hi < (1 << len(field)) - 1:
        ok = field <= hi if ok is None else ok & (field <= hi)
    return ok if ok is not None else Value.cast(1)
