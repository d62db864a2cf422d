"""Board top-levels: a block behind the UART host link, on open-toolchain FPGA boards."""

from .top import BOARDS, Board, BoardTop

__all__ = ["BOARDS", "Board", "BoardTop"]
