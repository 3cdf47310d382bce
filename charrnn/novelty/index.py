"""Is the model writing or copying? Verbatim copies of the training text in a sample.

An ``Index`` is a corpus's ids with their suffix array (``novelty.suffixarray``: built
once per corpus, memory-mapped beside the id cache, rebuilt when not trustworthy). The
index of a checkpoint's training text is found through the corpus path and digest the
checkpoint records (``novelty.source``). Every match length is measured against the
corpus text itself, so a reported copy is always real; a damaged suffix array could only
hide copies, which is what the digests checked at opening guard against.

Queries are matching statistics: for every position i of a text, the longest prefix of
text[i:] that occurs in the corpus. All positions are searched at once in numpy: the
sorted sampled keys narrow each to a short stretch of the suffix array (one
``searchsorted``), then a binary search runs a round at a time for all positions,
comparing windows of characters from the prefix both bounds already share, so a check
touches a few thousand pages of the memory-mapped files, never the whole corpus. Most
starts of a long copy are not searched at all: their matches follow from their
neighbours' (``statistics``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charrnn.data.text import Vocab
from charrnn.novelty.filter import DEFAULT_MIN_COPY
from charrnn.novelty.suffixarray import KEY_STEP, key_shape, pack

_WINDOW = 8  # characters compared per row per round of the search (>= _MAX_KEY_CHARS)
_END_QUERY, _END_CORPUS = -1, -2  # past a query / past the corpus: never equal to an id
_GRID = 16  # matching statistics: every _GRID-th start is searched first (``statistics``)


@dataclass(frozen=True)
class CopyReport:
    """Verbatim copies of the training text in one text (prime + sample).

    Only copies that reach into the generated part count (a quoted prime alone is no
    copy); ``share`` is the fraction of generated characters inside a copy of at least
    ``min_copy`` characters.
    """

    longest: int  # characters
    corpus_at: int | None  # a corpus character offset where the longest copy occurs
    text_at: int  # where it starts in the checked text (prime included)
    share: float
    min_copy: int

    def fields(self) -> dict:
        """The report as ``--jsonl`` fields."""
        return {"longest_copy": self.longest, "copy_at": self.corpus_at,
                "copy_start": self.text_at, "copied_share": round(self.share, 4),
                "min_copy": self.min_copy}

    def summary(self) -> str:
        if not self.longest:
            return "no copied characters"
        return (f"longest copy {self.longest} characters (corpus character {self.corpus_at}),"
                f" {self.share:.0%} of its characters in copies of >= {self.min_copy}")


class Index:
    """A corpus's ids and their suffix array (both usually memory-mapped, read-only)."""

    def __init__(self, ids: np.ndarray, sa: np.ndarray, keys: np.ndarray, vocab: Vocab,
                 source: str, digest: str) -> None:
        self.ids, self.sa, self.keys = np.asarray(ids), np.asarray(sa), np.asarray(keys)
        self.vocab, self.source, self.digest = vocab, source, digest
        self._cps = np.array([ord(c) for c in vocab.chars], np.uint32)
        self.key_bits, self.key_chars = key_shape(len(vocab))
        self.step = KEY_STEP
        self._words = None  # the corpus as big-endian uint64 at every offset (uint8 only)
        if self.ids.dtype == np.uint8 and len(self.ids) >= 8:
            self._words = np.ndarray((len(self.ids) - 7,), ">u8", self.ids, strides=(1,))

    def __len__(self) -> int:
        return len(self.ids)

    def encode(self, text: str) -> np.ndarray:
        """Corpus ids of ``text`` (int64); characters the corpus lacks match nothing."""
        cps = np.frombuffer(text.encode("utf-32-le"), "<u4")
        ids = np.searchsorted(self._cps, cps)
        ids[ids == len(self._cps)] = 0
        return np.where(self._cps[ids] == cps, ids, _END_QUERY).astype(np.int64)

    def matching(self, q: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each start i: the length of the longest prefix of q[i:] found in the
        corpus, and a corpus position where it occurs (-1 if none).

        ``q`` must end with at least ``_WINDOW`` copies of ``_END_QUERY``. A binary search
        per start, all at once, in the stretch of the suffix array that the sampled keys
        leave; it keeps the common prefix of the query with the suffixes just below and
        above it, and the longest match is one of those two.
        """
        n, sa = len(self.sa), self.sa
        k = len(starts)
        lo, hi = self._narrow(q, starts)
        llo, lhi = np.zeros(k, np.int64), np.zeros(k, np.int64)
        seen_lo, seen_hi = lo == 0, hi == n  # the lcp with that neighbour is known (0)
        act = np.flatnonzero(lo < hi)
        while act.size:
            a, b = lo[act], hi[act]
            mid = (a + b) >> 1
            lcp, greater = self._compare(q, starts[act], sa[mid].astype(np.int64),
                                         np.minimum(llo[act], lhi[act]))
            lo[act] = np.where(greater, mid + 1, a)
            hi[act] = np.where(greater, b, mid)
            llo[act] = np.where(greater, lcp, llo[act])
            lhi[act] = np.where(greater, lhi[act], lcp)
            seen_lo[act] |= greater
            seen_hi[act] |= ~greater
            act = act[lo[act] < hi[act]]
        for seen, side, bound in ((seen_lo, llo, lo - 1), (seen_hi, lhi, hi)):
            rest = np.flatnonzero(~seen)  # a bound set by the keys, never compared
            if rest.size:
                side[rest], _ = self._compare(q, starts[rest], sa[bound[rest]].astype(
                    np.int64), np.zeros(rest.size, np.int64))
        below = (llo >= lhi) & (lo > 0)
        length = np.where(below, llo, lhi)
        at = np.where(below, sa[np.maximum(lo - 1, 0)], sa[np.minimum(hi, n - 1)])
        return length, np.where(length > 0, at, -1).astype(np.int64)

    def statistics(self, q: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        """``matching`` for every start 0..m-1, searching far fewer of them.

        Where a match ends, ``reach = start + length``, never decreases from one start to
        the next (a match from i, less its first character, is a match from i + 1). So
        when two starts reach the same end, every start between them reaches it too, and
        copies its occurrence shifted. Starts every ``_GRID`` are searched first; only
        the gaps whose ends differ are searched in full: a long copy costs a few
        searches instead of one per character, new text (short matches) one more call.
        """
        if m == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        grid = np.unique(np.append(np.arange(0, m, _GRID), m - 1))
        glen, gat = self.matching(q, grid)
        length, at = np.zeros(m, np.int64), np.full(m, -1, np.int64)
        length[grid], at[grid] = glen, gat
        reach = grid + glen
        inside = np.setdiff1d(np.arange(m), grid)  # starts between grid points
        gap = np.searchsorted(grid, inside) - 1  # grid[gap] < start < grid[gap + 1]
        fill = reach[gap] == reach[gap + 1]
        j, g = inside[fill], gap[fill]
        length[j] = reach[g] - j
        at[j] = gat[g] + (j - grid[g])
        rest = inside[~fill]
        if rest.size:
            length[rest], at[rest] = self.matching(q, rest)
        return length, at

    def _narrow(self, q: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[lo, hi): where in the suffix array each query belongs, from the sampled keys.

        Keys (``pack``) order the first few characters exactly as the full comparison
        does, so a sampled suffix with a smaller key lies below the query, one with a
        larger key above it.
        """
        n, keys, step = len(self.sa), self.keys, self.step
        qk = pack(q[starts[:, None] + np.arange(self.key_chars)] + 2, self.key_bits)
        left = np.searchsorted(keys, qk, "left")
        right = np.searchsorted(keys, qk, "right")
        lo = np.where(left > 0, (left - 1) * step + 1, 0)
        hi = np.where(right < len(keys), right * step, n)
        return lo.astype(np.int64), hi.astype(np.int64)

    def _compare(self, q: np.ndarray, starts: np.ndarray, pos: np.ndarray,
                 skip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Common prefix of q[starts:] and corpus[pos:] (both known equal for ``skip``
        characters) and whether the query sorts after the corpus suffix.

        A window of ``_WINDOW`` characters settles most rows; the rest, in long matches,
        go on in growing windows, for a uint8 corpus 8 characters per uint64
        (``_compare_words``), so a long copy costs a few rounds, not one per window.
        """
        lcp, greater = skip.copy(), np.zeros(len(starts), bool)
        todo = self._compare_chars(q, starts, pos, lcp, greater, np.arange(len(starts)), True)
        if todo.size and self._words is not None:
            todo = self._compare_words(q, starts, pos, lcp, greater, todo)
        self._compare_chars(q, starts, pos, lcp, greater, todo, False)
        return lcp, greater

    def _compare_chars(self, q: np.ndarray, starts: np.ndarray, pos: np.ndarray,
                       lcp: np.ndarray, greater: np.ndarray, todo: np.ndarray,
                       once: bool) -> np.ndarray:
        """``_compare`` by characters for rows ``todo``; ``once``: one window only.
        Updates ``lcp`` and ``greater``; returns the rows still undecided."""
        n, ids, width = len(self.ids), self.ids, _WINDOW
        while todo.size:
            off = lcp[todo, None] + np.arange(width)
            qv = q.take(starts[todo, None] + off, mode="clip")  # past q's end: -1 too
            ci = pos[todo, None] + off
            cv = ids.take(ci, mode="clip").astype(np.int64)
            cv[ci >= n] = _END_CORPUS
            neq = qv != cv
            first = neq.argmax(axis=1)
            rows = np.arange(len(todo))
            hit = neq[rows, first]
            lcp[todo] += np.where(hit, first, width)
            done = todo[hit]
            greater[done] = qv[rows[hit], first[hit]] > cv[rows[hit], first[hit]]
            todo, width = todo[~hit], min(width * 4, 1024)
            if once:
                break
        return todo

    def _compare_words(self, q: np.ndarray, starts: np.ndarray, pos: np.ndarray,
                       lcp: np.ndarray, greater: np.ndarray, todo: np.ndarray) -> np.ndarray:
        """``_compare`` 8 characters at a time: the corpus and the query read as
        big-endian uint64 at any character offset (a stride-1 view), so the first
        differing character is the first non-zero byte of their XOR. Updates ``lcp``
        and ``greater``; returns the rows left to the character loop (windows that would
        run past the corpus's last 8 characters)."""
        n, words = len(self.ids), self._words
        assert words is not None  # only called for a uint8 corpus
        qbytes = np.concatenate([np.maximum(q, 0).astype(np.uint8), np.zeros(8, np.uint8)])
        qwords = np.ndarray((len(qbytes) - 7,), ">u8", qbytes, strides=(1,))
        cut = np.flatnonzero(q < 0)  # each row's query ends at its first -1
        qend = cut[np.searchsorted(cut, starts)]
        width, rest = 2, []
        while todo.size:
            cpos = pos[todo] + lcp[todo]
            near = cpos + 8 * width > n  # the window would leave the corpus: by character
            rest.append(todo[near])
            todo, cpos = todo[~near], cpos[~near]
            steps = 8 * np.arange(width, dtype=np.int64)
            cw = words[cpos[:, None] + steps].astype(np.uint64)  # (take would copy all)
            qw = qwords[np.minimum(starts[todo, None] + lcp[todo, None] + steps,
                                   len(qwords) - 1)].astype(np.uint64)
            x = cw ^ qw
            nz = x != 0
            j = nz.argmax(axis=1)
            rows = np.arange(len(todo))
            xj = x[rows, j]
            diff = np.where(nz[rows, j], 8 * j + _zero_bytes(xj), 8 * width)
            limit = qend[todo] - starts[todo] - lcp[todo]  # query characters left
            stop = np.minimum(diff, limit)
            done = stop < 8 * width
            lcp[todo] += np.where(done, stop, 8 * width)
            # a difference first: the larger byte; else the query ended: it sorts first
            first_diff = diff < limit
            greater[todo] = np.where(first_diff, qw[rows, j] > cw[rows, j], False)
            todo, width = todo[~done], min(width * 4, 128)
        return np.concatenate(rest) if rest else np.zeros(0, np.int64)

    def _padded(self, text: str) -> np.ndarray:
        return np.concatenate([self.encode(text), np.full(_WINDOW, _END_QUERY)])

    def report(self, text: str, generated_from: int = 0,
               min_copy: int = DEFAULT_MIN_COPY) -> CopyReport:
        """The copies of the training text in ``text`` whose generated part starts at
        character ``generated_from`` (the prime's length)."""
        m = len(text)
        starts = np.arange(m)
        length, at = self.statistics(self._padded(text), m)
        reach = starts + length
        counts = reach > generated_from  # copies that hold generated characters
        if not m or not counts.any():
            return CopyReport(0, None, 0, 0.0, min_copy)
        best = int(np.argmax(np.where(counts, length, -1)))
        longest, where = int(length[best]), int(at[best])
        ends = np.maximum.accumulate(np.where(length >= min_copy, reach, 0))
        inside = ends > starts
        generated = inside[generated_from:]
        share = float(generated.mean()) if generated.size else 0.0
        return CopyReport(longest, where if longest else None, best, share, min_copy)

    def occurs(self, text: str) -> bool:
        """Whether ``text`` occurs verbatim in the corpus.

        The corpus's start and end count as line breaks, so that with ``-p $'\\n'`` and
        ``--stop '\\n'`` the first and last lines of a list are found too.
        """
        if not text:
            return True
        length, _ = self.matching(self._padded(text), np.zeros(1, np.int64))
        if int(length[0]) == len(text):
            return True
        n, ids = len(self.ids), self.ids
        ends = []  # (text, whether it must begin the corpus, whether it must end it)
        if text.startswith("\n"):
            ends.append((text[1:], True, False))
        if text.endswith("\n"):
            ends.append((text[:-1], False, True))
        if len(text) > 1 and text[0] == text[-1] == "\n":
            ends.append((text[1:-1], True, True))
        for part, first, last in ends:
            q = self.encode(part)
            if q.size > n or (first and last and q.size != n):
                continue
            if np.array_equal(ids[:q.size] if first else ids[n - q.size:], q):
                return True
        return False


def _zero_bytes(x: np.ndarray) -> np.ndarray:
    """Leading zero bytes of non-zero uint64 values (by halving: 32, 16, 8 bits)."""
    count = np.zeros(len(x), np.int64)
    for bits in (32, 16, 8):
        top = (x >> np.uint64(64 - bits)) == 0
        count += top * (bits // 8)
        x = np.where(top, x << np.uint64(bits), x)
    return count
