"""A file's group from its name: ``group_pattern``, a regular expression searched in each file's path relative to its
domain's folder (POSIX separators). Its first capture group, or its whole match when it has none, names the file's
group; a file it does not match keeps the group its folder gives it (utils/sources.py).

A pattern whose naming group can match an empty text is refused before any work: an empty name would join
unrelated files into one group.
"""

from __future__ import annotations

import re

# the standard library's own parser of regular expressions: the one way to know the shortest text a group matches
try:
    from re import _parser as regex_parser  # Python 3.11 and later
except ImportError:  # Python 3.10
    import sre_parse as regex_parser


def naming_group(compiled: re.Pattern[str]) -> int:
    """The group whose text names a file's group: the first capture group, or 0 (the whole match) when there is none."""
    return 1 if compiled.groups else 0


def parsed_group(node: object, group: int) -> object | None:
    """The parsed contents of capture group ``group`` (> 0) within ``node`` (a parsed pattern or a part of one)."""
    if isinstance(node, regex_parser.SubPattern):
        node = node.data
    if not isinstance(node, tuple | list):
        return None
    for part in node:
        if isinstance(part, tuple) and len(part) == 2 and part[0] is regex_parser.SUBPATTERN and part[1][0] == group:
            return part[1][-1]
        found = parsed_group(part, group)
        if found is not None:
            return found
    return None


def shortest_match(pattern: str, group: int) -> int:
    """The fewest characters capture group ``group`` of ``pattern`` can match (0: the whole match)."""
    tree = regex_parser.parse(pattern)
    if group:
        tree = parsed_group(tree, group)
    return tree.getwidth()[0]


def group_pattern_problem(pattern: str, source: str) -> str | None:
    """Why ``pattern`` cannot be the ``group_pattern`` of a run whose images come from ``source``, or None."""
    if not pattern:
        return None
    if source == "demo":
        return "names groups from file names, and the demo has none: use it with source=folder or source=kaggle"
    try:
        compiled = re.compile(pattern)
    except re.error as err:
        return f"not a regular expression: {err}"
    group = naming_group(compiled)
    if shortest_match(pattern, group) == 0:
        naming = "its first capture group" if group else "the pattern (it has no capture group)"
        return f"{naming} can match an empty text, which names no group; e.g. ^([^_]+)_ rather than ^([^_]*)_"
    return None


def pattern_groups(relative_paths: list[str], pattern: str) -> list[str | None]:
    """Each path's group as ``pattern`` names it; None where it does not match (or its group takes no part in the
    match: an optional group), and everywhere when ``pattern`` is "" (grouping by name off)."""
    if not pattern:
        return [None] * len(relative_paths)
    compiled = re.compile(pattern)
    group = naming_group(compiled)
    return [(match.group(group) or None) if (match := compiled.search(path)) else None for path in relative_paths]
