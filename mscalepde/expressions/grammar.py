"""The grammar of expressions in problem files: a whitelist over Python's ``ast``.

An expression is parsed with :func:`ast.parse` (never ``eval``) and checked node by node
against this whitelist: numbers, the declared variables and parameters, the constants
:data:`CONSTANTS`, the functions :data:`ALLOWED_FUNCTIONS`, arithmetic, comparisons inside
``where``, and nothing else. Sizes are capped (:data:`MAX_LENGTH`, :data:`MAX_DEPTH`,
:data:`MAX_NODES`); constant sub-expressions are folded.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mscalepde.errors import ExpressionError

if TYPE_CHECKING:  # pragma: no cover
    pass


MAX_LENGTH = 4000


MAX_DEPTH = 60


MAX_NODES = 2000


STANDARD_VARIABLES: tuple[str, ...] = ("x", "y", "z", "t")


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
