"""Fixtures shared by every test (the constants and helpers are in tests/helpers.py)."""

from __future__ import annotations

import copy

import pytest

from tests.helpers import POISSON1D


@pytest.fixture(autouse=True)
def _isolated_reference_cache(tmp_path_factory, monkeypatch):
    """Reference solutions are cached under a per-session temporary folder, not ~/.cache."""
    monkeypatch.setenv("MSCALEPDE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def poisson1d() -> dict:
    return copy.deepcopy(POISSON1D)
