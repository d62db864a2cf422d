#!/usr/bin/env python3
"""Winograd benchmark: cycles per layer and multipliers vs direct (see npugen.sim.perf_winograd)."""

import sys

from npugen.sim.perf_winograd import main

if __name__ == "__main__":
    sys.exit(main())
