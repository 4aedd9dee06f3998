"""Optional report sections: extra blocks shown after the main table, in every output format.

A section is a callable taking the report's `ReportData` and returning a
`Section` (or None when it has nothing to say about these runs). The same
Section feeds the terminal (`markdown` rendered by rich), `--format md`,
`--format html` (`html`, else the markdown shown as preformatted text, plus
`images` embedded) and `--format json` (`data`, under "sections").

`default_sections()` is what `benchbot report` uses: the accuracy/size
trade-off section from `benchbot.report.tradeoff` (its `report_section`
callable) when that module exists, then nothing else. A caller of
`benchbot.api.report_runs` can pass its own list instead.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchbot.report.data import ReportData


@dataclass
class Section:
    title: str
    markdown: str = ""
    html: str | None = None          # an HTML fragment; None: the markdown as preformatted text
    images: list[Path] = field(default_factory=list)  # PNG or SVG files, embedded in the HTML report
    data: Any = None                 # JSON-serialisable; exported under "sections" by --format json
    name: str = ""                   # a stable key for the JSON export (default: the title)


class LazyHtmlSection(Section):
    """A Section whose `html` is rendered when first read: only `--format html` reads it, and rendering the
    trade-off's fragment (and importing jinja2 for it) was ~40 ms of every terminal report."""

    def __init__(self, render: Callable[[], str], **fields: Any) -> None:
        self._render: Callable[[], str] | None = None
        self._html: str | None = None
        super().__init__(**fields)  # sets html (None) through the setter
        self._render = render

    @property
    def html(self) -> str | None:
        if self._render is not None:
            self._html, self._render = self._render(), None
        return self._html

    @html.setter
    def html(self, value: str | None) -> None:
        """A value set replaces the renderer."""
        self._render = None
        self._html = value


SectionFn = Callable[["ReportData"], "Section | None"]

#: Modules that may provide a `report_section(data) -> Section | None` callable, in display order.
OPTIONAL_SECTION_MODULES = ("benchbot.report.tradeoff",)


def default_sections() -> list[SectionFn]:
    found: list[SectionFn] = []
    for name in OPTIONAL_SECTION_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written (yet); any other missing import is a real error
                continue
            raise
        fn = getattr(module, "report_section", None)
        if callable(fn):
            found.append(fn)
    return found


def render_sections(data: ReportData, sections: list[SectionFn] | None) -> list[Section]:
    out = []
    for fn in default_sections() if sections is None else sections:
        section = fn(data)
        if section is not None:
            out.append(section)
    return out
