"""Shared pytest options: --seed (reproduce a random run), --waves (FST dumps), --slow."""

import os
import random

import pytest


def pytest_addoption(parser):
    parser.addoption("--seed", type=int, default=None,
                     help="seed for every random test (default: random, printed in the header)")
    parser.addoption("--waves", action="store_true",
                     help="dump an FST waveform from every cocotb run (same as NPUGEN_WAVES=fst)")
    parser.addoption("--slow", action="store_true", help="also run tests marked slow")


def pytest_configure(config):
    seed = config.getoption("--seed")
    if hasattr(config, "workerinput"):
        # pytest-xdist worker: use the controller's seed, so the header's seed reproduces.
        seed = config.workerinput["npugen_seed"]
    elif seed is None:
        seed = int(os.environ.get("NPUGEN_SEED", random.randrange(1 << 31)))
    config.npugen_seed = seed
    if config.getoption("--waves"):
        os.environ["NPUGEN_WAVES"] = "fst"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """Hand the controller's seed to each pytest-xdist worker."""
    node.workerinput["npugen_seed"] = node.config.npugen_seed


def pytest_report_header(config):
    return f"npugen seed: {config.npugen_seed} (rerun with --seed {config.npugen_seed})"


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def seed(request):
    """Return the session seed; it is printed on failure so the run can be reproduced."""
    value = request.config.npugen_seed
    print(f"seed = {value}")
    return value
