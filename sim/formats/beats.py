"""Pack and unpack stream payloads as integers, through the gateware's own data layouts.

:func:`pack` checks every field against its shape (Amaranth's ``Layout.const`` would wrap an
out-of-range value silently) and then uses ``Layout.const(value).as_bits()``;
:func:`unpack` reads ``Layout.from_bits(raw)`` back into plain Python values. A host tool
never hard-codes a bit offset: it asks the layout, so the Verilog port and the Python value
always agree.
"""

import enum

from amaranth.hdl import Shape
from amaranth.lib import data

__all__ = ["pack", "unpack", "width"]


def width(shape):
    """Width in bits of a layout or shape."""
    return shape.size if isinstance(shape, data.Layout) else Shape.cast(shape).width


def _check(shape, value, path):
    if isinstance(shape, data.ArrayLayout):
        if isinstance(value, (str, bytes, dict)) or len(value) != shape.length:
            raise ValueError(f"{path or 'payload'}: expected {shape.length} lanes, got {value!r}")
        for i, v in enumerate(value):
            _check(shape.elem_shape, v, f"{path}[{i}]")
        return
    if isinstance(shape, data.Layout):
        names = {name for name, _ in shape}
        if not isinstance(value, dict) or set(value) != names:
            raise ValueError(f"{path or 'payload'}: expected fields {sorted(names)}, "
                             f"got {value!r}")
        for name, field in shape:
            _check(field.shape, value[name], f"{path}.{name}".lstrip("."))
        return
    if isinstance(shape, type) and issubclass(shape, enum.Enum):
        if isinstance(value, shape):
            return
        if value in {m.value for m in shape}:
            return
        raise ValueError(f"{path}: {value!r} is not a {shape.__name__}")
    cast = Shape.cast(shape)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{path}: {value!r} is not an integer")
    lo = -(1 << (cast.width - 1)) if cast.signed else 0
    hi = (1 << (cast.width - cast.signed)) - 1
    if not lo <= value <= hi:
        raise ValueError(f"{path or 'payload'}: {value} does not fit {cast}")


def _enum_values(shape, value):
    """Replace enum values given as integers by members (``Layout.const`` wants members)."""
    if isinstance(shape, data.ArrayLayout):
        return [_enum_values(shape.elem_shape, v) for v in value]
    if isinstance(shape, data.Layout):
        return {name: _enum_values(field.shape, value[name]) for name, field in shape}
    if isinstance(shape, type) and issubclass(shape, enum.Enum) and not isinstance(value, shape):
        return shape(value)
    return value


def pack(layout, value):
    """Pack ``value`` (int, list for arrays, dict for structs) into an unsigned integer.

    Raises ValueError naming the field if a value does not fit it or a field is missing.
    Values may be numpy integers; they are converted exactly.
    """
    value = _plain(value)
    _check(layout, value, "")
    if isinstance(layout, data.Layout):
        return layout.const(_enum_values(layout, value)).as_bits()
    return value & ((1 << width(layout)) - 1)


def _plain(value):
    """Numpy scalars and arrays to Python ints and lists (exactly)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _python(value):
    if isinstance(value, data.Const):
        layout = value.shape()
        if isinstance(layout, data.ArrayLayout):
            return [_python(value[i]) for i in range(layout.length)]
        return {name: _python(value[name]) for name, _ in layout}
    if isinstance(value, enum.Enum):
        return value.value
    return value


def unpack(layout, raw):
    """Inverse of :func:`pack`: integers, lists and dicts, signed fields sign-extended."""
    if isinstance(layout, data.Layout):
        return _python(layout.from_bits(raw & ((1 << layout.size) - 1)))
    cast = Shape.cast(layout)
    raw &= (1 << cast.width) - 1
    if cast.signed and raw >> (cast.width - 1):
        raw -= 1 << cast.width
    return raw
