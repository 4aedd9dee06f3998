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
    """The one Markdown table writer (pipe tables via DataFrame.to_markdown): cells are text as given, never
    re-parsed as numbers; columns whose header is `numeric` (or for which it returns True) are right-aligned."""
    import pandas as pd

    right = numeric if callable(numeric) else (lambda h: h in numeric)
    frame = pd.DataFrame([[md_cell(c) for c in row] for row in rows], columns=[md_cell(h) for h in headers])
    align = ["right" if right(h) else "left" for h in headers]
    return frame.to_markdown(index=False, tablefmt="pipe", disable_numparse=True, colalign=align).splitlines()
