"""The command line as a module: ``python -m mscalepde``."""

from __future__ import annotations

import pytest


def test_python_dash_m_runs_the_command_line():
    import runpy
    import sys

    argv = sys.argv
    sys.argv = ["mscalepde", "--version"]
    try:
        with pytest.raises(SystemExit) as exc:
            runpy.run_module("mscalepde", run_name="__main__")
    finally:
        sys.argv = argv
    assert exc.value.code == 0


@pytest.mark.parametrize("rank, lines", [("0", 1), ("1", 0)])
def test_a_stop_is_reported_once_by_rank_zero(monkeypatch, capsys, rank, lines):
    """Every rank of a launched run stops at the same step; rank 0 alone says so."""
    from mscalepde.cli import _guarded
    from mscalepde.errors import Stopped
    from mscalepde.training.signals import EXIT_CODES

    def stopped() -> int:
        raise Stopped("SIGTERM", 920)

    monkeypatch.setenv("RANK", rank)
    assert _guarded(stopped) == EXIT_CODES["SIGTERM"]
    err = capsys.readouterr().err
    assert err.count("stopped by SIGTERM at step 920") == lines and err.count("\n") == lines
