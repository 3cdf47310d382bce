"""A regular expression as a table over the model's characters: which characters each
state allows, where each leads, and how many characters are still needed to match.

A character vocabulary makes this exact: every state of the expression's automaton
gives the set of allowed next characters, with no token boundaries to straddle. The
automaton comes from outlines-core (the Rust core of the outlines structured-generation
library, also used by vLLM and SGLang): it builds the minimal DFA of the expression over
a vocabulary's strings, here one string per character (docs/sampling.md says why this
library). It runs in a child process with a time limit, because a short expression can
have a DFA of millions of states (``(a|b)*a(a|b){20}``: 40 s and 2.7 GB), and a server
must not hang on one request.

On top of that DFA this module adds what sampling needs:

- stop strings: where the expression has matched, a stop string may follow and end the
  sample (the product of the DFA with a trie of the stop strings);
- ``dist``: the fewest characters from each state to one where the sample may end, so a
  sample cut by its length still matches (a character is allowed only if the sample can
  still end in time), and states that can never end are pruned.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import subprocess
import sys
from collections import deque
from dataclasses import dataclass

import numpy as np

from charrnn.errors import CharRNNError, ConfigError

BUILD_SECONDS = 10.0  # the child process building the DFA is stopped after this
MAX_CELLS = 4_000_000  # states x vocabulary of the table, at most (16 MB per int32 table)
NEVER = np.iinfo(np.int32).max  # the distance of a state that cannot end


@dataclass(frozen=True)
class Automaton:
    """The table a regex (and the stop strings) give over a vocabulary."""

    step: np.ndarray  # (S, V) int32: next state, -1 where the character is not allowed
    ahead: np.ndarray  # (S, V) int32: characters still needed after it (NEVER: not allowed)
    ends: np.ndarray  # (S,) int32: 0 goes on; -1 matched and cannot go on; k > 0 ended
    #                   with a stop string of k characters
    matched: np.ndarray  # (S,) bool: the text so far is a match (the sample may end)
    start: int
    least: int  # the fewest characters a sample needs


def build(pattern: str, chars: tuple[str, ...], stops: tuple[str, ...] = (),
          banned: frozenset[int] = frozenset()) -> Automaton:
    """The automaton of ``pattern`` over ``chars`` (never using the ``banned`` ids); a
    ConfigError if it cannot be built or no text of these characters matches it."""
    start, step, accepting, unseen = _dfa(pattern, chars)
    if stops:
        start, step, may_end, ends = _with_stops(start, step, accepting, chars, stops)
    else:
        may_end, ends = accepting, np.zeros(len(step), np.int32)
    if banned:
        step[:, sorted(banned)] = -1
    dist = _distances(step, may_end)
    if dist[start] == NEVER:
        raise ConfigError(f"regex {pattern!r:.60} cannot match any text of the characters "
                          "this model knows" + (" and --ban allows" if banned else "") +
                          (f" (it never saw {unseen!r})" if unseen else ""), field="regex")
    step = np.where((step >= 0) & (dist[np.maximum(step, 0)] < NEVER), step, -1)
    ahead = np.where(step >= 0, dist[np.maximum(step, 0)], NEVER).astype(np.int32)
    stuck = (ahead == NEVER).all(axis=1)
    ends = np.where((ends == 0) & may_end & stuck, -1, ends).astype(np.int32)
    return Automaton(step.astype(np.int32), ahead, ends, may_end, int(start),
                     int(dist[start]))


def _dfa(pattern: str, chars: tuple[str, ...]) -> tuple[int, np.ndarray, np.ndarray, str]:
    """(start, next state (R, V) with -1, accepting (R,), the characters the pattern
    uses that ``chars`` lacks) of the pattern's DFA, built by outlines-core in a child
    process (``dfa.py``; see the module docstring).

    Two things work around outlines-core 0.2's index, which is built for token
    vocabularies. It drops the transitions from a state where the pattern has matched
    to one where it has not (so ``(ab)*`` would stop after ``ab``), and it refuses a
    pattern in which any branch needs a token the vocabulary lacks (``(cat|zebra)`` for
    a model that never saw ``z``). So the pattern is followed by an end mark, a private-
    use character the model does not have: no state reached by the model's characters is
    final, and a state where the pattern has matched is one whose end mark leads to a
    final state. And every literal character of the pattern is given to the index as an
    extra token: branches that need one the model lacks are pruned afterwards, and named
    if nothing is left."""
    if importlib.util.find_spec("outlines_core") is None:
        raise CharRNNError("--regex needs the regex extra: pip install 'charrnn[regex]'")
    extra = sorted(_literals(pattern) - set(chars))
    end = next(chr(c) for c in range(0xE000, 0xF900) if chr(c) not in chars
               and chr(c) not in extra)
    tokens = [*chars, end, *extra]
    request = json.dumps({"pattern": f"(?:{pattern}){end}", "chars": tokens})
    try:
        done = subprocess.run([sys.executable, "-m", "charrnn.generate.dfa", str(MAX_CELLS)],
                              input=request.encode(), capture_output=True,
                              timeout=BUILD_SECONDS, env=_child_env())
    except subprocess.TimeoutExpired:
        raise ConfigError(f"regex {pattern!r:.60} is too complex: its automaton took over "
                          f"{BUILD_SECONDS:g} s to build", field="regex") from None
    head, _, body = done.stdout.partition(b"\n")
    try:
        meta = json.loads(head)
    except ValueError:
        why = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no reply"]
        raise CharRNNError(f"building the regex automaton failed: {why[0][:200]}") from None
    if "error" in meta:
        raise ConfigError(_explain(pattern, meta["error"].replace(end, "")), field="regex")
    rows, v, t = meta["states"], len(chars), len(tokens)
    table = np.frombuffer(body, np.int32, count=rows * t).reshape(rows, t)
    final = np.zeros(rows + 1, bool)  # (the last: -1, no state)
    final[meta["final"]] = True
    accepting = final[table[:, v]]
    reach = _reachable(table, meta["start"])
    used = (table[reach][:, v + 1:] >= 0).any(axis=0)
    unseen = "".join(c for c, u in zip(extra, used, strict=True) if u)
    return meta["start"], table[:, :v].copy(), accepting, unseen


def _literals(pattern: str) -> set[str]:
    """The characters a pattern names one by one (and each end of a range), read with
    Python's own parser; best effort (its module is private): none if it changes."""
    try:
        parser = getattr(re, "_parser", None) or importlib.import_module("sre_parse")
        found: set[str] = set()

        def walk(items) -> None:
            for op, arg in items:
                name = str(op)
                if name in ("LITERAL", "NOT_LITERAL"):
                    found.add(chr(arg))
                elif name == "RANGE":
                    found.update((chr(arg[0]), chr(arg[1])))
                elif name == "IN":
                    walk(arg)
                elif isinstance(arg, (tuple, list)):
                    for part in arg:
                        if isinstance(part, parser.SubPattern):
                            walk(part)
                        elif isinstance(part, (list, tuple)):
                            for sub in part:
                                if isinstance(sub, parser.SubPattern):
                                    walk(sub)

        walk(parser.parse(pattern))
        return found
    except Exception:  # noqa: BLE001  (only a hint for the error message)
        return set()


