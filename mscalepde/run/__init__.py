"""The pipeline from a problem to a run folder.

- :mod:`.pipeline` — :func:`~.pipeline.solve`: resolve ``auto``, build the network, train,
  diagnose, write;
- :mod:`.folder` — the run folder: its files, ``load_model``;
- :mod:`.result` — :class:`Run` (what ``solve`` returns) and ``load_run``;
- :mod:`.checkpoint` — ``checkpoint.pt`` and the rules of resuming;
- :mod:`.model` — building a problem's network (``make_model``; resolves ``auto``);
- :mod:`.diagnose` — ``mscalepde diagnose``: the diagnostics recomputed from a saved run;
- :mod:`.figures` — the run's solution, error and history figures.
"""
