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
import operator
import re
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mscalepde.errors import ExpressionError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "ALLOWED_FUNCTIONS",
    "CONSTANTS",
    "Expression",
    "parse_expression",
    "parse_params",
]

MAX_LENGTH = 4000
"""Longest accepted expression text, in characters."""
MAX_DEPTH = 60
"""Deepest accepted nesting of the syntax tree (parentheses and operators)."""
MAX_NODES = 2000
"""Largest accepted number of syntax-tree nodes."""

STANDARD_VARIABLES: tuple[str, ...] = ("x", "y", "z", "t")
"""The names a problem may use as variables; parameters may not reuse them."""

#: Function name -> number of arguments, in the order used by error messages.
_ARITY: dict[str, int] = {
    "sin": 1,
    "cos": 1,
    "tan": 1,
    "exp": 1,
    "log": 1,
    "sqrt": 1,
    "abs": 1,
    "tanh": 1,
    "sinh": 1,
    "cosh": 1,
    "arcsin": 1,
    "arccos": 1,
    "arctan": 1,
    "atan2": 2,
    "minimum": 2,
    "maximum": 2,
    "where": 3,
}

ALLOWED_FUNCTIONS: frozenset[str] = frozenset(_ARITY)
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}

_FUNCTION_LIST = ", ".join(_ARITY)

_BIN_OPS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Pow: "**",
}
_OTHER_BIN_OPS: dict[type[ast.operator], str] = {
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
}
_CMP_OPS: dict[type[ast.cmpop], str] = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
}
_OTHER_CMP_OPS: dict[type[ast.cmpop], str] = {
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}

_BIN_IMPL: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "**": operator.pow,
}
_CMP_IMPL: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

# Scalar versions used for constant folding; they raise on domain or range errors.
_FOLD_FUNCS: dict[str, Callable[..., float]] = {
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "exp": math.exp,
    "log": math.log,
    "sqrt": math.sqrt,
    "abs": abs,
    "tanh": math.tanh,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "arcsin": math.asin,
    "arccos": math.acos,
    "arctan": math.atan,
    "atan2": math.atan2,
    "minimum": min,
    "maximum": max,
}

_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f]")
_NEWLINE = re.compile(r"\r\n|\r|\n")


# --------------------------------------------------------------------------------------
# Intermediate representation (after checking and constant folding)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Const:
    value: float


@dataclass(frozen=True)
class _Var:
    name: str


@dataclass(frozen=True)
class _Neg:
    operand: _Node


@dataclass(frozen=True)
class _Bin:
    op: str
    left: _Node
    right: _Node


@dataclass(frozen=True)
class _Call:
    func: str
    args: tuple[_Node, ...]


@dataclass(frozen=True)
class _Cond:
    """A conjunction of comparisons ``operands[2i] ops[i] operands[2i + 1]``.

    A chain ``a < b < c`` is stored as the pairs ``(a, b)`` and ``(b, c)``.
    """

    ops: tuple[str, ...]
    operands: tuple[_Node, ...]


@dataclass(frozen=True)
class _Where:
    cond: _Cond
    a: _Node
    b: _Node


_Node = _Const | _Var | _Neg | _Bin | _Call | _Where


def _collect_variables(node: _Node | _Cond, out: set[str]) -> None:
    if isinstance(node, _Var):
        out.add(node.name)
    elif isinstance(node, _Neg):
        _collect_variables(node.operand, out)
    elif isinstance(node, _Bin):
        _collect_variables(node.left, out)
        _collect_variables(node.right, out)
    elif isinstance(node, _Call):
        for arg in node.args:
            _collect_variables(arg, out)
    elif isinstance(node, _Cond):
        for arg in node.operands:
            _collect_variables(arg, out)
    elif isinstance(node, _Where):
        _collect_variables(node.cond, out)
        _collect_variables(node.a, out)
        _collect_variables(node.b, out)


# --------------------------------------------------------------------------------------
# Checking the syntax tree
# --------------------------------------------------------------------------------------