def _reachable(table: np.ndarray, start: int) -> np.ndarray:
    """The states reachable from ``start`` (any token)."""
    seen = np.zeros(len(table), bool)
    seen[start] = True
    queue = deque([start])
    while queue:
        for t in table[queue.popleft()].tolist():
            if t >= 0 and not seen[t]:
                seen[t] = True
                queue.append(t)
    return seen


def _child_env() -> dict[str, str]:
    """This environment, with this charrnn importable (a source checkout run by path)."""
    import os
    from pathlib import Path

    here = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def _explain(pattern: str, error: str) -> str:
    """outlines-core's error as one line a user can act on."""
    head = f"regex {pattern!r:.60}"
    if "incompatible" in error:
        found = re.search(r"characters: (\[.*?\])", error)
        missing = ""
        if found:
            with contextlib.suppress(ValueError):
                missing = "".join(json.loads(found.group(1)))
        return (f"{head} cannot match any text of the characters this model knows" +
                (f" (it never saw {missing!r})" if missing else ""))
    if error.startswith("too many"):
        return f"{head} is too complex: {error}"
    first = error.strip().splitlines()[0] if error.strip() else "unknown error"
    return (f"{head} cannot be made into an automaton (anchors, lookaround, "
            f"backreferences and \\b are not supported): {first[:160]}")


