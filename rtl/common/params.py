"""Base for the frozen, validated parameter objects shared by RTL, models, benches and CLI.

Each block defines a ``@dataclass(frozen=True, kw_only=True)`` subclass of :class:`Params`.
Field metadata drives the CLI: ``help`` (one line) and ``valid`` (the valid range as text, the
same words the validation error uses).
"""

import dataclasses
import enum
import json

__all__ = ["Params", "check_choice", "check_int", "param"]


def param(default, *, help, valid):
    """Declare a parameter field with its CLI help and its valid range (as text)."""
    return dataclasses.field(default=default, metadata={"help": help, "valid": valid})


def check_int(name, value, lo, hi):
    """Return ``value`` if it is an int in ``lo..hi``; raise TypeError/ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, not {value!r}")
    return value


def check_choice(name, value, enum_type):
    """Return ``value`` as a member of ``enum_type`` (accepts the member or its value)."""
    if isinstance(value, enum_type):
        return value
    for member in enum_type:
        if value == member.value:
            return member
    choices = ", ".join(str(m.value) for m in enum_type)
    raise ValueError(f"{name} must be one of {choices}, not {value!r}")


class Params:
    """Mixin for block parameter dataclasses: JSON round trip and CLI metadata."""

    #: Short block name used by the CLI and in build folder names.
    block = None

    def _set(self, name, value):
        # Frozen dataclass: __post_init__ normalises values through object.__setattr__.
        object.__setattr__(self, name, value)

    def to_dict(self):
        """Plain-JSON dictionary of all fields (enums become their values)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.value if isinstance(value, enum.Enum) else value
        return out

    def to_json(self):
        """Return the parameters as a compact JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values):
        """Build (and validate) parameters from a dictionary; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown {cls.block} parameter(s): {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def from_json(cls, text):
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def cli_fields(cls):
        """Yield ``(name, default, help, valid)`` for every parameter."""
        for f in dataclasses.fields(cls):
            default = f.default.value if isinstance(f.default, enum.Enum) else f.default
            yield f.name, default, f.metadata["help"], f.metadata["valid"]
