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
