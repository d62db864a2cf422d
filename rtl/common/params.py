"""Declarative parameter objects shared by the gateware, the models, the benches and the CLI.

A block's parameters are a frozen, keyword-only dataclass deriving from :class:`Params`. Each
field is declared once, with its default, its meaning and its valid values::

    @dataclass(frozen=True, kw_only=True)
    class DotParams(Params, block="dot"):
        lanes: int = param(4, "multipliers", lo=1, hi=64)
        acc_width: int = param(32, "accumulator bits", lo="2 * in_width", hi=ACC_WIDTH_MAX)
        mode: Mode = param(Mode.WRAP, "overflow rule")        # an enum: its values
        relu: bool = flag(False, "clamp at zero")
        inner: InnerParams | None = nested(InnerParams, "the inner block", optional=True)

Everything else derives from these declarations: validation in ``__post_init__`` (a
``TypeError`` or ``ValueError`` that names the parameter, the valid values and the value
given), the CLI flags and their help (:meth:`Params.specs`), the manifest's parameter table
and the JSON round trip (:meth:`Params.to_dict` carries the block name; nested parameter
objects nest). Rules that tie fields together go in :meth:`Params.check`.
"""

import dataclasses
import enum
import json

__all__ = ["ACC_WIDTH_MAX", "Params", "Spec", "Validated", "check_int", "flag", "leaf_values",
           "nested", "param"]

#: Widest accumulator of any block: the golden models compute in int64 and keep 15 bits of
#: headroom for sums of products.
ACC_WIDTH_MAX = 48

_FLAG_WORDS = {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}


@dataclasses.dataclass(frozen=True)
class Spec:
    """What one field accepts: the single declaration behind checks, CLI and manifest.

    ``kind`` is ``"int"`` (``lo..hi``, each an int or an expression over earlier fields),
    ``"choice"`` (one of ``choices``), ``"enum"`` (a member or value of ``choices``),
    ``"flag"`` (a boolean) or ``"params"`` (a nested :class:`Params` object of class
    ``nested``, or None when ``optional``).
    """

    kind: str
    help: str
    lo: object = None
    hi: object = None
    choices: object = None
    nested: type = None
    optional: bool = False

    def valid(self):
        """Return the valid values as text, in the words the error messages use."""
        if self.kind == "int":
            return f"{_bound_text(self.lo)}..{_bound_text(self.hi)}"
        if self.kind == "choice":
            return ", ".join(str(c) for c in self.choices)
        if self.kind == "enum":
            return ", ".join(str(m.value) for m in self.choices)
        if self.kind == "flag":
            return "true, false"
        return f"{self.nested.block} parameters" + (" or none" if self.optional else "")

    def check(self, name, value, obj):
        """Return ``value`` normalised (enum member, bool, params object); raise if invalid."""
        if self.kind == "int":
            lo, hi = _bound(self.lo, obj), _bound(self.hi, obj)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")
            if not lo <= value <= hi:
                raise ValueError(f"{name} must be in {lo}..{hi}, not {value!r}")
            return value
        if self.kind == "choice":
            if isinstance(value, bool) or value not in self.choices:
                raise ValueError(f"{name} must be one of {self.valid()}, not {value!r}")
            return value
        if self.kind == "enum":
            if isinstance(value, self.choices):
                return value
            for member in self.choices:
                if value == member.value and not isinstance(value, bool):
                    return member
            raise ValueError(f"{name} must be one of {self.valid()}, not {value!r}")
        if self.kind == "flag":
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.lower() in _FLAG_WORDS:
                return _FLAG_WORDS[value.lower()]
            raise ValueError(f"{name} must be one of true, false (or 1, 0), not {value!r}")
        if value is None and self.optional:
            return None
        if isinstance(value, dict):
            return self.nested.from_dict(value)
        if not isinstance(value, self.nested):
            raise TypeError(f"{name} must be {self.nested.__name__}"
                            + (" or None" if self.optional else "") + f", not {value!r}")
        return value


def _bound(bound, obj):
    if isinstance(bound, str):
        values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return eval(bound, {"__builtins__": {}}, values)  # an expression the class declared
    return bound


def _bound_text(bound):
    return bound.replace(" ", "") if isinstance(bound, str) else str(bound)


