"""Fixtures shared by every test (the constants and helpers are in tests/helpers.py)."""

from __future__ import annotations

import copy
import os

import pytest

from tests.helpers import POISSON1D


@pytest.fixture(autouse=True)
def _isolated_reference_cache(tmp_path_factory, monkeypatch):
    """Reference solutions are cached under a per-session temporary folder, not ~/.cache."""
    monkeypatch.setenv("MSCALEPDE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(autouse=True)
def _explicit_threads(monkeypatch):
    """The suite chooses its threads (the machine's default), so that the CLI's
    busy-machine warning, meant for a user who did not choose, stays out of its output."""
    from mscalepde.training.threads import available_cpus

    monkeypatch.setenv("MSCALEPDE_THREADS", os.environ.get("MSCALEPDE_THREADS")
                       or str(min(available_cpus(), os.cpu_count() or 1)))


@pytest.fixture
def poisson1d() -> dict:
    return copy.deepcopy(POISSON1D)


@pytest.fixture(autouse=True)
def _no_figure_left_open():
    """Every figure the package draws is closed by it (``save_figure``); one left open is a
    leak (a long sweep in one process would hold them all)."""
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    yield
    left = set(plt.get_fignums()) - before
    plt.close("all")
    assert not left, f"{len(left)} matplotlib figure(s) left open"
