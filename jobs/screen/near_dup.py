"""MinHash signatures of a program's code and their LSH band keys (datasketch).

datasketch computes the MinHash of a program's token shingles and picks the band layout
(``b`` bands of ``r`` rows) for the Jaccard threshold (``MinHashLSH``'s own optimisation),
weighted towards recall (false negatives 0.7, false positives 0.3): a near-copy missed
repeats itself in the training data, a program rejected by mistake is very like one kept.
At the default 0.8 with 128 permutations that is 11 bands of 11 rows: a pair with Jaccard
similarity 0.7 is caught 20% of the time, 0.8 63%, 0.85 87%, 0.9 98% (candidates are not
checked again against their signatures, as in datatrove's and NeMo Curator's defaults).

datasketch's in-memory LSH index holds every key in one process, so the bands are not
inserted there: each becomes a key that the screen's Ray shuffle groups
(as datatrove and NeMo Curator shard their bands), and programs that share a key are
candidates, the first in input order their representative.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from jobs.screen.code_tokens import FUNCTION

if TYPE_CHECKING:
    from datasketch import MinHash

RECALL_WEIGHTS = (0.3, 0.7)  # MinHashLSH's (false positive, false negative) weights


@dataclass(frozen=True)
class NearDupSettings:
    threshold: float = 0.8  # Jaccard similarity of shingle sets from which programs are near-copies
    num_perm: int = 128
    shingle: int = 5  # tokens per shingle
    seed: int = 1


class BandHasher:
    """LSH band keys of a token list; one per process (permutations are made once)."""

    def __init__(self, settings: NearDupSettings):
        # datasketch imports scipy (0.4 s a process): only the screen's processes pay for it,
        # not every process that reads the job's settings
        from datasketch import MinHashLSH

        self.settings = settings
        lsh = MinHashLSH(threshold=settings.threshold, num_perm=settings.num_perm,
                         weights=RECALL_WEIGHTS)
        self.bands, self.rows = lsh.b, lsh.r

    @cached_property
    def _template(self) -> MinHash:
        from datasketch import MinHash

        # crc32 as the base hash (C speed; sha1's default costs most of a signature): the
        # affine32 scheme mixes each value (murmur's finaliser) before its permutations
        return MinHash(num_perm=self.settings.num_perm, seed=self.settings.seed,
                       hashfunc=zlib.crc32)

    def signature(self, tokens: list[str]) -> MinHash:
        from datasketch import MinHash

        k = self.settings.shingle
        shingles = {"\0".join(tokens[i:i + k]).encode("utf-8", "surrogatepass")
                    for i in range(max(1, len(tokens) - k + 1))}
        sig = MinHash(num_perm=self.settings.num_perm, seed=self.settings.seed,
                      permutations=self._template.permutations, scheme=self._template.scheme,
                      hashfunc=zlib.crc32)
        sig.update_batch(sorted(shingles))
        return sig

    def band_keys(self, tokens: list[str]) -> list[str]:
        """One key per band; programs with a key in common are near-copy candidates. A program
        of fewer tokens than a shingle, or only a bare def, has none."""
        if len(tokens) < self.settings.shingle or tokens.count(FUNCTION) == len(tokens):
            return []
        values = self.signature(tokens).hashvalues
        keys = []
        for band in range(self.bands):
            chunk = values[band * self.rows:(band + 1) * self.rows].tobytes()
            keys.append(f"b{band}:" + hashlib.blake2b(chunk, digest_size=10).hexdigest())
        return keys
