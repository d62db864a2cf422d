#!/usr/bin/env python3
"""Digits benchmark: accuracy, bit-exactness, cycles per image (npugen.sim.flow.perf_digits)."""

import sys

from npugen.sim.flow.perf_digits import main

if __name__ == "__main__":
    sys.exit(main())