def check_int(name, value, lo, hi):
    """Return ``value`` if it is an int in ``lo..hi``; raise TypeError/ValueError naming it."""
    return Spec("int", "", lo=lo, hi=hi).check(name, value, None)


class Validated:
    """Mixin for components that check their constructor arguments before they exist.

    A component whose ``__init__`` raises has been created all the same, and Amaranth then
    warns that it was never elaborated. A subclass puts its argument checks in the
    classmethod ``validate``, which takes the constructor's arguments and runs in
    ``__new__``, so a bad argument raises before there is any object to warn about.
    """

    def __new__(cls, *args, **kwargs):  # noqa: D102 (runs validate, then creates the object)
        cls.validate(*args, **kwargs)
        return super().__new__(cls, *args, **kwargs)

    @classmethod
    def validate(cls, *args, **kwargs):
        """Raise TypeError/ValueError for bad constructor arguments (override)."""


def param(default, help, *, lo=None, hi=None, choices=None):
    """Declare an integer range (``lo``/``hi``), a choice among ``choices``, or an enum field.

    An enum default makes the field an enum field whose valid values are the enum's values.
    """
    if isinstance(default, enum.Enum):
        spec = Spec("enum", help, choices=type(default))
    elif choices is not None:
        spec = Spec("choice", help, choices=tuple(choices))
    else:
        spec = Spec("int", help, lo=lo, hi=hi)
    return dataclasses.field(default=default, metadata={"spec": spec})


def flag(default, help):
    """Declare a boolean field (accepts bools, 0/1 and true/false/on/off/yes/no)."""
    return dataclasses.field(default=default, metadata={"spec": Spec("flag", help)})


def nested(cls, help, *, default=None, optional=False):
    """Declare a field holding another block's :class:`Params` (``cls``), or None if optional.

    The default is ``cls()`` unless given (None is the default of an optional field given
    no default).
    """
    if default is None and not optional:
        default = cls()
    return dataclasses.field(default=default,
                             metadata={"spec": Spec("params", help, nested=cls,
                                                    optional=optional)})


