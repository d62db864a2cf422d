#!/usr/bin/env python3
"""How often a TFLite MEAN compiles exactly (npugen.sim.flow.mean_scan)."""

import sys

from npugen.sim.flow.mean_scan import main

if __name__ == "__main__":
    sys.exit(main())
