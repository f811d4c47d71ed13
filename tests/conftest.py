"""Shared test helpers."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = ROOT / "problems"

POISSON1D = {
    "name": "p1",
    "pde": "poisson",
    "domain": {"box": [[0, 1]]},
    "exact": "sin(pi*x)",
    "boundary": [{"faces": "all", "type": "dirichlet", "value": "exact"}],
    "model": {"arch": "mlp", "width": 16, "depth": 2},
    "train": {
        "steps": 30,
        "lr": 1e-2,
        "points": {"interior": 64, "boundary": 2},
        "log_every": 10,
        "checkpoint_every": 10,
    },
    "diagnostics": {"every": 0},
}


@pytest.fixture(autouse=True)
def _isolated_reference_cache(tmp_path_factory, monkeypatch):
    """Reference solutions are cached under a per-session temporary folder, not ~/.cache."""
    monkeypatch.setenv("MSCALEPDE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def poisson1d() -> dict:
    return copy.deepcopy(POISSON1D)
