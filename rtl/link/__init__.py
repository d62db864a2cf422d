"""Host link: UART, the framed protocol, and any block behind it."""

from . import protocol
from .host_link import HostLink, stream_ports
from .uart import UartRx, UartTx

__all__ = ["HostLink", "LinkedBlock", "UartRx", "UartTx", "protocol", "stream_ports"]


class LinkedBlock(HostLink):
    """The board core: block ``params.block`` built from ``params`` behind a :class:`HostLink`.

    Board tops wrap exactly this (plus clock and pins); the Verilator end-to-end test builds it
    with a short ``divisor`` so a simulated UART byte costs few cycles.
    """

    def __init__(self, params, *, divisor=8, buffer_bytes=512, idle_cycles=None):
        from ..blocks import BLOCKS

        self.params = params
        block = BLOCKS[params.block].build(params)
        try:
            super().__init__(block, divisor=divisor, buffer_bytes=buffer_bytes,
                             idle_cycles=idle_cycles)
        except ValueError:
            block._MustUse__silence = True  # built for nothing: no "unused" warning
            raise

    def manifest_info(self):
        """Return timing, protocol notes and port roles for the JSON manifest."""
        ins = [name for name, _ in self.inputs]
        outs = [name for name, _ in self.outputs]
        return {
            "latency": {"uart_bit_cycles": self.divisor},
            "throughput": {"bytes_per_cycle": f"1/{10 * self.divisor}"},
            "protocol": [(f"framed UART protocol v1 (npugen.rtl.link.protocol); input ports "
                         f"{ins}, output ports {outs}; buffer {self.buffer_bytes} bytes")],
            "model": self.block.manifest_info()["model"],
            "roles": {"rx": "UART receive line (host to board)",
                      "tx": "UART transmit line (board to host)"},
        }
