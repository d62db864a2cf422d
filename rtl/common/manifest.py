"""JSON manifest of a generated core: parameters, ports, timing, protocol, golden model."""

from amaranth.hdl import Shape, Value
from amaranth.lib import data, stream, wiring

__all__ = ["MANIFEST_VERSION", "build_manifest"]

MANIFEST_VERSION = 2


def _layout_fields(layout, offset=0, prefix=""):
    """Flatten a data layout into ``{name, offset, width, signed}`` rows."""
    layout = data.Layout.cast(layout)
    rows = []
    for key, field in layout:
        name = f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}.{key}".lstrip(".")
        shape = field.shape
        if isinstance(shape, data.Layout):
            rows += _layout_fields(shape, offset + field.offset, name)
        else:
            cast = Shape.cast(shape)
            rows.append({"name": name, "offset": offset + field.offset, "width": cast.width,
                         "signed": cast.signed})
    return rows


def _ports(component, roles):
    ports = [
        {"name": "clk", "direction": "in", "width": 1, "signed": False,
         "role": "clock; every register samples on its rising edge"},
        {"name": "rst", "direction": "in", "width": 1, "signed": False,
         "role": "synchronous reset, active high: back to idle, nothing in flight"},
    ]
    for name, member in component.signature.members.items():
        flow = member.flow
        if member.is_signature and isinstance(member.signature, stream.Signature):
            sig = member.signature
            into = flow == wiring.In
            payload_shape = sig.members["payload"].shape
            layout = payload_shape if isinstance(payload_shape, data.Layout) else None
            width = Shape.cast(payload_shape).width
            entry = {
                "name": f"{name}__payload", "direction": "in" if into else "out",
                "width": width, "signed": (layout is None and Shape.cast(payload_shape).signed),
                "role": f"{name} stream payload: {roles.get(name, '')}".rstrip(": "),
            }
            if layout is not None:
                entry["fields"] = _layout_fields(layout)
            ports += [
                {"name": f"{name}__valid", "direction": "in" if into else "out", "width": 1,
                 "signed": False, "role": f"{name} stream valid"},
                {"name": f"{name}__ready", "direction": "out" if into else "in", "width": 1,
                 "signed": False, "role": f"{name} stream ready"},
                entry,
            ]
        else:
            value = Value.cast(getattr(component, name))
            ports.append({"name": name, "direction": "in" if flow == wiring.In else "out",
                          "width": len(value), "signed": value.shape().signed,
                          "role": roles.get(name, "")})
    return ports


def build_manifest(component, params, *, name, info, model):
    """Return the manifest dictionary for ``component`` emitted as Verilog module ``name``.

    Parameters
    ----------
    info : dict
        The component's ``manifest_info()``: ``latency`` (named latencies in cycles),
        ``throughput`` (named figures), ``protocol`` (notes a user needs to drive the ports
        correctly), ``roles`` (port name -> what it carries).
    model : str
        ``module:function`` of the golden model that defines the outputs.
    """
    return {
        "manifest_version": MANIFEST_VERSION,
        "block": params.block,
        "module": name,
        "params": params.to_dict(),
        "parameters": params.describe(),
        "ports": _ports(component, info["roles"]),
        "latency_cycles": info["latency"],
        "throughput": info["throughput"],
        "protocol": [
            ("Streams are ready/valid (Amaranth lib.stream): a beat moves on a rising clk edge "
             "when valid and ready are both high; payload is stable while valid & ~ready."),
            ("Array lane i of a payload sits at bits [i*w +: w]; struct fields at the offsets "
             "listed under each port's 'fields'."),
            ("rst is synchronous and active high: it returns the block to idle with nothing in "
             "flight. In a cycle with rst high the ports still show the state before the reset; "
             "handshakes in such cycles do not count. latency_cycles.reset_to_ready counts the "
             "cycles from the fall of rst to the first input ready."),
            ("Latencies count from the cycle of the input handshake to the cycle in which the "
             "result's o.valid rises."),
            *info["protocol"],
        ],
        "golden_model": model,
        "verilator": (f"builds with a plain 'verilator --cc {name}.v': the file carries its "
                      "lint waivers (properties of Amaranth's Verilog backend), each explained "
                      "in its header"),
    }
