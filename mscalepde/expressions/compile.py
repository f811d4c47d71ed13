"""Compiling a checked expression tree into a closure over torch or numpy functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from mscalepde.expressions.grammar import (
    _BIN_IMPL,
    _CMP_IMPL,
    _Bin,
    _Call,
    _Const,
    _Neg,
    _Node,
    _Var,
    _Where,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch


_Evaluator = Callable[[Mapping[str, Any], Any], Any]


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
