"""Host link: UART, the framed protocol, and any block behind it."""

from . import protocol
from .host_link import HostLink, stream_ports
from .uart import UartRx, UartTx

__all__ = ["HostLink", "UartRx", "UartTx", "protocol", "stream_ports"]
