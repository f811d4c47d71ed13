"""Expressions in problem files: parsed against a whitelist, never ``eval``-ed.

- :mod:`.grammar` — what an expression may contain, and the checker;
- :mod:`.compile` — a checked tree compiled for torch or numpy;
- :mod:`.expression` — :class:`~.expression.Expression`, :func:`~.expression.parse_expression`
  and the problem's ``params``.
"""
