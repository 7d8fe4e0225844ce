"""A program's code as normalised tokens: what near-duplicate and benchmark checks compare.

Comments, whitespace and docstrings are left out, and every function the program defines is
called ``_F_`` (its ``def`` and every use of its name): renaming a function, re-indenting it or
adding a docstring gives the same tokens. String and number literals, variable names and
operators stay as written. Tokens come from one C-speed regular expression over the source
(the ``tokenize`` module is ten times slower); the AST only says where docstrings are and which
names are functions, and a program that does not parse keeps its docstrings.
"""

from __future__ import annotations

import ast
import re
import zlib
from dataclasses import dataclass

import numpy as np

FUNCTION = "_F_"
_TOKEN = re.compile(r"""
    \#[^\r\n]*                                                   # a comment
  | [rRbBuUfF]{0,2}(?:\"\"\"(?:\\.|[^\\])*?\"\"\"|'''(?:\\.|[^\\])*?'''
                   |"(?:\\.|[^"\\\r\n])*"|'(?:\\.|[^'\\\r\n])*')  # a string
  | \w+                                                          # a name, keyword or number
  | \*\*=?|//=?|>>=?|<<=?|->|:=|[-+*/%&|^@<>=!]=|[^\s\w]          # an operator
""", re.VERBOSE)
# multiplier of the rolling n-gram hash (odd, 64-bit): n-grams hash in one numpy pass
_BASE = np.uint64(0x9E3779B97F4A7C15)


@dataclass
class CodeTokens:
    tokens: list[str]
    # (first, end) token positions of each function's body (its docstring left out)
    bodies: list[tuple[int, int]]


def _char_offset(lines: list[str], starts: list[int], lineno: int, col: int) -> int:
    """The character offset of an AST position (``col`` counts UTF-8 bytes)."""
    line = lines[lineno - 1] if lineno - 1 < len(lines) else ""
    return starts[lineno - 1] + len(line.encode("utf-8", "surrogatepass")[:col].decode("utf-8", "ignore"))


def code_tokens(code: str, tree: ast.AST | None = None) -> CodeTokens:
    """The normalised tokens of ``code`` (see the module); ``tree``: its AST, when known."""
    if tree is None:
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            tree = None
    lines = code.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    skip: list[tuple[int, int]] = []  # docstrings, as character ranges
    body_spans: list[tuple[int, int]] = []
    functions: set[str] = set()
    if tree is not None:
        for node in _scopes_and_functions(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.add(node.name)
            body = node.body
            first = body[0] if body else None
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                skip.append((_char_offset(lines, starts, first.lineno, first.col_offset),
                             _char_offset(lines, starts, first.end_lineno, first.end_col_offset)))
                body = body[1:]
            if body and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body_spans.append((_char_offset(lines, starts, body[0].lineno, body[0].col_offset),
                                   _char_offset(lines, starts, body[-1].end_lineno,
                                                body[-1].end_col_offset)))
    tokens: list[str] = []
    offsets: list[int] = []
    skip.sort()
    gap = 0
    for match in _TOKEN.finditer(code):
        text, at = match.group(), match.start()
        if text[0] == "#":
            continue
        while gap < len(skip) and skip[gap][1] <= at:
            gap += 1
        if gap < len(skip) and skip[gap][0] <= at:
            continue
        tokens.append(FUNCTION if text in functions else text)
        offsets.append(at)
    bodies = []
    for begin, end in body_spans:
        first = int(np.searchsorted(offsets, begin, side="left"))
        last = int(np.searchsorted(offsets, end, side="left"))
        bodies.append((first, last))
    return CodeTokens(tokens, bodies)


_SCOPES = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_STATEMENT_LISTS = ("body", "orelse", "finalbody", "handlers", "cases")


def _scopes_and_functions(tree: ast.AST):
    """The module, classes and functions (those that may hold a docstring), found by walking
    statements only: a def cannot stand inside an expression, and expressions are most of a
    program's nodes."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, _SCOPES):
            yield node
        for name in _STATEMENT_LISTS:
            children = getattr(node, name, None)
            if isinstance(children, list):
                stack.extend(children)


def token_hashes(tokens: list[str]) -> np.ndarray:
    """A stable 32-bit hash per token (the same in every process, unlike ``hash``)."""
    return np.fromiter((zlib.crc32(t.encode("utf-8", "surrogatepass")) for t in tokens),
                       dtype=np.uint64, count=len(tokens))


def ngram_hashes(hashes: np.ndarray, n: int) -> np.ndarray:
    """A 64-bit hash of every run of ``n`` consecutive tokens (none when there are fewer)."""
    count = len(hashes) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    out = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(n):
            out = out * _BASE + hashes[offset:offset + count] + np.uint64(1)
    return out


def sequence_hash(hashes: np.ndarray) -> int:
    """One 64-bit hash of a whole token sequence (a function body)."""
    value, base, mask = 0, int(_BASE), (1 << 64) - 1
    for item in hashes.tolist():
        value = (value * base + item + 1) & mask
    return value
