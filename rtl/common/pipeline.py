"""Small pipeline helpers: delay lines and a registered OR-reduction tree."""

from functools import reduce
from operator import or_

from amaranth.hdl import Signal

__all__ = ["delay", "or_tree", "or_tree_levels"]


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
