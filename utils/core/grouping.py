"""A file's group from its name: ``group_pattern``, a regular expression searched in each file's path relative to its
domain's folder (POSIX separators). Its first capture group, or its whole match when it has none, names the file's
group; a file it does not match keeps the group its folder gives it (utils/data/sources.py).

A pattern that is not a regular expression is refused before any work. A match whose naming group is empty (or takes
no part in the match) names nothing: the file keeps its folder group, as an unmatched one does, so an empty name never
joins unrelated files.
"""

from __future__ import annotations

import re


def naming_group(compiled: re.Pattern[str]) -> int:
    """The group whose text names a file's group: the first capture group, or 0 (the whole match) when there is none."""
    return 1 if compiled.groups else 0


def group_pattern_problem(pattern: str, source: str) -> str | None:
    """Why ``pattern`` cannot be the ``group_pattern`` of a run whose images come from ``source``, or None."""
    if not pattern:
        return None
    if source == "demo":
        return "names groups from file names, and the demo has none: use it with source=folder or source=kaggle"
    try:
        re.compile(pattern)
    except re.error as err:
        return f"not a regular expression: {err}"
    return None


def pattern_groups(relative_paths: list[str], pattern: str) -> list[str | None]:
    """Each path's group as ``pattern`` names it; None where it does not match (or its group takes no part in the
    match: an optional group), and everywhere when ``pattern`` is "" (grouping by name off)."""
    if not pattern:
        return [None] * len(relative_paths)
    compiled = re.compile(pattern)
    group = naming_group(compiled)
    return [(match.group(group) or None) if (match := compiled.search(path)) else None for path in relative_paths]
