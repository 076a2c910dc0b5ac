"""What a correction changed, word by word: the diff readers see under "what changed".

Rules (CONTRACT "Corrections readers can see, and feeds"):
- it compares the text readers saw before and after, not the HTML: tags are dropped, and
  whitespace runs count as one space (``projections.plaintext.one_line``), so moving a word into
  bold changes nothing a reader would call a change;
- words and the spaces between them are the units; the result is a run of ``(op, text)``
  pairs, ``=`` kept, ``-`` removed, ``+`` added, neighbours of one op merged, so that joining the
  ``=`` and ``-`` texts gives the text before and the ``=`` and ``+`` texts the text after;
- two changes with only a space between them are one change ("a red" became "an amber", not
  "a" became "an" and "red" became "amber"): what a reader reads as one phrase;
- deterministic (``difflib`` without its junk heuristic): every replay and every projector
  makes the same diff from the same two texts.
"""

from __future__ import annotations

import difflib
import re
from typing import Literal

from projections.plaintext import one_line

Op = Literal["=", "-", "+"]
Diff = tuple[tuple[Op, str], ...]

_WORDS = re.compile(r"\S+|\s+")


def word_diff(before_html: str, after_html: str) -> Diff:
    """The word diff between two bodies' visible texts."""
    before = _WORDS.findall(one_line(before_html))
    after = _WORDS.findall(one_line(after_html))
    out: list[tuple[Op, str]] = []

    def push(op: Op, words: list[str]) -> None:
        if not words:
            return
        text = "".join(words)
        if out and out[-1][0] == op:
            out[-1] = (op, out[-1][1] + text)
        else:
            out.append((op, text))

    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    removed: list[str] = []
    added: list[str] = []
    codes = matcher.get_opcodes()
    for n, (tag, i1, i2, j1, j2) in enumerate(codes):
        kept = before[i1:i2]
        between = 0 < n < len(codes) - 1 and "".join(kept).isspace()
        if tag == "equal" and not between:
            push("-", removed)
            push("+", added)
            removed, added = [], []
            push("=", kept)
        elif tag == "equal":  # a space between two changes: one change, "a red" -> "an amber"
            removed += kept
            added += after[j1:j2]
        else:
            removed += before[i1:i2]
            added += after[j1:j2]
    push("-", removed)
    push("+", added)
    return tuple(out)
