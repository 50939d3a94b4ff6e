"""Plain-text and Markdown tables (every table ratt prints or writes goes through here)."""

from __future__ import annotations

from collections.abc import Sequence


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 epoch``, ``3 epochs`` (``many``: an irregular plural, e.g. ``processes``)."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def text_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None
) -> str:
    """Columns padded to their widest cell, two spaces apart, a dashed rule under the header.

    ``right[i]`` right-aligns column ``i`` (numbers); default: left-aligned.
    """
    right = list(right) if right is not None else [False] * len(header)
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = [
            str(c).rjust(w) if r else str(c).ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in cells) + " |" for cells in rows]
    return "\n".join(lines)
