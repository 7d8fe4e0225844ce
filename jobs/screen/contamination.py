"""Benchmark contamination: does a program share a long run of code with a benchmark item?

A program is contaminated by an item when it holds at least ``min_coverage`` (half, by
default) of the item's distinct ``n``-token runs of normalised code (13 by default; peers use
8 to 13), or when one of its functions has the same normalised body as one of the item's functions
whose body is most of the item (for items too short for runs of 13; a body of at least
``min_body_tokens``). One shared run is
not enough for code: measured on the dev set, with 50 of its programs as the "benchmark", a
single shared 13-token run flagged 95 of the 744 other programs (a TreeNode class, a
``Solution().method(...)`` wrapper, a primality loop: idioms, not copies); holding half of an
item's runs flagged none of them, and a copy that renames the function and adds a docstring
holds all of them. Normalisation (jobs.screen.code_tokens)
drops comments, docstrings and the functions' names: renaming the function or adding a
docstring does not hide an item.

The index holds the benchmarks' n-gram hashes as one sorted numpy array (a few MB for
CRUXEval, HumanEval, MBPP and LiveCodeBench together): built once in the driver, shared with
the screen's tasks through Ray's object store, looked up with one ``searchsorted`` per program.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jobs.screen.code_tokens import CodeTokens, code_tokens, ngram_hashes, sequence_hash, token_hashes

# the fields of each benchmark shape, in the order they are tried
CODE_SHAPES = (
    ("prompt", "canonical_solution"),  # HumanEval: signature and docstring, then the body
    ("code",),  # CRUXEval, LiveCodeBench execution, MBPP, any file with a code column
)
ITEM_ID_FIELDS = ("task_id", "id", "question_id", "problem_id", "name")


class NotABenchmark(ValueError):
    pass


def item_code(record: dict) -> str | None:
    """The code of one benchmark record in any of the known shapes, or None."""
    for fields in CODE_SHAPES:
        if all(isinstance(record.get(name), str) for name in fields):
            return "".join(record[name] for name in fields)
    return None


def item_id(record: dict, position: int) -> str:
    for name in ITEM_ID_FIELDS:
        value = record.get(name)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return str(value)
    return f"#{position}"


@dataclass
class Match:
    benchmark: str  # the benchmark file's name
    item: str
    how: str

    def detail(self) -> str:
        return f"{self.benchmark} item {self.item}: {self.how}"


class BenchmarkIndex:
    def __init__(self, ngram: int = 13, min_body_tokens: int = 5, min_coverage: float = 0.5):
        self.ngram = ngram
        self.min_body_tokens = min_body_tokens
        self.min_coverage = min_coverage
        self.sizes: list[int] = []  # distinct n-grams of each item
        self.items: list[tuple[str, str]] = []  # (benchmark, item id)
        self._grams: list[np.ndarray] = []
        self._owners: list[np.ndarray] = []
        self.bodies: dict[int, int] = {}  # normalised body hash -> item
        self.hashes = np.empty(0, dtype=np.uint64)
        self.owners = np.empty(0, dtype=np.int32)

    def add(self, benchmark: str, item: str, code: str) -> None:
        index = len(self.items)
        self.items.append((benchmark, item))
        tokens = code_tokens(code)
        hashes = token_hashes(tokens.tokens)
        grams = np.unique(ngram_hashes(hashes, self.ngram))
        self.sizes.append(len(grams))
        self._grams.append(grams)
        self._owners.append(np.full(len(grams), index, dtype=np.int32))
        for first, end in tokens.bodies:
            # a body that is most of the item (a small wrapper of a big item is an idiom)
            if end - first >= max(self.min_body_tokens, self.min_coverage * len(tokens.tokens)):
                self.bodies.setdefault(sequence_hash(hashes[first:end]), index)

    def freeze(self) -> BenchmarkIndex:
        """Sort the n-grams for lookup (call once, after the last ``add``)."""
        if self._grams:
            hashes = np.concatenate(self._grams)
            owners = np.concatenate(self._owners)
            order = np.argsort(hashes, kind="stable")
            self.hashes, self.owners = hashes[order], owners[order]
        self._grams, self._owners = [], []
        return self

    def __len__(self) -> int:
        return len(self.items)

    def match(self, tokens: CodeTokens) -> Match | None:
        """The first benchmark item the program shares code with, or None."""
        hashes = token_hashes(tokens.tokens)
        for first, end in tokens.bodies:
            if end - first >= self.min_body_tokens:
                found = self.bodies.get(sequence_hash(hashes[first:end]))
                if found is not None:
                    return self._match(found, "a function body equal to the item's")
        if not len(self.hashes):
            return None
        grams = np.unique(ngram_hashes(hashes, self.ngram))
        if not len(grams):
            return None
        first = np.searchsorted(self.hashes, grams, side="left")
        last = np.searchsorted(self.hashes, grams, side="right")
        found = np.nonzero(last > first)[0]
        if not len(found):
            return None
        shared: dict[int, int] = {}  # item -> its n-grams that the program holds
        for at in found.tolist():
            for owner in set(self.owners[first[at]:last[at]].tolist()):
                shared[owner] = shared.get(owner, 0) + 1
        best = max(shared, key=lambda item: (shared[item] / self.sizes[item], -item))
        coverage = shared[best] / self.sizes[best]
        if coverage < self.min_coverage:
            return None
        return self._match(best, f"holds {shared[best]} of its {self.sizes[best]} runs of "
                                 f"{self.ngram} normalised tokens ({coverage:.0%})")

    def _match(self, index: int, how: str) -> Match:
        benchmark, item = self.items[index]
        return Match(benchmark, item, how)
