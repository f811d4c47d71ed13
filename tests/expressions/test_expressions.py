"""Tests of the safe expression language (mscalepde.expressions)."""

from __future__ import annotations

import math
import pickle
import time
from collections.abc import Callable

import numpy as np
import pytest
import torch

from mscalepde.errors import ExpressionError
from mscalepde.expressions.expression import Expression, parse_expression, parse_params
from mscalepde.expressions.grammar import ALLOWED_FUNCTIONS, CONSTANTS

XT = ("x", "t")
X_VALUES = np.array([0.05, 0.2, 0.45, 0.5, 0.7, 0.95])
T_VALUES = np.array([1.3, 0.1, 2.0, 0.5, 0.75, 1.0])


def _np_env() -> dict[str, np.ndarray]:
    return {"x": X_VALUES.copy(), "t": T_VALUES.copy()}


def _torch_env(requires_grad: bool = False) -> dict[str, torch.Tensor]:
    return {
        name: torch.tensor(values, dtype=torch.float64, requires_grad=requires_grad)
        for name, values in _np_env().items()
    }


def _error(text: str, variables: tuple[str, ...] = XT, **kwargs: object) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        parse_expression(text, variables=variables, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return info.value


# --------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------

VALUE_CASES: list[tuple[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]] = [
    ("x + t", lambda x, t: x + t),
    ("x - t", lambda x, t: x - t),
    ("x * t", lambda x, t: x * t),
    ("x / t", lambda x, t: x / t),
    ("x ** t", lambda x, t: x**t),
    ("t ** 2", lambda x, t: t**2),
    ("2 ** x", lambda x, t: 2.0**x),
    ("-x", lambda x, t: -x),
    ("+x", lambda x, t: x),
    ("-x**2", lambda x, t: -(x**2)),
    ("2**3**x", lambda x, t: 2.0 ** (3.0**x)),
    ("(x + 1) * (t - 2) / 3", lambda x, t: (x + 1) * (t - 2) / 3),
    ("1 - x - t", lambda x, t: 1 - x - t),
    ("x / t / 2", lambda x, t: x / t / 2),
    ("sin(x)", lambda x, t: np.sin(x)),
    ("cos(x)", lambda x, t: np.cos(x)),
    ("tan(x)", lambda x, t: np.tan(x)),
    ("exp(t)", lambda x, t: np.exp(t)),
    ("log(t)", lambda x, t: np.log(t)),
    ("sqrt(t)", lambda x, t: np.sqrt(t)),
    ("abs(x - 0.5)", lambda x, t: np.abs(x - 0.5)),
    ("tanh(x)", lambda x, t: np.tanh(x)),
    ("sinh(t)", lambda x, t: np.sinh(t)),
    ("cosh(t)", lambda x, t: np.cosh(t)),
    ("arcsin(x)", lambda x, t: np.arcsin(x)),
    ("arccos(x)", lambda x, t: np.arccos(x)),
    ("arctan(t)", lambda x, t: np.arctan(t)),
    ("atan2(x - 0.5, t - 1)", lambda x, t: np.arctan2(x - 0.5, t - 1)),
    ("atan2(1, x - 0.5)", lambda x, t: np.arctan2(1.0, x - 0.5)),
    ("minimum(x, t)", lambda x, t: np.minimum(x, t)),
    ("maximum(x, 0.5)", lambda x, t: np.maximum(x, 0.5)),
    ("where(x > 0.5, t, -t)", lambda x, t: np.where(x > 0.5, t, -t)),
    ("where(x >= 0.5, 1, 0)", lambda x, t: np.where(x >= 0.5, 1.0, 0.0)),
    ("where(x < t, x, t)", lambda x, t: np.where(x < t, x, t)),
    ("where(x <= 0.45, 1, 2)", lambda x, t: np.where(x <= 0.45, 1.0, 2.0)),
    ("where(x == 0.5, 7, t)", lambda x, t: np.where(x == 0.5, 7.0, t)),
    ("where(x != 0.5, 7, t)", lambda x, t: np.where(x != 0.5, 7.0, t)),
    ("where(0.2 <= x < 0.7, x, 0)", lambda x, t: np.where((x >= 0.2) & (x < 0.7), x, 0.0)),
    ("where(0 < 1 < x + 0.6, 1, 2)", lambda x, t: np.where(x + 0.6 > 1, 1.0, 2.0)),
    ("sin(2*pi*x) * exp(-t)", lambda x, t: np.sin(2 * np.pi * x) * np.exp(-t)),
    ("e**x", lambda x, t: np.e**x),
    ("1e-3 * x + 0x10", lambda x, t: 1e-3 * x + 16.0),
]


@pytest.mark.parametrize(("text", "expected"), VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_numpy_and_torch_values(
    text: str, expected: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> None:
    expression = parse_expression(text, variables=XT)
    reference = expected(X_VALUES, T_VALUES)
    via_numpy = expression.numpy(_np_env())
    np.testing.assert_allclose(via_numpy, reference, rtol=1e-14, atol=1e-15)
    assert via_numpy.shape == X_VALUES.shape
    assert via_numpy.dtype == np.float64
    via_torch = expression.torch(_torch_env())
    assert via_torch.dtype == torch.float64
    assert via_torch.shape == (len(X_VALUES),)
    np.testing.assert_allclose(via_torch.numpy(), reference, rtol=1e-14, atol=1e-15)


def test_every_function_is_covered_by_value_cases() -> None:
    used = {name for text, _ in VALUE_CASES for name in ALLOWED_FUNCTIONS if f"{name}(" in text}
    assert used == ALLOWED_FUNCTIONS
    assert CONSTANTS == {"pi": math.pi, "e": math.e}


def test_precedence_follows_python() -> None:
    assert parse_expression("-2**2", variables=()).constant_value == -4.0
    assert parse_expression("2**3**2", variables=()).constant_value == 512.0
    assert parse_expression("1 + 2 * 3 - 4 / 8", variables=()).constant_value == 6.5


# --------------------------------------------------------------------------------------
# Derivatives
# --------------------------------------------------------------------------------------


def _grad(out: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    (g,) = torch.autograd.grad(out.sum(), var, create_graph=True)
    return g


def test_first_and_second_derivatives_match_analytic() -> None:
    env = _torch_env(requires_grad=True)
    x, t = env["x"], env["t"]
    u = parse_expression("sin(2*pi*x)*exp(-t)", variables=XT).torch(env)
    ux, ut = _grad(u, x), _grad(u, t)
    uxx, utt = _grad(ux, x), _grad(ut, t)
    w = 2 * math.pi
    xd, td = x.detach(), t.detach()
    torch.testing.assert_close(ux, w * torch.cos(w * xd) * torch.exp(-td), rtol=0, atol=1e-12)
    torch.testing.assert_close(ut, -torch.sin(w * xd) * torch.exp(-td), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        uxx, -(w**2) * torch.sin(w * xd) * torch.exp(-td), rtol=0, atol=1e-12
    )
    torch.testing.assert_close(utt, torch.sin(w * xd) * torch.exp(-td), rtol=0, atol=1e-12)


def test_laplacian_in_2d() -> None:
    pts = torch.tensor([[0.1, 0.3], [0.25, 0.8], [0.6, 0.55]], dtype=torch.float64)
    x = pts[:, 0].clone().requires_grad_(True)
    y = pts[:, 1].clone().requires_grad_(True)
    u = parse_expression("sin(pi*x)*sin(3*pi*y) + x**3*y", variables=("x", "y")).torch(
        {"x": x, "y": y}
    )
    lap = _grad(_grad(u, x), x) + _grad(_grad(u, y), y)
    xd, yd = x.detach(), y.detach()
    expected = -10 * math.pi**2 * torch.sin(math.pi * xd) * torch.sin(3 * math.pi * yd)
    expected = expected + 6 * xd * yd
    torch.testing.assert_close(lap, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("text", "derivative"),
    [
        ("tan(x)", lambda x, t: 1 / np.cos(x) ** 2),
        ("log(x) * t", lambda x, t: t / x),
        ("sqrt(x)", lambda x, t: 0.5 / np.sqrt(x)),
        ("arcsin(x)", lambda x, t: 1 / np.sqrt(1 - x**2)),
        ("arccos(x)", lambda x, t: -1 / np.sqrt(1 - x**2)),
        ("arctan(x)", lambda x, t: 1 / (1 + x**2)),
        ("tanh(x)", lambda x, t: 1 - np.tanh(x) ** 2),
        ("sinh(x) + cosh(x)", lambda x, t: np.cosh(x) + np.sinh(x)),
        ("atan2(x, t)", lambda x, t: t / (x**2 + t**2)),
        ("x**t", lambda x, t: t * x ** (t - 1)),
        ("abs(x - 0.5)", lambda x, t: np.sign(x - 0.5)),
        ("minimum(x, 0.6)", lambda x, t: np.where(x < 0.6, 1.0, 0.0)),
        ("where(x > 0.5, x**2, 3*x)", lambda x, t: np.where(x > 0.5, 2 * x, 3.0)),
    ],
)
def test_first_derivatives_of_functions(
    text: str, derivative: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> None:
    env = _torch_env(requires_grad=True)
    value = parse_expression(text, variables=XT).torch(env)
    dx = _grad(value, env["x"]).detach().numpy()
    np.testing.assert_allclose(dx, derivative(X_VALUES, T_VALUES), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------
# Shapes, dtypes, variables
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["2", "pi/2", "where(1 > 0, 3, x)", "k*2"])
def test_constant_results_have_the_shape_and_dtype_of_env(text: str) -> None:
    expression = parse_expression(text, variables=XT, params={"k": 0.75})
    assert expression.is_constant
    value = expression.constant_value
    assert value is not None
    env32 = {k: v.to(torch.float32) for k, v in _torch_env().items()}
    out = expression.torch(env32)
    assert out.shape == (6,) and out.dtype == torch.float32
    assert torch.all(out == torch.tensor(value, dtype=torch.float32))
    out_np = expression.numpy({"x": X_VALUES.astype(np.float32), "t": T_VALUES})
    assert out_np.shape == (6,) and out_np.dtype == np.float32
    np.testing.assert_allclose(out_np, value, rtol=1e-7)


def test_result_uses_the_broadcast_shape_and_float32() -> None:
    expression = parse_expression("sin(x)", variables=XT)
    x = torch.linspace(0, 1, 4, dtype=torch.float32).reshape(4, 1)
    t = torch.zeros(4, 1, dtype=torch.float32)
    out = expression.torch({"x": x, "t": t})
    assert out.shape == (4, 1) and out.dtype == torch.float32
    # only x is used, t gives a wider shape: the result still covers the whole grid
    wide = expression.numpy({"x": np.array([[0.0], [1.0]]), "t": np.zeros((2, 3))})
    assert wide.shape == (2, 3)
    np.testing.assert_allclose(wide[1], np.sin(1.0))


def test_numpy_result_is_a_new_array() -> None:
    env = _np_env()
    out = parse_expression("x", variables=XT).numpy(env)
    out[:] = -1
    np.testing.assert_array_equal(env["x"], X_VALUES)


def test_variables_used_and_constant_flags() -> None:
    assert parse_expression("x*0 + t", variables=XT).variables == frozenset({"x", "t"})
    assert parse_expression("exp(-t)", variables=XT).variables == frozenset({"t"})
    assert parse_expression("where(1 > 2, x, t)", variables=XT).variables == frozenset({"t"})
    nonconst = parse_expression("x", variables=XT)
    assert not nonconst.is_constant and nonconst.constant_value is None
    folded = parse_expression("sqrt(2)*cos(pi)", variables=XT)
    assert folded.is_constant
    assert folded.constant_value == pytest.approx(-math.sqrt(2), abs=1e-15)


def test_numbers_are_accepted_directly() -> None:
    three = parse_expression(3, variables=XT)
    assert three.text == "3" and three.constant_value == 3.0 and three.variables == frozenset()
    assert parse_expression(-0.25, variables=XT).constant_value == -0.25
    assert parse_expression(np.float64(1.5), variables=XT).constant_value == 1.5
    with pytest.raises(ExpressionError, match="found true"):
        parse_expression(True, variables=XT)  # type: ignore[arg-type]
    with pytest.raises(ExpressionError, match="not finite"):
        parse_expression(float("nan"), variables=XT)
    with pytest.raises(ExpressionError, match="type list"):
        parse_expression([1], variables=XT)  # type: ignore[arg-type]


def test_missing_variable_and_empty_env() -> None:
    expression = parse_expression("x + t", variables=XT)
    with pytest.raises(ExpressionError, match=r"variable\(s\) t missing .*given: x"):
        expression.numpy({"x": X_VALUES})
    with pytest.raises(ExpressionError, match="missing"):
        expression.torch({"x": torch.zeros(3)})
    with pytest.raises(ExpressionError, match="at least one variable"):
        parse_expression("1", variables=XT).numpy({})


def test_text_repr_and_pickle() -> None:
    expression = parse_expression("  sin(k*x)  ", variables=XT, params={"k": 3.0})
    assert expression.text == "sin(k*x)"
    assert repr(expression) == "Expression('sin(k*x)')"
    copy = pickle.loads(pickle.dumps(expression))
    assert isinstance(copy, Expression)
    np.testing.assert_allclose(copy.numpy(_np_env()), np.sin(3 * X_VALUES), rtol=1e-15)


# --------------------------------------------------------------------------------------
# Params
# --------------------------------------------------------------------------------------


def test_parse_params_with_derived_values() -> None:
    params = parse_params({"k": 50, "w": "2*pi*k", "a": 0.5, "b": "sqrt(a) + e"})
    assert list(params) == ["k", "w", "a", "b"]
    assert params["k"] == 50.0 and isinstance(params["k"], float)
    assert params["w"] == pytest.approx(2 * math.pi * 50, rel=1e-15)
    assert params["b"] == pytest.approx(math.sqrt(0.5) + math.e, rel=1e-15)
    expression = parse_expression("sin(w*x)/k", variables=XT, params=params)
    assert expression.variables == frozenset({"x"})
    np.testing.assert_allclose(
        expression.numpy(_np_env()), np.sin(100 * math.pi * X_VALUES) / 50, rtol=1e-12
    )


@pytest.mark.parametrize(
    ("raw", "reserved", "message"),
    [
        ({"w": "1 + q"}, (), "w: unknown name 'q' (allowed: pi, e) (column 5)"),
        ({"w": "2*k", "k": 1}, (), "w: unknown name 'k'"),
        ({"k": "x + 1"}, (), "k: unknown name 'x'"),
        ({"x": 1}, (), "x: clashes with the variable 'x'"),
        ({"t": 1}, (), "t: clashes with the variable 't'"),
        ({"pi": 3}, (), "pi: clashes with the constant 'pi'"),
        ({"exp": 1}, (), "exp: clashes with the function 'exp'"),
        ({"rho": 1}, ("rho",), "rho: 'rho' is a reserved name"),
        ({"lambda": 1}, (), "lambda: not a valid parameter name"),
        ({"2k": 1}, (), "2k: not a valid parameter name"),
        ({"k-1": 1}, (), "k-1: not a valid parameter name"),
        ({"k": True}, (), "k: expected a number or a constant expression, found a boolean"),
        ({"k": None}, (), "k: expected a number or a constant expression"),
        ({"k": [1, 2]}, (), "k: expected a number or a constant expression"),
        ({"k": float("inf")}, (), "k: value inf is not finite"),
        ({"k": "1/0"}, (), "k: value of 1/0 is not a finite real number"),
        ({"k": "__import__('os')"}, (), "k: function '__import__' is not allowed"),
        ({3: 1}, (), "3: parameter names must be strings"),
    ],
)
def test_parse_params_errors(raw: dict, reserved: tuple[str, ...], message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_params(raw, reserved=reserved)
    assert str(info.value).startswith(message)


def test_parse_params_error_keeps_the_column() -> None:
    with pytest.raises(ExpressionError) as info:
        parse_params({"a": 1, "w": "a * foo"})
    assert info.value.column == 5
    assert info.value.reason.startswith("w: unknown name 'foo'")


# --------------------------------------------------------------------------------------
# Rejections
# --------------------------------------------------------------------------------------

REJECTED: list[tuple[str, str]] = [
    ("__import__('os').system('ls')", "attribute access '.system' is not allowed"),
    ("__import__('os')", "function '__import__' is not allowed (allowed: sin, cos,"),
    ("__import__", "unknown name '__import__'"),
    ("().__class__", "attribute access '.__class__' is not allowed"),
    ("x.real", "attribute access '.real' is not allowed"),
    ("x[0]", "subscripts"),
    ("lambda: 1", "lambda expressions are not allowed"),
    ("(lambda: 1)()", "lambda expressions are not allowed"),
    ("[x for x in y]", "comprehensions are not allowed"),
    ("sum(x for x in t)", "function 'sum' is not allowed"),
    ("{x: 1 for x in t}", "comprehensions are not allowed"),
    ('"a"', "strings are not allowed"),
    ("b'a'", "bytes are not allowed"),
    ('f"{x}"', "f-strings are not allowed"),
    ("x if x else 1", "conditional expressions"),
    ("sin(x=1)", "keyword arguments are not allowed"),
    ("sin(**x)", "'**' arguments are not allowed"),
    ("sin(*x)", "starred arguments"),
    ("(x:=1)", "assignment expressions (':=') are not allowed"),
    ("x < 1", "comparisons are only allowed inside where(...)"),
    ("where(x > 0, x < 1, 0)", "comparisons are only allowed inside where(...)"),
    ("where((x > 0) > 0, 1, 0)", "comparisons are only allowed inside where(...)"),
    ("where(x, 1, 0)", "first argument of where(...) must be a comparison"),
    ("where(x > 0 and t > 0, 1, 0)", "first argument of where(...) must be a comparison"),
    ("where(x in t, 1, 0)", "comparison 'in' is not allowed"),
    ("x and t", "boolean operator 'and' is not allowed"),
    ("x or t", "boolean operator 'or' is not allowed"),
    ("not x", "operator 'not' is not allowed"),
    ("~x", "operator '~' is not allowed"),
    ("x % 2", "operator '%' is not allowed"),
    ("x // 2", "operator '//' is not allowed"),
    ("x @ t", "operator '@' is not allowed"),
    ("x & t", "operator '&' is not allowed"),
    ("True", "'True' is not allowed"),
    ("False + x", "'False' is not allowed"),
    ("None", "'None' is not allowed"),
    ("...", "'...' is not allowed"),
    ("1j", "complex numbers (1j) are not allowed"),
    ("x + 2j", "complex numbers (2j) are not allowed"),
    ("y", "unknown name 'y' (allowed: x, t, pi, e)"),
    ("eval('1')", "function 'eval' is not allowed"),
    ("open", "unknown name 'open'"),
    ("sin", "'sin' is a function"),
    ("x(2)", "'x' is not a function"),
    ("(x + 1)(2)", "only the named functions can be called"),
    ("(x, t)", "tuples are not allowed"),
    ("[x]", "lists are not allowed"),
    ("{x}", "sets are not allowed"),
    ("{x: t}", "dicts are not allowed"),
    ("sin(x, t)", "sin(...) takes 1 argument, found 2"),
    ("atan2(x)", "atan2(...) takes 2 arguments, found 1"),
    ("minimum(x, t, 1)", "minimum(...) takes 2 arguments, found 3"),
    ("where(x > 0, 1)", "where(...) takes 3 arguments, found 2"),
    ("exp()", "exp(...) takes 1 argument, found 0"),
    ("9**9**9**9", "value of 9**9**9**9 is too large"),
    ("x * 9**9**9**9", "value of 9**9**9**9 is too large"),
    ("x ** 9**9**9", "value of 9**9**9 is too large"),
    ("10.0**400", "value of 10.0**400 is too large"),
    ("exp(1000)", "value of exp(1000) is too large"),
    ("1e308 * 10", "value of 1e308 * 10 is too large"),
    ("1e400", "number 1e400 is too large"),
    ("1" + "0" * 400, "number 10000000000"),
    ("log(0)", "value of log(0) is not a finite real number"),
    ("1/0", "value of 1/0 is not a finite real number"),
    ("x + sqrt(-1)", "value of sqrt(-1) is not a finite real number"),
    ("(-8)**(1/3)", "is not a finite real number"),
    ("arcsin(2)", "value of arcsin(2) is not a finite real number"),
    ("", "empty expression"),
    ("   ", "empty expression"),
    ("x +", "syntax error"),
    ("sin(x", "syntax error: '(' was never closed"),
    ("x $ 2", "syntax error"),
    ("x\x00", "control character U+0000 is not allowed"),
    ("import os", "syntax error"),
]


@pytest.mark.parametrize(("text", "message"), REJECTED, ids=[repr(c[0])[:40] for c in REJECTED])
def test_rejected(text: str, message: str) -> None:
    error = _error(text)
    assert message in str(error)


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("__import__('os').system('ls')", 17),
        ("().__class__", 3),
        ("x + t.real", 6),
        ("x[0]", 2),
        ("sin(x=1)", 5),
        ("(x:=1)", 2),
        ("x < 1", 3),
        ("x and t", 3),
        ("x + y", 5),
        ("  x + y", 7),
        ("x + 2*foo(t)", 7),
        ("x + '\u00e9'.upper()", 8),  # columns count characters, not UTF-8 bytes
        ("x + 'a'", 5),
        ("x % 2", 3),
        ("t + 9**9**9**9", 5),
        ("x $ 2", 3),
        ("sin(x", 4),
        ("(x +\n y.imag)", 8),
        ("x\x00", 2),
    ],
)
def test_error_columns(text: str, column: int) -> None:
    error = _error(text)
    assert error.column == column
    assert str(error).endswith(f"(column {column})")


def test_unknown_name_lists_variables_constants_and_params() -> None:
    error = _error("sin(q*x)", params={"k": 1.0, "w": 2.0})
    assert error.reason == "unknown name 'q' (allowed: x, t, pi, e, k, w)"
    assert _error("y + x", variables=("x",)).reason == "unknown name 'y' (allowed: x, pi, e)"


# --------------------------------------------------------------------------------------
# Resource bounds
# --------------------------------------------------------------------------------------


def test_power_tower_is_refused_quickly() -> None:
    start = time.perf_counter()
    error = _error("9**9**9**9")
    assert time.perf_counter() - start < 1.0
    assert error.reason == "value of 9**9**9**9 is too large"
    start = time.perf_counter()
    _error("2**2**2**2**2**2**2**2")
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    "text",
    [
        "(" * 500 + "x" + ")" * 500,
        "(" * 61 + "x" + ")" * 61,
        "sin(" * 100 + "x" + ")" * 100,
        "-" * 3999 + "x",
        "x" + "**x" * 1300,
        "x" + "+x" * 100,
    ],
    ids=["parens500", "parens61", "sin100", "unary3999", "pow1300", "sum101"],
)
def test_deep_nesting_is_refused(text: str) -> None:
    assert "nested too deeply" in str(_error(text))


def test_nesting_within_the_limit_is_accepted() -> None:
    expression = parse_expression("(" * 40 + "x" + ")" * 40 + "+ t" * 10, variables=XT)
    np.testing.assert_allclose(expression.numpy(_np_env()), X_VALUES + 10 * T_VALUES)


def test_too_long_and_too_many_nodes() -> None:
    assert "too long (10000 characters" in str(_error("x" * 10000))
    assert "too long" in str(_error("x" + "+x" * 2000))

    def balanced(parts: list[str]) -> str:
        while len(parts) > 1:
            parts = [f"({a})+({b})" for a, b in zip(parts[::2], parts[1::2], strict=True)]
        return parts[0]

    text = balanced(["*".join(["x"] * 20)] * 64)  # depth about 27, ~2500 nodes
    assert len(text) <= 4000
    assert "too large (more than 2000 syntax nodes)" in str(_error(text))
