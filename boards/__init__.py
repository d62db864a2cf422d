"""Board top-levels: a block behind the UART host link, on open-toolchain FPGA boards."""

from .top import BOARDS, BoardTop, build_bitstream

__all__ = ["BOARDS", "BoardTop", "build_bitstream"]
