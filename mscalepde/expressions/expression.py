"""A small, safe expression language for sources, boundary data and exact solutions.

Problem files describe functions as Python-like strings, for example
``"sin(2*pi*k*x) * exp(-t)"``.  They are parsed with :func:`ast.parse` and checked node by
node against a whitelist; nothing is ever passed to ``eval``.  A checked expression is
compiled into a tree of closures for two backends: PyTorch (differentiable, so sources can
be derived from an exact solution by autograd) and NumPy.

Grammar
-------
::

    expression := number | name | "(" expression ")"
                | expression ("+" | "-" | "*" | "/" | "**") expression
                | ("-" | "+") expression
                | function "(" expression ("," expression)* ")"
                | "where" "(" condition "," expression "," expression ")"
    condition  := expression (("<" | "<=" | ">" | ">=" | "==" | "!=") expression)+
    name       := a variable of the problem (a subset of x, y, z, t)
                | "pi" | "e"
                | a parameter of the problem file (see parse_params)
    function   := sin cos tan exp log sqrt abs tanh sinh cosh arcsin arccos arctan  (1 argument)
                | atan2 minimum maximum                                          (2 arguments)

Operator precedence and associativity are Python's (``-x**2`` is ``-(x**2)``,
``2**3**2`` is ``2**(3**2)``).  A chained condition ``0 < x < 1`` means
``0 < x and x < 1``.  ``where(c, a, b)`` is ``a`` where ``c`` holds and ``b`` elsewhere;
comparisons are allowed nowhere else.  Numbers are integer or floating-point literals;
all arithmetic is done in floating point.

Everything else is rejected with an :class:`~mscalepde.errors.ExpressionError` that names
what was found and the 1-based column of the offending token: attribute access,
subscripts, calls of other names, keyword or starred arguments, lambdas, strings, bytes,
f-strings, comprehensions, containers, conditional expressions, ``:=``, ``True``,
``False``, ``None``, ``...``, complex literals, ``and``/``or``/``not``, the operators
``// % @ << >> & | ^ ~``, and names that are not in the allowed set.

Resource bounds: an expression has at most 4000 characters, a nesting depth of at most 60
and at most 2000 syntax-tree nodes.  Sub-expressions without variables are folded into a
single number when the expression is parsed (with Python floats, so ``9**9**9**9`` is
refused in microseconds); a folded value that overflows or is not a finite real number
(``10.0**400``, ``1/0``, ``log(0)``, ``sqrt(-1)``) is refused.
"""

from __future__ import annotations

