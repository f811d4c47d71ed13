"""The problem language: a YAML file in, a validated :class:`~.model.Problem` out.

- :mod:`.loader` — the guarded YAML reader;
- :mod:`.overrides` — ``--set key.path=value`` and keyword overrides;
- :mod:`.validate` — every key checked, one line per defect (``load_problem``);
- :mod:`.model` — the :class:`~.model.Problem` object and its boundary conditions;
- :mod:`.datafile` — truth data read from a file (``truth: {file: ...}``).
- :mod:`.solvability` — pure Neumann / periodic problems: the compatibility check and the
  constant (gauge).

Torch-free: ``mscalepde check`` loads problems without importing torch.
"""
