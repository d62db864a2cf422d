"""The ports every NPU execution unit shares with the core."""

from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from .decoder import unit_setup_layout
from .isa import insn_layout
from .post import post_in_layout

__all__ = ["unit_members"]


def unit_members(p, op, *, weights=False, post=False, write=False, setup=False):
    """Return the signature members of a unit that runs instructions of ``op``.

    Always: ``start`` (In, a pulse while ``busy`` is low), ``insn`` (In, ``op``'s fields,
    held until ``busy`` falls), ``busy`` (Out) and the activation read port ``act_addr``,
    ``act_en`` (Out) / ``act_data`` (In, ``8 * lanes`` bits, the cycle after ``act_en``).
    ``weights`` adds the weight read port ``wgt_addr``, ``wgt_en`` / ``wgt_data``; ``post``
    the stream of accumulator words to the :class:`~.post.PostUnit`; ``write`` the
    activation write port ``wr_addr``, ``wr_data``, ``wr_en``; ``setup`` the serial
    checker's set-up products (:func:`~.decoder.unit_setup_layout`).
    """
    members = {
        "start": In(1), "insn": In(insn_layout(op)), "busy": Out(1),
        "act_addr": Out(16), "act_en": Out(1), "act_data": In(8 * p.lanes),
    }
    if weights:
        members |= {"wgt_addr": Out(16), "wgt_en": Out(1), "wgt_data": In(8 * p.lanes)}
    if post:
        members["post"] = Out(stream.Signature(post_in_layout(p)))
    if write:
        members |= {"wr_addr": Out(16), "wr_data": Out(8 * p.lanes), "wr_en": Out(1)}
    if setup:
        members["setup"] = In(unit_setup_layout(p))
    return members