import ast
import keyword
import math
import numbers
import warnings
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mscalepde.errors import ExpressionError
from mscalepde.expressions.compile import (
    _compile,
    _Evaluator,
    _float_dtype_torch,
    _numpy_functions,
    _torch_functions,
)
from mscalepde.expressions.grammar import (
    _CONTROL_CHARS,
    ALLOWED_FUNCTIONS,
    CONSTANTS,
    MAX_DEPTH,
    MAX_LENGTH,
    STANDARD_VARIABLES,
    _check_shape,
    _Checker,
    _collect_variables,
    _Const,
    _describe_type,
    _FoldError,
    _Node,
    _shorten,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch


"""Longest accepted expression text, in characters."""


"""Deepest accepted nesting of the syntax tree (parentheses and operators)."""


"""Largest accepted number of syntax-tree nodes."""


"""The names a problem may use as variables; parameters may not reuse them."""


"""A compiled node: ``f(env, reference)`` returns a float or an array/tensor."""


class Expression:
    """A checked, compiled expression; evaluate it with :meth:`torch` or :meth:`numpy`.

    Create instances with :func:`parse_expression`.
    """

    text: str
    variables: frozenset[str]

    def __init__(
        self,
        text: str,
        node: _Node,
        allowed_variables: tuple[str, ...],
        params: Mapping[str, float],
    ) -> None:
        self.text = text
        self._node = node
        self._allowed_variables = allowed_variables
        self._params = dict(params)
        used: set[str] = set()
        _collect_variables(node, used)
        self.variables = frozenset(used)
        self._torch_fn: _Evaluator | None = None
        self._numpy_fn: _Evaluator | None = None

    @property
    def is_constant(self) -> bool:
        """True when the expression folded to a single number (no variables)."""
        return isinstance(self._node, _Const)

    @property
    def constant_value(self) -> float | None:
        """The number a constant expression folded to, else ``None``."""
        return self._node.value if isinstance(self._node, _Const) else None

    def _check_env(self, env: Mapping[str, Any]) -> None:
        missing = sorted(self.variables - set(env))
        if missing:
            given = ", ".join(env) or "none"
            raise ExpressionError(
                f"{_shorten(self.text)}: variable(s) {', '.join(missing)} missing from the "
                f"evaluation points (given: {given})"
            )
        if not env:
            raise ExpressionError(
                f"{_shorten(self.text)}: at least one variable is needed to shape the result"
            )

    def torch(self, env: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Evaluate with PyTorch (differentiable); shaped, typed and placed like ``env``.

        The first value of ``env`` gives the dtype and device; the result has the
        broadcast shape of all values of ``env`` even when the expression uses fewer
        variables (or none).
        """
        import torch

        self._check_env(env)
        values = {
            k: v if isinstance(v, torch.Tensor) else torch.as_tensor(v) for k, v in env.items()
        }
        ref = next(iter(values.values()))
        try:
            shape = torch.broadcast_shapes(*(v.shape for v in values.values()))
        except RuntimeError as exc:
            raise ExpressionError(
                f"{_shorten(self.text)}: variables have incompatible shapes ({exc})"
            ) from None
        if self._torch_fn is None:
            self._torch_fn = _compile(self._node, _torch_functions())
        result = self._torch_fn(values, ref)
        dtype = _float_dtype_torch(ref)
        if not isinstance(result, torch.Tensor):
            return torch.full(shape, float(result), dtype=dtype, device=ref.device)
        if result.dtype != dtype and (ref.is_floating_point() or not result.is_floating_point()):
            result = result.to(dtype)
        if result.shape != shape:
            result = torch.broadcast_to(result, shape).contiguous()
        return result

    def numpy(self, env: Mapping[str, np.ndarray]) -> np.ndarray:
        """Evaluate with NumPy; the result is a new array shaped and typed like ``env``."""
        self._check_env(env)
        values = {k: np.asarray(v) for k, v in env.items()}
        ref = next(iter(values.values()))
        try:
            shape = np.broadcast_shapes(*(v.shape for v in values.values()))
        except ValueError as exc:
            raise ExpressionError(
                f"{_shorten(self.text)}: variables have incompatible shapes ({exc})"
            ) from None
        dtype = ref.dtype if np.issubdtype(ref.dtype, np.floating) else np.dtype(np.float64)
        if self._numpy_fn is None:
            self._numpy_fn = _compile(self._node, _numpy_functions())
        result = self._numpy_fn(values, ref)
        return np.array(np.broadcast_to(result, shape), dtype=dtype)

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # The compiled closures cannot be pickled; re-parse from the text instead.
        return (_rebuild, (self.text, self._allowed_variables, self._params))


def _rebuild(text: str, variables: tuple[str, ...], params: dict[str, float]) -> Expression:
    return parse_expression(text, variables=variables, params=params)


def _check_names(variables: Sequence[str], params: Mapping[str, float]) -> None:
    """Programming errors in the arguments of :func:`parse_expression` (not user input)."""
    if isinstance(variables, str):
        raise TypeError("variables must be a sequence of names, not a string")
    for name in variables:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"invalid variable name {name!r}")
        if name in CONSTANTS or name in ALLOWED_FUNCTIONS:
            raise ValueError(f"variable name {name!r} clashes with a constant or function")
    for name, value in params.items():
        if name in variables or name in CONSTANTS or name in ALLOWED_FUNCTIONS:
            raise ValueError(
                f"parameter name {name!r} clashes with a variable, constant or function"
            )
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"parameter {name!r} must be a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ValueError(f"parameter {name!r} must be finite, got {value!r}")


def parse_expression(
    value: str | int | float,
    *,
    variables: Sequence[str],
    params: Mapping[str, float] | None = None,
) -> Expression:
    """Check and compile an expression (see the module docstring for the grammar).

    ``value`` is an expression string or a plain number; ``variables`` are the names the
    expression may use as variables (e.g. ``("x", "t")``); ``params`` are named numbers
    usable like ``pi`` (already validated, e.g. by :func:`parse_params`).

    Raises :class:`~mscalepde.errors.ExpressionError` (one-line message and the 1-based
    column of the offending token) when the expression is malformed, too large, or uses
    anything outside the grammar.
    """
    params = dict(params or {})
    variables = tuple(variables)
    _check_names(variables, params)

    if isinstance(value, bool):
        raise ExpressionError(f"expected an expression or a number, found {str(value).lower()}")
    if isinstance(value, numbers.Real) and not isinstance(value, str):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ExpressionError(f"number {_shorten(str(value), 40)} is not finite")
        text = str(value)
        return Expression(text, _Const(number), variables, params)
    if not isinstance(value, str):
        raise ExpressionError(
            f"expected an expression or a number, found a value of type {_describe_type(value)}"
        )

    if len(value) > MAX_LENGTH:
        raise ExpressionError(
            f"expression is too long ({len(value)} characters, at most {MAX_LENGTH})"
        )
    bad = _CONTROL_CHARS.search(value)
    if bad is not None:
        raise ExpressionError(
            f"control character U+{ord(bad.group()):04X} is not allowed", bad.start() + 1
        )
    source = value.strip()
    lead = len(value) - len(value.lstrip())
    if not source:
        raise ExpressionError("empty expression")
    # Bracket nesting is checked on the raw text before the parser sees it.
    depth = 0
    for index, char in enumerate(source):
        if char in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ExpressionError(
                    f"expression is nested too deeply (more than {MAX_DEPTH} levels)",
                    lead + index + 1,
                )
        elif char in ")]}":
            depth -= 1

    checker = _Checker(source, lead, variables, params)
    try:
        with warnings.catch_warnings():  # "1if x": Python warns on stderr, we refuse in one line
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        if "too many nested" in exc.msg or "too complex" in exc.msg:
            raise ExpressionError(
                f"expression is nested too deeply (more than {MAX_DEPTH} levels)"
            ) from None
        raise ExpressionError(f"syntax error: {exc.msg}", _syntax_column(checker, exc)) from None
    except (RecursionError, MemoryError):
        raise ExpressionError(
            f"expression is nested too deeply (more than {MAX_DEPTH} levels)"
        ) from None
    except ValueError as exc:  # e.g. null bytes on some Python versions
        raise ExpressionError(f"invalid expression: {_shorten(str(exc))}") from None

    _check_shape(tree, checker)
    assert isinstance(tree, ast.Expression)
    try:
        node = checker.check(tree.body)
    except _FoldError as error:
        raise checker.fold_error(error) from None
    return Expression(source, node, variables, params)


def _syntax_column(checker: _Checker, exc: SyntaxError) -> int | None:
    """1-based column of a syntax error in the original text (offsets are in characters)."""
    lineno = exc.lineno or 1
    if not 1 <= lineno <= len(checker.lines):
        return checker.lead + len(checker.source) + 1
    line_len = len(checker.lines[lineno - 1])
    offset = exc.offset
    if offset is None or offset < 1 or offset > line_len + 1:
        offset = line_len + 1
    return checker.lead + checker.line_starts[lineno - 1] + offset


def parse_params(raw: Mapping[str, object], *, reserved: Collection[str] = ()) -> dict[str, float]:
    """Validate the named parameters of a problem file and return their values.

    Each key must be an ASCII identifier that is not a Python keyword and does not clash
    with the variables ``x, y, z, t``, the constants ``pi, e``, a function name or a name
    in ``reserved``.  Each value is a number (not a boolean) or a string holding a
    constant expression over ``pi``, ``e`` and the parameters defined before it (in
    mapping order), e.g. ``{"k": 50, "w": "2*pi*k"}``.

    Raises :class:`~mscalepde.errors.ExpressionError` with the message
    ``"<name>: <reason>"`` (and the column inside the value when known).
    """
    if not isinstance(raw, Mapping):
        raise ExpressionError(
            f"params: expected a mapping of names to numbers, found {_describe_type(raw)}"
        )
    reserved_set = set(reserved)
    result: dict[str, float] = {}
    for key, value in raw.items():
        label = _shorten(key if isinstance(key, str) else repr(key), 40)
        if not isinstance(key, str):
            raise ExpressionError(f"{label}: parameter names must be strings")
        if not (key.isascii() and key.isidentifier()) or keyword.iskeyword(key):
            raise ExpressionError(f"{label}: not a valid parameter name (use letters, digits, _)")
        if key in STANDARD_VARIABLES:
            raise ExpressionError(f"{label}: clashes with the variable '{key}'")
        if key in CONSTANTS:
            raise ExpressionError(f"{label}: clashes with the constant '{key}'")
        if key in ALLOWED_FUNCTIONS:
            raise ExpressionError(f"{label}: clashes with the function '{key}'")
        if key in reserved_set:
            raise ExpressionError(f"{label}: '{key}' is a reserved name")
        if isinstance(value, bool):
            raise ExpressionError(
                f"{label}: expected a number or a constant expression, found a boolean"
            )
        if isinstance(value, numbers.Real):
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                raise ExpressionError(f"{label}: value {_shorten(str(value), 40)} is not finite")
            result[key] = number
            continue
        if not isinstance(value, str):
            raise ExpressionError(
                f"{label}: expected a number or a constant expression, "
                f"found a value of type {_describe_type(value)}"
            )
        try:
            expression = parse_expression(value, variables=(), params=result)
        except ExpressionError as exc:
            raise ExpressionError(f"{label}: {exc.reason}", exc.column) from None
        constant = expression.constant_value
        assert constant is not None  # no variables allowed, so it always folds
        result[key] = constant
    return result
