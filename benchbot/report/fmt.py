"""Number formatting for people: significant digits, never a sub-millisecond latency shown as 0.000."""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Sequence
from typing import Any

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def missing(value: Any) -> bool:
    """None, NaN or pandas NA."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN and pd.NA
    except (TypeError, ValueError):
        return False


def decimals_for(value: float, digits: int = 3, most: int = 9) -> int:
    """Decimal places that show `value` with `digits` significant digits (0 for large numbers)."""
    if missing(value) or value == 0 or not math.isfinite(value):
        return 0
    exponent = math.floor(math.log10(abs(value)))
    return max(0, min(most, digits - 1 - exponent))


def fixed(value: Any, decimals: int) -> str:
    if missing(value):
        return ""
    return f"{float(value):.{decimals}f}"


def sig(value: Any, digits: int = 3) -> str:
    """`digits` significant digits in plain notation: 0.00412, 0.0593, 12.3, 716, 11702."""
    if missing(value):
        return ""
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    return fixed(value, decimals_for(value, digits))


def interval(lo: Any, hi: Any, decimals: int, most_extra: int = 3) -> str:
    """lo–hi with at least `decimals` places, more when the two ends would otherwise print the same."""
    if missing(lo) or missing(hi):
        return ""
    for extra in range(most_extra + 1):
        a, b = fixed(lo, decimals + extra), fixed(hi, decimals + extra)
        if a != b:
            break
    return f"{a}–{b}"


def latency_decimals(p50: Any, digits: int = 3) -> int:
    """One decimal count per row (p50, its CI, p90, p99), chosen from the median."""
    if missing(p50):
        return 3
    return decimals_for(float(p50), digits)


def ratio(value: Any) -> str:
    """A ratio of medians to 3 significant digits: 1.00, 0.547, 12.3."""
    return sig(value, 3)


def pvalue(p: Any) -> str:
    if missing(p):
        return ""
    p = float(p)
    if p == 0.0:
        return "<1e-300"
    if p < 1e-3:
        return f"{p:.1e}"
    return f"{p:.3f}"


def name(value: Any) -> str:
    """A model, variant, device or run name on one line: control characters (a newline in a file name) shown
    as escapes, so a hostile name cannot split a table row or a CSV record."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        else:  # other control and format characters, line and paragraph separators
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
    return "".join(out)


def md_cell(value: Any) -> str:
    """A Markdown table cell that cannot end early or split its row: control characters shown as escapes
    (fmt.name), then backslashes and pipes escaped."""
    return name(value).replace("\\", "\\\\").replace("|", "\\|")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
                   numeric: Container[str] | Callable[[str], bool] = ()) -> list[str]:
    """The one Markdown table writer (pipe tables as DataFrame.to_markdown writes them): cells are text as given,
    never re-parsed as numbers; columns whose header is `numeric` (or for which it returns True) are right-aligned.

    Tables of plain text are written here, exactly as tabulate would; anything else (other characters, whose
    width tabulate measures with wcwidth, or no rows) goes through DataFrame.to_markdown. Importing tabulate
    and wcwidth for the terminal report's few tables was up to ~50 ms of it.
    """
    right = numeric if callable(numeric) else (lambda h: h in numeric)
    body = [[md_cell(c) for c in row] for row in rows]
    names = [md_cell(h) for h in headers]
    align = ["right" if right(h) else "left" for h in headers]
    fast = _pipe_table(names, body, align)
    if fast is not None:
        return fast
    import pandas as pd

    frame = pd.DataFrame(body, columns=names)
    return frame.to_markdown(index=False, tablefmt="pipe", disable_numparse=True, colalign=align).splitlines()


#: Characters besides printable ASCII whose width tabulate (wcwidth) takes as one column, as len() does.
_NARROW = frozenset("Δ×→°µ…–—±≤≥·≈")


def _plain(text: str) -> bool:
    return text.isprintable() and (text.isascii() or all(ch.isascii() or ch in _NARROW for ch in text))


def _pipe_table(headers: list[str], rows: list[list[str]], align: list[str]) -> list[str] | None:
    """tabulate's "pipe" table of these strings (disable_numparse, colalign `align`), or None when they are not
    all plain one-column-per-character text in full rows (then tabulate writes it)."""
    if not rows or any(len(row) != len(headers) for row in rows):
        return None
    if not all(_plain(h) for h in headers) or not all(_plain(c) for row in rows for c in row):
        return None
    cells = [[c.strip() for c in row] for row in rows]  # tabulate strips aligned cells
    widths = [max(len(h) + 2, *(len(row[j]) for row in cells)) for j, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.rjust(w) if a == "right" else v.ljust(w)
                                 for v, w, a in zip(values, widths, align)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if a == "right" else (":" + "-" * (w + 1))
                          for w, a in zip(widths, align)) + "|"
    return [line(headers), rule, *(line(row) for row in cells)]
