#!/usr/bin/env python3
"""Winograd benchmark: cycles per layer, multipliers vs direct (npugen.sim.flow.perf_winograd)."""

import sys

from npugen.sim.flow.perf_winograd import main

if __name__ == "__main__":
    sys.exit(main())
