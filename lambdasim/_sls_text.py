"""Where the Serverless Framework's ``${...}`` variables are in a text, and the sources of one.

Plain text scanning for :mod:`lambdasim._templates` (which resolves them): nested ``${...}`` and
quoted strings are skipped over, as the Serverless Framework reads them.
"""

from __future__ import annotations


def variable_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each top-level ``${...}`` in ``text`` (end is past the closing brace)."""
    spans: list[tuple[int, int]] = []
    i = text.find("${")
    while i != -1:
        depth, j, quote = 0, i, ""
        while j < len(text):
            c = text[j]
            if quote:
                quote = "" if c == quote else quote
            elif c in "'\"" and depth:
                quote = c
            elif text.startswith("${", j):
                depth += 1
                j += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if depth:
            break  # unclosed: left as it is
        spans.append((i, j + 1))
        i = text.find("${", j + 1)
    return spans


def split_sources(text: str) -> list[str]:
    """``text`` split at the commas outside quotes and nested ``${...}``."""
    parts, depth, quote, start = [], 0, "", 0
    for j, c in enumerate(text):
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif text.startswith("${", j):
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:j])
            start = j + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]
