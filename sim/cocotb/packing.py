"""Pack and unpack stream payloads as integers, using the RTL's own data layouts.

A bench never hard-codes bit offsets: it asks the component's layout, so the Verilog port
and the Python value always agree.
"""

from amaranth.hdl import Shape
from amaranth.lib import data

__all__ = ["pack", "unpack"]


def _width(shape):
    return shape.size if isinstance(shape, data.Layout) else Shape.cast(shape).width


def pack(layout, value):
    """Pack ``value`` (int, list for arrays, dict for structs) into an unsigned integer.

    Raises ValueError if a value does not fit its field.
    """
    if isinstance(layout, data.ArrayLayout):
        if len(value) != layout.length:
            raise ValueError(f"expected {layout.length} lanes, got {len(value)}")
        width = _width(layout.elem_shape)
        return sum(pack(layout.elem_shape, v) << (i * width) for i, v in enumerate(value))
    if isinstance(layout, data.Layout):
        return sum(pack(field.shape, value[name]) << field.offset for name, field in layout)
    shape = Shape.cast(layout)
    v = int(value)
    lo = -(1 << (shape.width - 1)) if shape.signed else 0
    hi = (1 << (shape.width - shape.signed)) - 1
    if not lo <= v <= hi:
        raise ValueError(f"{v} does not fit {shape}")
    return v & ((1 << shape.width) - 1)


def unpack(layout, raw):
    """Inverse of :func:`pack`: integers, lists and dicts, signed fields sign-extended."""
    if isinstance(layout, data.ArrayLayout):
        width = _width(layout.elem_shape)
        mask = (1 << width) - 1
        return [unpack(layout.elem_shape, (raw >> (i * width)) & mask)
                for i in range(layout.length)]
    if isinstance(layout, data.Layout):
        return {name: unpack(field.shape, (raw >> field.offset) & ((1 << _width(field.shape)) - 1))
                for name, field in layout}
    shape = Shape.cast(layout)
    raw &= (1 << shape.width) - 1
    if shape.signed and raw >> (shape.width - 1):
        raw -= 1 << shape.width
    return raw