def _with_stops(start: int, step: np.ndarray, accepting: np.ndarray, chars: tuple[str, ...],
                stops: tuple[str, ...]) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """The DFA times a trie of the stop strings: a state is (regex state or -1, the
    stop-string prefixes begun where the regex had matched). A stop string completed
    from one of them leads to a terminal state that ends the sample."""
    index = {c: i for i, c in enumerate(chars)}
    child: list[dict[int, int]] = [{}]  # trie node -> {char id: node}; node 0 is the root
    full: list[int] = [0]  # length of the stop string a node completes, 0 if none
    for stop in stops:
        if any(ch not in index for ch in stop):
            continue  # a character the model never produces: this stop never happens
        node = 0
        for ch in stop:
            if index[ch] not in child[node]:
                child[node][index[ch]] = len(child)
                child.append({})
                full.append(0)
            node = child[node][index[ch]]
        full[node] = max(full[node], len(stop))
    v = len(chars)
    ids: dict[tuple[int, frozenset[int]], int] = {(start, frozenset()): 0}
    order: list[tuple[int, frozenset[int]]] = [(start, frozenset())]
    edges: list[tuple[int, int, int]] = []  # (state, char, next state; -k: ended by a
    #                                          stop string of k characters)
    queue = deque([0])
    while queue:
        s = queue.popleft()
        r, begun = order[s]
        row = step[r] if r >= 0 else np.full(v, -1, np.int32)
        sources = begun | ({0} if r >= 0 and accepting[r] else set())
        reach = set(np.flatnonzero(row >= 0).tolist())
        for p in sources:
            reach.update(child[p])
        for c in sorted(reach):
            nodes = frozenset(child[p][c] for p in sources if c in child[p])
            k = max((full[n] for n in nodes), default=0)
            if k:
                edges.append((s, c, -k))
                continue
            key = (int(row[c]), nodes)
            if key not in ids:
                ids[key] = len(order)
                order.append(key)
                queue.append(ids[key])
                if len(order) * v > MAX_CELLS:
                    raise ConfigError(f"the regex and stop strings are too complex: over "
                                      f"{MAX_CELLS // v:,} states", field="regex")
            edges.append((s, c, ids[key]))
    lengths = sorted({-t for _, _, t in edges if t < 0})
    terminal = {k: len(order) + i for i, k in enumerate(lengths)}  # one end state per length
    table = np.full((len(order) + len(terminal), v), -1, np.int32)
    for s, c, t in edges:
        table[s, c] = terminal[-t] if t < 0 else t
    may_end = np.zeros(len(table), bool)
    may_end[:len(order)] = [r >= 0 and bool(accepting[r]) for r, _ in order]
    ends = np.zeros(len(table), np.int32)
    for k, t in terminal.items():
        may_end[t], ends[t] = True, k
    return 0, table, may_end, ends


def _distances(step: np.ndarray, may_end: np.ndarray) -> np.ndarray:
    """Fewest characters from each state to one where the sample may end (NEVER if
    none): a breadth-first search backwards from those states."""
    n = len(step)
    src, _ = np.nonzero(step >= 0)
    dst = step[step >= 0]
    order = np.argsort(dst, kind="stable")
    src, dst = src[order], dst[order]
    bounds = np.searchsorted(dst, np.arange(n + 1))
    dist = np.full(n, NEVER, np.int64)
    queue = deque(np.flatnonzero(may_end).tolist())
    dist[list(queue)] = 0
    while queue:
        s = queue.popleft()
        for p in src[bounds[s]:bounds[s + 1]].tolist():
            if dist[p] == NEVER:
                dist[p] = dist[s] + 1
                queue.append(p)
    return dist
