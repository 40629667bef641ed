"""The `calculate_output` formula of multi graders, parsed without `eval`.

Grammar (OpenAI: operators `+ - * / ^`, functions `min max abs floor ceil exp
sqrt log`; variables are the keys of `graders`):

    expr  := term (("+" | "-") term)*
    term  := unary (("*" | "/") unary)*
    unary := ("+" | "-") unary | power
    power := atom ("^" unary)?          right-associative, binds tighter than unary minus
    atom  := NUMBER | NAME | NAME "(" expr ("," expr)* ")" | "(" expr ")"
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["Formula", "FormulaEvalError", "FormulaSyntaxError", "parse_formula"]

_MAX_LENGTH = 2000
_MAX_DEPTH = 64
_TOKEN = re.compile(
    r"\s*(?:(\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|([A-Za-z_]\w*)|(.))"
)

Node = Callable[[Mapping[str, float]], float]

# name -> (function, smallest arity, largest arity or None for any)
_FUNCTIONS: dict[str, tuple[Callable[..., float], int, int | None]] = {
    "min": (min, 1, None),
    "max": (max, 1, None),
    "abs": (abs, 1, 1),
    "floor": (math.floor, 1, 1),
    "ceil": (math.ceil, 1, 1),
    "exp": (math.exp, 1, 1),
    "sqrt": (math.sqrt, 1, 1),
    "log": (math.log, 1, 1),
}
_BINARY: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "^": lambda a, b: math.pow(a, b),
}


class FormulaSyntaxError(ValueError):
    """The formula does not parse, or names an unknown variable or function."""


class FormulaEvalError(ArithmeticError):
    """The formula parsed but has no value here (division by zero, log of 0...)."""


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:  # only trailing whitespace is left
            break
        number, name, symbol = match.groups()
        if number is not None:
            tokens.append(("num", number))
        elif name is not None:
            tokens.append(("name", name))
        elif symbol is not None:
            if symbol not in "+-*/^(),":
                raise FormulaSyntaxError(f"unexpected character {symbol!r} in formula")
            tokens.append(("op", symbol))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], variables: frozenset[str]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0
        self.variables = variables

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise FormulaSyntaxError("formula ends too early")
        token = self.tokens[self.pos]
        if expected is not None and token[1] != expected:
            raise FormulaSyntaxError(f"expected {expected!r}, found {token[1]!r}")
        self.pos += 1
        return token

    def binary(self, operators: str, operand: Callable[[], Node]) -> Node:
        node = operand()
        while self.peek() in tuple(operators):
            op = _BINARY[self.take()[1]]
            left, right = node, operand()
            node = lambda v, op=op, left=left, right=right: op(left(v), right(v))  # noqa: E731
        return node

    def expr(self) -> Node:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise FormulaSyntaxError("formula is nested too deeply")
        node = self.binary("+-", lambda: self.binary("*/", self.unary))
        self.depth -= 1
        return node

    def unary(self) -> Node:
        if self.peek() in ("+", "-"):
            sign = -1.0 if self.take()[1] == "-" else 1.0
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise FormulaSyntaxError("formula is nested too deeply")
            operand = self.unary()
            self.depth -= 1
            return lambda v: sign * operand(v)
        base = self.atom()
        if self.peek() == "^":
            self.take()
            exponent = self.unary()
            return lambda v: _BINARY["^"](base(v), exponent(v))
        return base

    def atom(self) -> Node:
        kind, text = self.take()
        if kind == "num":
            value = float(text)
            return lambda v: value
        if kind == "name":
            return self.call(text) if self.peek() == "(" else self.variable(text)
        if text == "(":
            node = self.expr()
            self.take(")")
            return node
        raise FormulaSyntaxError(f"unexpected {text!r} in formula")

    def variable(self, name: str) -> Node:
        if name not in self.variables:
            known = ", ".join(sorted(self.variables)) or "none"
            raise FormulaSyntaxError(f"unknown variable {name!r} in formula (graders: {known})")
        return lambda v: float(v[name])

    def call(self, name: str) -> Node:
        if name not in _FUNCTIONS:
            raise FormulaSyntaxError(f"unknown function {name!r} in formula")
        function, lowest, highest = _FUNCTIONS[name]
        self.take("(")
        args = [self.expr()]
        while self.peek() == ",":
            self.take()
            args.append(self.expr())
        self.take(")")
        if len(args) < lowest or (highest is not None and len(args) > highest):
            raise FormulaSyntaxError(f"{name}() takes a different number of arguments")
        return lambda v: float(function(*(arg(v) for arg in args)))


@dataclass(frozen=True)
class Formula:
    text: str
    variables: frozenset[str]
    _root: Node

    def evaluate(self, values: Mapping[str, float]) -> float:
        try:
            result = self._root(values)
        except (ArithmeticError, ValueError) as exc:
            raise FormulaEvalError(f"{self.text!r}: {exc}") from exc
        if not math.isfinite(result):
            raise FormulaEvalError(f"{self.text!r} is not finite here")
        return result


def parse_formula(text: str, variables: frozenset[str] | set[str]) -> Formula:
    """Compile `text` over `variables`; raises FormulaSyntaxError."""
    if len(text) > _MAX_LENGTH:
        raise FormulaSyntaxError(f"formula is longer than {_MAX_LENGTH} characters")
    parser = _Parser(_tokenize(text), frozenset(variables))
    if not parser.tokens:
        raise FormulaSyntaxError("formula is empty")
    root = parser.expr()
    if parser.pos != len(parser.tokens):
        raise FormulaSyntaxError(f"unexpected {parser.tokens[parser.pos][1]!r} in formula")
    return Formula(text, frozenset(variables), root)