def _shorten(text: str, limit: int = 60) -> str:
    """One line, at most ``limit`` characters, for use inside an error message."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe_type(value: object) -> str:
    return type(value).__name__


class _FoldError(Exception):
    """Constant folding of ``node`` failed; turned into an ExpressionError by the caller."""

    def __init__(self, node: ast.AST, reason: str) -> None:
        super().__init__(reason)
        self.node = node
        self.reason = reason


class _Checker:
    """Checks a parsed expression against the whitelist and builds the folded IR."""

    def __init__(
        self, source: str, lead: int, variables: Sequence[str], params: Mapping[str, float]
    ) -> None:
        self.source = source  # the stripped text that was parsed
        self.lead = lead  # characters stripped from the front of the original text
        self.variables = tuple(dict.fromkeys(variables))
        self.params = params
        self.lines = _NEWLINE.split(source)
        self.line_starts: list[int] = [0]
        for match in _NEWLINE.finditer(source):
            self.line_starts.append(match.end())

    # -- positions --------------------------------------------------------------------

    def _index(self, lineno: int | None, col_offset: int | None) -> int | None:
        """Character index in ``source`` of an ast (line, UTF-8 byte offset) position."""
        if lineno is None or col_offset is None or not 1 <= lineno <= len(self.lines):
            return None
        line = self.lines[lineno - 1]
        chars = len(line.encode("utf-8")[:col_offset].decode("utf-8", errors="ignore"))
        return self.line_starts[lineno - 1] + chars

    def _column_of_index(self, index: int | None) -> int | None:
        return None if index is None else self.lead + index + 1

    def column(self, node: ast.AST) -> int | None:
        """1-based column (in the original text) where ``node`` starts."""
        return self._column_of_index(
            self._index(getattr(node, "lineno", None), getattr(node, "col_offset", None))
        )

    def column_after(self, node: ast.AST) -> int | None:
        """Column of the first token after ``node`` that is not ``)`` or white space.

        Used to point at an operator, ``.`` or ``[`` following an operand (the syntax tree
        does not record where operators are).
        """
        index = self._index(
            getattr(node, "end_lineno", None), getattr(node, "end_col_offset", None)
        )
        if index is None:
            return self.column(node)
        while index < len(self.source) and (
            self.source[index].isspace() or self.source[index] in ")\\"
        ):
            index += 1
        return self._column_of_index(index)

    def segment(self, node: ast.AST) -> str:
        text = ast.get_source_segment(self.source, node)
        return _shorten(text if text is not None else type(node).__name__)

    def fail(self, message: str, column: int | None) -> ExpressionError:
        return ExpressionError(message, column)

    # -- names ------------------------------------------------------------------------

    def allowed_names(self) -> str:
        names = [*self.variables, *CONSTANTS, *self.params]
        return ", ".join(dict.fromkeys(names))

    # -- folding ----------------------------------------------------------------------

    def folded(self, node: ast.AST, compute: Callable[[], float]) -> _Const:
        """Fold a constant sub-expression, refusing overflow and non-finite results."""
        try:
            value = float(compute())
        except OverflowError:
            raise _FoldError(node, "is too large") from None
        except (ValueError, ZeroDivisionError, TypeError):
            # TypeError: complex results of pow cannot come from math.pow, kept for safety.
            raise _FoldError(node, "is not a finite real number") from None
        if math.isinf(value):
            raise _FoldError(node, "is too large")
        if math.isnan(value):
            raise _FoldError(node, "is not a finite real number")
        return _Const(value)

    def is_variable_free(self, node: ast.AST) -> bool:
        return not any(
            isinstance(sub, ast.Name) and sub.id in self.variables for sub in ast.walk(node)
        )

    def fold_error(self, error: _FoldError) -> ExpressionError:
        return self.fail(
            f"value of {self.segment(error.node)} {error.reason}", self.column(error.node)
        )

    # -- the walk ---------------------------------------------------------------------

    def check(self, node: ast.AST) -> _Node:
        try:
            return self._check(node)
        except _FoldError as error:
            # Report the largest constant sub-expression that contains the failure, so that
            # 9**9**9**9 is named as a whole rather than its inner 9**9**9.
            if error.node is not node and self.is_variable_free(node):
                raise _FoldError(node, error.reason) from None
            raise

    def _check(self, node: ast.AST) -> _Node:
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node)
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Compare):
            raise self.fail(
                "comparisons are only allowed inside where(...), as its first argument",
                self.column_after(node.left),
            )
        raise self.fail(self._disallowed(node), self._disallowed_column(node))

    def _disallowed(self, node: ast.AST) -> str:
        """Message for a node kind that is never allowed."""
        if isinstance(node, ast.Attribute):
            return f"attribute access '.{_shorten(node.attr, 40)}' is not allowed"
        if isinstance(node, ast.Subscript):
            return "subscripts ('[...]') are not allowed"
        if isinstance(node, ast.Lambda):
            return "lambda expressions are not allowed"
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            return "comprehensions are not allowed"
        if isinstance(node, ast.JoinedStr | ast.FormattedValue):
            return "f-strings are not allowed"
        if isinstance(node, ast.NamedExpr):
            return "assignment expressions (':=') are not allowed"
        if isinstance(node, ast.Starred):
            return "starred arguments ('*') are not allowed"
        if isinstance(node, ast.IfExp):
            return "conditional expressions ('a if c else b') are not allowed; use where(c, a, b)"
        if isinstance(node, ast.BoolOp):
            name = "and" if isinstance(node.op, ast.And) else "or"
            return f"boolean operator '{name}' is not allowed"
        if isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
            kind = {ast.Tuple: "tuples", ast.List: "lists", ast.Set: "sets", ast.Dict: "dicts"}
            return f"{kind[type(node)]} are not allowed"
        if isinstance(node, (ast.Await, ast.Yield, ast.YieldFrom)):
            return f"'{type(node).__name__.lower()}' is not allowed"
        return f"{type(node).__name__} expressions are not allowed"

    def _disallowed_column(self, node: ast.AST) -> int | None:
        if isinstance(node, (ast.Attribute, ast.Subscript)):
            return self.column_after(node.value)
        if isinstance(node, ast.BoolOp):
            return self.column_after(node.values[0])
        if isinstance(node, ast.IfExp):
            return self.column_after(node.body)
        return self.column(node)

    def _constant(self, node: ast.Constant) -> _Node:
        value = node.value
        if isinstance(value, bool) or value is None:
            return self._reject_constant(f"'{value}' is not allowed", node)
        if isinstance(value, str):
            return self._reject_constant("strings are not allowed", node)
        if isinstance(value, bytes):
            return self._reject_constant("bytes are not allowed", node)
        if isinstance(value, complex):
            return self._reject_constant(
                f"complex numbers ({self.segment(node)}) are not allowed", node
            )
        if value is Ellipsis:
            return self._reject_constant("'...' is not allowed", node)
        if isinstance(value, (int, float)):
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                raise self.fail(
                    f"number {_shorten(self.segment(node), 40)} is too large", self.column(node)
                )
            return _Const(number)
        kind = _describe_type(value)
        return self._reject_constant(f"constants of type {kind} are not allowed", node)

    def _reject_constant(self, message: str, node: ast.AST) -> _Node:
        raise self.fail(message, self.column(node))

    def _name(self, node: ast.Name) -> _Node:
        name = node.id
        if name in self.variables:
            return _Var(name)
        if name in CONSTANTS:
            return _Const(CONSTANTS[name])
        if name in self.params:
            return _Const(float(self.params[name]))
        if name in ALLOWED_FUNCTIONS:
            raise self.fail(f"'{name}' is a function; call it as {name}(...)", self.column(node))
        raise self.fail(
            f"unknown name '{_shorten(name, 40)}' (allowed: {self.allowed_names()})",
            self.column(node),
        )

    def _unary(self, node: ast.UnaryOp) -> _Node:
        if isinstance(node.op, ast.UAdd):
            return self.check(node.operand)
        if isinstance(node.op, ast.USub):
            operand = self.check(node.operand)
            if isinstance(operand, _Const):
                return _Const(-operand.value)
            return _Neg(operand)
        symbol = "not" if isinstance(node.op, ast.Not) else "~"
        raise self.fail(f"operator '{symbol}' is not allowed", self.column(node))

    def _binop(self, node: ast.BinOp) -> _Node:
        op_type = type(node.op)
        if op_type not in _BIN_OPS:
            symbol = _OTHER_BIN_OPS.get(op_type, op_type.__name__)
            raise self.fail(
                f"operator '{symbol}' is not allowed (allowed: + - * / **)",
                self.column_after(node.left),
            )
        op = _BIN_OPS[op_type]
        left = self.check(node.left)
        right = self.check(node.right)
        if isinstance(left, _Const) and isinstance(right, _Const):
            a, b = left.value, right.value
            if op == "**":
                return self.folded(node, lambda: math.pow(a, b))
            return self.folded(node, lambda: _BIN_IMPL[op](a, b))
        return _Bin(op, left, right)

    def _call(self, node: ast.Call) -> _Node:
        func = node.func
        if not isinstance(func, ast.Name):
            if isinstance(func, ast.Attribute | ast.Subscript | ast.Lambda):
                raise self.fail(self._disallowed(func), self._disallowed_column(func))
            raise self.fail(
                f"only the named functions can be called (allowed: {_FUNCTION_LIST})",
                self.column(node),
            )
        name = func.id
        if name not in ALLOWED_FUNCTIONS:
            if name in self.variables or name in CONSTANTS or name in self.params:
                raise self.fail(f"'{name}' is not a function", self.column(func))
            raise self.fail(
                f"function '{_shorten(name, 40)}' is not allowed (allowed: {_FUNCTION_LIST})",
                self.column(func),
            )
        for kw in node.keywords:
            if kw.arg is None:
                raise self.fail("'**' arguments are not allowed", self.column(kw))
            raise self.fail(
                f"keyword arguments are not allowed ({_shorten(kw.arg, 40)}=...)",
                self.column(kw),
            )
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.fail(self._disallowed(arg), self.column(arg))
        arity = _ARITY[name]
        if len(node.args) != arity:
            plural = "argument" if arity == 1 else "arguments"
            raise self.fail(
                f"{name}(...) takes {arity} {plural}, found {len(node.args)}",
                self.column(func),
            )
        if name == "where":
            return self._where(node)
        args = tuple(self.check(arg) for arg in node.args)
        if all(isinstance(arg, _Const) for arg in args):
            values = [arg.value for arg in args]  # type: ignore[union-attr]
            return self.folded(node, lambda: _FOLD_FUNCS[name](*values))
        return _Call(name, args)

    def _where(self, node: ast.Call) -> _Node:
        cond_node = node.args[0]
        if not isinstance(cond_node, ast.Compare):
            raise self.fail(
                "the first argument of where(...) must be a comparison such as x > 0",
                self.column(cond_node),
            )
        ops: list[str] = []
        for op in cond_node.ops:
            if type(op) not in _CMP_OPS:
                symbol = _OTHER_CMP_OPS.get(type(op), type(op).__name__)
                raise self.fail(
                    f"comparison '{symbol}' is not allowed (allowed: < <= > >= == !=)",
                    self.column_after(cond_node.left),
                )
            ops.append(_CMP_OPS[type(op)])
        operands = [self.check(cond_node.left), *(self.check(c) for c in cond_node.comparators)]
        a = self.check(node.args[1])
        b = self.check(node.args[2])
        # Fold the comparisons whose two sides are constant.
        kept_ops: list[str] = []
        kept_pairs: list[tuple[_Node, _Node]] = []
        for op, left, right in zip(ops, operands, operands[1:], strict=False):
            if isinstance(left, _Const) and isinstance(right, _Const):
                if not _CMP_IMPL[op](left.value, right.value):
                    return b
                continue
            kept_ops.append(op)
            kept_pairs.append((left, right))
        if not kept_pairs:
            return a
        if isinstance(a, _Const) and isinstance(b, _Const) and a.value == b.value:
            return a
        cond = _Cond(tuple(kept_ops), tuple(p for pair in kept_pairs for p in pair))
        return _Where(cond, a, b)


def _check_shape(tree: ast.AST, checker: _Checker) -> None:
    """Refuse too deep or too large syntax trees, without recursion."""
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop)):
            continue
        if isinstance(node, ast.boolop):
            continue
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(
                f"expression is too large (more than {MAX_NODES} syntax nodes)",
                checker.column(node),
            )
        if depth > MAX_DEPTH:
            raise ExpressionError(
                f"expression is nested too deeply (more than {MAX_DEPTH} levels)",
                checker.column(node),
            )
        for child in ast.iter_child_nodes(node):
            stack.append((child, depth + 1))


# --------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------

_Evaluator = Callable[[Mapping[str, Any], Any], Any]
"""A compiled node: ``f(env, reference)`` returns a float or an array/tensor."""


def _torch_functions() -> dict[str, Callable[..., Any]]:
    import torch

    def tensor(ref: torch.Tensor, value: Any) -> torch.Tensor:
        if isinstance(value, torch.Tensor):
            return value
        return torch.as_tensor(value, dtype=_float_dtype_torch(ref), device=ref.device)

    def unary(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[..., Any]:
        return lambda ref, a: fn(tensor(ref, a))

    def binary(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[..., Any]:
        return lambda ref, a, b: fn(tensor(ref, a), tensor(ref, b))

    return {
        "sin": unary(torch.sin),
        "cos": unary(torch.cos),
        "tan": unary(torch.tan),
        "exp": unary(torch.exp),
        "log": unary(torch.log),
        "sqrt": unary(torch.sqrt),
        "abs": unary(torch.abs),
        "tanh": unary(torch.tanh),
        "sinh": unary(torch.sinh),
        "cosh": unary(torch.cosh),
        "arcsin": unary(torch.asin),
        "arccos": unary(torch.acos),
        "arctan": unary(torch.atan),
        "atan2": binary(torch.atan2),
        "minimum": binary(torch.minimum),
        "maximum": binary(torch.maximum),
        "where": lambda ref, c, a, b: torch.where(c, tensor(ref, a), tensor(ref, b)),
    }


def _numpy_functions() -> dict[str, Callable[..., Any]]:
    def unary(fn: Callable[[Any], Any]) -> Callable[..., Any]:
        return lambda ref, a: fn(a)

    def binary(fn: Callable[[Any, Any], Any]) -> Callable[..., Any]:
        return lambda ref, a, b: fn(a, b)

    return {
        "sin": unary(np.sin),
        "cos": unary(np.cos),
        "tan": unary(np.tan),
        "exp": unary(np.exp),
        "log": unary(np.log),
        "sqrt": unary(np.sqrt),
        "abs": unary(np.abs),
        "tanh": unary(np.tanh),
        "sinh": unary(np.sinh),
        "cosh": unary(np.cosh),
        "arcsin": unary(np.arcsin),
        "arccos": unary(np.arccos),
        "arctan": unary(np.arctan),
        "atan2": binary(np.arctan2),
        "minimum": binary(np.minimum),
        "maximum": binary(np.maximum),
        "where": lambda ref, c, a, b: np.where(c, a, b),
    }


def _float_dtype_torch(ref: torch.Tensor) -> torch.dtype:
    import torch

    return ref.dtype if ref.is_floating_point() else torch.get_default_dtype()


def _compile(node: _Node, functions: Mapping[str, Callable[..., Any]]) -> _Evaluator:
    """Turn the IR into nested closures calling the backend's functions."""
    if isinstance(node, _Const):
        value = node.value
        return lambda env, ref: value
    if isinstance(node, _Var):
        name = node.name
        return lambda env, ref: env[name]
    if isinstance(node, _Neg):
        inner = _compile(node.operand, functions)
        return lambda env, ref: -inner(env, ref)
    if isinstance(node, _Bin):
        left = _compile(node.left, functions)
        right = _compile(node.right, functions)
        fn = _BIN_IMPL[node.op]
        return lambda env, ref: fn(left(env, ref), right(env, ref))
    if isinstance(node, _Call):
        args = tuple(_compile(arg, functions) for arg in node.args)
        func = functions[node.func]
        if len(args) == 1:
            (only,) = args
            return lambda env, ref: func(ref, only(env, ref))
        first, second = args
        return lambda env, ref: func(ref, first(env, ref), second(env, ref))
    if isinstance(node, _Where):
        ops = node.cond.ops
        pairs = [
            (
                _CMP_IMPL[op],
                _compile(node.cond.operands[2 * i], functions),
                _compile(node.cond.operands[2 * i + 1], functions),
            )
            for i, op in enumerate(ops)
        ]
        a = _compile(node.a, functions)
        b = _compile(node.b, functions)
        where = functions["where"]

        def evaluate(env: Mapping[str, Any], ref: Any) -> Any:
            cond = None
            for cmp, left, right in pairs:
                part = cmp(left(env, ref), right(env, ref))
                cond = part if cond is None else cond & part
            return where(ref, cond, a(env, ref), b(env, ref))

        return evaluate
    raise TypeError(f"unexpected node {node!r}")  # pragma: no cover


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


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
