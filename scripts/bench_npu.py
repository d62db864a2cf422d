#!/usr/bin/env python3
"""NPU benchmark: cycles and array utilisation per layer (npugen.sim.flow.perf_npu)."""

import sys

from npugen.sim.flow.perf_npu import main

if __name__ == "__main__":
    sys.exit(main())
