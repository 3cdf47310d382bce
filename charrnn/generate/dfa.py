"""The child process that builds a regular expression's DFA with outlines-core, for
``automaton.py``: it imports nothing heavy (no numpy), so it starts in a blink, and its
parent can stop it when an expression's DFA grows too large to build in time.

Request on stdin: JSON ``{"pattern", "chars"}``. Reply on stdout: one JSON line (start
state, final states, number of states; or an error), then the (states, V) int32 table
of next states, -1 where a character is not allowed.
"""

from __future__ import annotations

import json
import sys
from array import array


def main(max_cells: int) -> None:
    """The child process: a JSON request on stdin; on stdout a JSON line (start state,
    final states, number of states, or an error) and the (states, V) int32 table."""
    request = json.loads(sys.stdin.buffer.read())
    chars, out = request["chars"], sys.stdout.buffer
    try:
        from outlines_core import Index, Vocabulary

        eos = len(chars)  # outlines wants an end token; final states loop on it
        index = Index(request["pattern"], Vocabulary(eos, {c: [i] for i, c in
                                                           enumerate(chars)}))
        moves = index.get_transitions()
    except Exception as e:  # noqa: BLE001  (any failure is reported as the regex's error)
        out.write(json.dumps({"error": f"{e}"}).encode() + b"\n")
        return
    names = {s: i for i, s in enumerate(sorted(moves))}
    if len(names) * len(chars) > max_cells:
        out.write(json.dumps({"error": f"too many states ({len(names):,}) for a table over "
                                       f"{len(chars)} characters"}).encode() + b"\n")
        return
    table = array("i", [-1]) * (len(names) * len(chars))
    for s, moves_s in moves.items():
        base = names[s] * len(chars)
        for c, t in moves_s.items():
            if c != eos:
                table[base + c] = names[t]
    final = [names[s] for s in index.get_final_states() if s in names]
    meta = {"start": names[index.get_initial_state()], "final": final, "states": len(names)}
    out.write(json.dumps(meta).encode() + b"\n")
    out.write(table.tobytes())


if __name__ == "__main__":
    main(int(sys.argv[1]))
