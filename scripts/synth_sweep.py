#!/usr/bin/env python3
"""Synthesis sweep over block sizes and devices (see npugen.sim.flow.sweep)."""

import sys

from npugen.sim.flow.sweep import main

if __name__ == "__main__":
    sys.exit(main())
