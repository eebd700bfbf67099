"""A small, safe arithmetic language over named series: `A / B * 100`, `-(A - B) / 2`.

Grammar (recursive descent, no `eval`):

    expr    := term (("+" | "-") term)*
    term    := unary (("*" | "/") unary)*
    unary   := ("-" | "+") unary | primary
    primary := NUMBER | NAME | "(" expr ")"
    NUMBER  := digits ["." digits] [("e" | "E") ["+" | "-"] digits]   (or ".5")
    NAME    := [A-Za-z_][A-Za-z0-9_]*

`*` and `/` bind tighter than `+` and `-`; all four associate to the left. Evaluation is
vectorised over numpy arrays (one value per bucket): a null operand (NaN) makes the result
null, and so does division by zero or any result that is not finite.

Errors are `FormulaError` with the 0-based character offset of the problem; the query layer
turns them into a 400 naming the `formula` field.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

MAX_LENGTH = 1000
MAX_DEPTH = 64  # nesting (parentheses, unary signs): bounds the recursion
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_RE = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_OPERATORS = "+-*/()"


class FormulaError(ValueError):
    """A formula that does not parse, or names a series it cannot use; `position` is the
    0-based character offset."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at character {position}")
        self.reason = message
        self.position = position


@dataclass(frozen=True)
class Token:
    kind: str  # "num" | "name" | "op" | "end"
    text: str
    pos: int


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Ref:
    name: str
    pos: int


@dataclass(frozen=True)
class Neg:
    operand: Node


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Node
    right: Node


Node = Num | Ref | Neg | BinOp


def tokenize(text: str) -> list[Token]:
    """Numbers, names and the operators `+ - * / ( )`; whitespace separates."""
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in _OPERATORS:
            out.append(Token("op", ch, i))
            i += 1
            continue
        m = _NUMBER_RE.match(text, i)
        if m:
            out.append(Token("num", m.group(), i))
            i = m.end()
            continue
        m = NAME_RE.match(text, i)
        if m:
            out.append(Token("name", m.group(), i))
            i = m.end()
            continue
        raise FormulaError(f"unexpected character {ch!r}", i)
    out.append(Token("end", "", n))
    return out


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expr(self) -> Node:
        node = self.term()
        while self.tok.kind == "op" and self.tok.text in "+-":
            op = self.take().text
            node = BinOp(op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.tok.kind == "op" and self.tok.text in "*/":
            op = self.take().text
            node = BinOp(op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.tok.kind == "op" and self.tok.text in "+-":
            tok = self.take()
            self._enter(tok)
            operand = self.unary()
            self.depth -= 1
            return Neg(operand) if tok.text == "-" else operand
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            return Num(float(tok.text))
        if tok.kind == "name":
            return Ref(tok.text, tok.pos)
        if tok.kind == "op" and tok.text == "(":
            self._enter(tok)
            node = self.expr()
            self.depth -= 1
            close = self.take()
            if close.kind != "op" or close.text != ")":
                raise FormulaError(f"expected ')' to close the '(' at character {tok.pos}, "
                                   f"found {_describe(close)}", close.pos)
            return node
        raise FormulaError(f"expected a number, a series name or '(', found "
                           f"{_describe(tok)}", tok.pos)

    def _enter(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FormulaError(f"nested more than {MAX_DEPTH} deep", tok.pos)


def _describe(tok: Token) -> str:
    return "the end of the formula" if tok.kind == "end" else repr(tok.text)


def parse_formula(text: str) -> Node:
    """The formula's syntax tree; FormulaError (with the character offset) otherwise."""
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"longer than {MAX_LENGTH} characters", MAX_LENGTH)
    parser = _Parser(tokenize(text))
    node = parser.expr()
    if parser.tok.kind != "end":
        raise FormulaError(f"expected an operator or the end of the formula, found "
                           f"{_describe(parser.tok)}", parser.tok.pos)
    return node


def references(node: Node) -> list[Ref]:
    """Every series reference, in the order written."""
    if isinstance(node, Ref):
        return [node]
    if isinstance(node, Neg):
        return references(node.operand)
    if isinstance(node, BinOp):
        return references(node.left) + references(node.right)
    return []


def check_names(node: Node, known: list[str]) -> None:
    """FormulaError at the first reference to a series not in `known`."""
    for ref in references(node):
        if ref.name not in known:
            raise FormulaError(f"unknown series {ref.name!r} (the series are "
                               f"{', '.join(known)})", ref.pos)


def evaluate(node: Node, values: dict[str, np.ndarray], n: int) -> np.ndarray:
    """The formula over float64 arrays of length `n` (NaN = null); NaN wherever an operand
    is null, a divisor is zero or the result is not finite."""
    out = np.broadcast_to(np.asarray(_eval(node, values), dtype=np.float64), (n,))
    return np.where(np.isfinite(out), out, np.nan)


def _eval(node: Node, values: dict[str, np.ndarray]) -> np.ndarray | float:
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Ref):
        return values[node.name]
    if isinstance(node, Neg):
        return -_eval(node.operand, values)
    left = _eval(node.left, values)
    right = _eval(node.right, values)
    with np.errstate(all="ignore"):
        if node.op == "+":
            return np.add(left, right)
        if node.op == "-":
            return np.subtract(left, right)
        if node.op == "*":
            return np.multiply(left, right)
        right = np.asarray(right, dtype=np.float64)
        return np.divide(left, np.where(right == 0, np.nan, right))


def evaluate_scalar(node: Node, values: dict[str, float | None]) -> float | None:
    """The formula over one value per series (None = null); None when undefined."""
    arrays = {k: np.array([np.nan if v is None else float(v)]) for k, v in values.items()}
    out = float(evaluate(node, arrays, 1)[0])
    return None if np.isnan(out) else out