class Params:
    """Base of every block's parameters: checks, JSON, CLI and manifest from the declarations.

    Subclasses name their block: ``class SystolicParams(Params, block="systolic")``. Every
    subclass is registered under that name, so :meth:`Params.from_dict` on this base class
    builds whichever block a dictionary names.
    """

    #: Block name, used by the CLI, in JSON and in build folder names.
    block = None
    _classes = {}

    def __init_subclass__(cls, *, block=None, **kwargs):
        super().__init_subclass__(**kwargs)
        if block is not None:
            if block in Params._classes and Params._classes[block].__qualname__ != cls.__qualname__:
                raise ValueError(f"block name {block!r} is taken by "
                                 f"{Params._classes[block].__name__}")
            cls.block = block
            Params._classes[block] = cls

    def __post_init__(self):
        for f in dataclasses.fields(self):
            spec = f.metadata["spec"]
            # Frozen dataclass: normalised values go in through object.__setattr__.
            object.__setattr__(self, f.name, spec.check(f.name, getattr(self, f.name), self))
        self.check()

    def check(self):
        """Check the rules that tie fields together (override; raise ValueError)."""

    def device_problem(self, family):
        """Return why these parameters cannot be built for FPGA ``family``, or None.

        ``family`` is ``"ice40"`` or ``"ecp5"``; the reason names the parameter (override).
        """
        return None

    @classmethod
    def specs(cls):
        """Yield ``(name, spec, default)`` for every field, in declaration order."""
        for f in dataclasses.fields(cls):
            yield f.name, f.metadata["spec"], f.default

    @classmethod
    def switched_on(cls, name):
        """Return the parameters of optional nested field ``name`` when switched on.

        For a field off by default, switched on with none of its own fields given: the nested
        class's defaults (override to give others).
        """
        return {n: s for n, s, _ in cls.specs()}[name].nested()

    @classmethod
    def leaf_specs(cls, prefix=""):
        """Yield ``(dotted name, spec, default)`` for every non-nested field, depth first.

        A nested field contributes its own fields under ``<field>.``; an optional nested
        field also contributes itself (kind ``"params"``, default True when on by default,
        else None), to switch it on or off.
        """
        for name, spec, default in cls.specs():
            path = prefix + name
            if spec.kind == "params":
                if spec.optional:
                    yield path, spec, (True if default is not None else None)
                sub_default = default if default is not None else cls.switched_on(name)
                for sub, sub_spec, sub_value in spec.nested.leaf_specs(path + "."):
                    key = sub[len(path) + 1:]
                    yield sub, sub_spec, _get_path(sub_default, key, sub_value)
            else:
                yield path, spec, _plain(default)

    @classmethod
    def from_leaves(cls, values):
        """Build parameters from ``{dotted name: value}`` as :meth:`leaf_specs` names them.

        Missing names keep their defaults. An optional nested field is switched on by its own
        name (a flag value) or by giving any of its fields; switched off, its fields must be
        absent.
        """
        known = {name for name, _, _ in cls.leaf_specs()}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {cls.block} parameter(s): {', '.join(unknown)}")
        return cls._build(dict(values), "")

    @staticmethod
    def _switched(values, path, default):
        """Return whether optional nested field ``path`` is on.

        Its switch if given, else on by ``default`` or by any of its fields given.
        """
        switch = values.get(path)
        if switch is None:
            return default is not None or any(k.startswith(path + ".") for k in values)
        return Spec("flag", "").check(path, switch, None)

    @classmethod
    def _build(cls, values, prefix):
        kwargs = {}
        for name, spec, default in cls.specs():
            path = prefix + name
            if spec.kind != "params":
                if path in values:
                    kwargs[name] = values[path]
                continue
            inner = {k: v for k, v in values.items() if k.startswith(path + ".")}
            if spec.optional:
                if not cls._switched(values, path, default):
                    if inner:
                        raise ValueError(f"{path} is switched off; drop "
                                         + ", ".join(sorted(inner)))
                    kwargs[name] = None
                    continue
            base = default if default is not None else cls.switched_on(name)
            merged = {f"{path}.{k}": v for k, v in _leaf_values(base).items()}
            merged.update(inner)
            kwargs[name] = spec.nested._build(merged, path + ".")
        return cls(**kwargs)

    def to_dict(self):
        """Plain-JSON dictionary: ``block``, then every field (enums as their values)."""
        out = {"block": self.block}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, Params) else _plain(value)
        return out

    def to_json(self):
        """Return the parameters as a compact JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values):
        """Build (and validate) parameters from a dictionary; unknown keys are an error.

        On :class:`Params` itself, the dictionary's ``block`` picks the class; on a block's
        class, ``block`` may be absent, and must match when present.
        """
        values = dict(values)
        block = values.pop("block", None)
        if cls is Params:
            if block not in Params._classes:
                raise ValueError(f"block must be one of {', '.join(sorted(Params._classes))}, "
                                 f"not {block!r}")
            return Params._classes[block].from_dict(values)
        if block is not None and block != cls.block:
            raise ValueError(f"these are {block} parameters, not {cls.block} parameters")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown {cls.block} parameter(s): {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def from_json(cls, text):
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def describe(self):
        """Rows ``{name, value, default, valid, meaning}`` for every leaf field (manifest)."""
        rows = []
        for name, spec, default in type(self).leaf_specs():
            rows.append({"name": name, "value": _get_path(self, name, None),
                         "default": default, "valid": spec.valid(), "meaning": spec.help})
        return rows


def _plain(value):
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Params):
        return value.to_dict()
    return value


_MISSING = object()


def _get_path(obj, path, missing=_MISSING):
    """Return the plain value at ``path``; True/None for a nested field set/unset."""
    for part in path.split("."):
        if obj is None:
            return missing
        obj = getattr(obj, part)
    if isinstance(obj, Params):
        return True
    return _plain(obj)


def leaf_values(obj):
    """Return ``obj``'s leaves as :meth:`Params.from_leaves` takes them.

    ``{dotted name: plain value}``; switches of optional nested fields are True or False.
    """
    return _leaf_values(obj)


def _leaf_values(obj):
    """``{dotted name: plain value}`` of ``obj``'s leaves; switches are True or False."""
    out = {}
    for name, spec, _ in type(obj).leaf_specs():
        value = _get_path(obj, name)
        if value is _MISSING:
            continue
        out[name] = (value is True) if spec.kind == "params" else value
    return out
