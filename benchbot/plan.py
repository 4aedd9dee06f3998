"""The plan of a run: every cell (device x model x variant x threads x XNNPACK x batch) and its order.

Within a device the variants of a model are interleaved in a balanced rotation,
so no variant always runs first (on a cool chip) or last (on a hot one).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from benchbot.errors import BenchbotError
from benchbot.models.catalog import ModelFamily
from benchbot.profiles import Profile


@dataclass(frozen=True)
class Settings:
    """How each cell is timed; the same for every cell of a run."""

    warmup_runs: int = 10
    warmup_seconds: float = 0.5
    min_runs: int = 100
    min_seconds: float = 1.0
    max_seconds: float = 60.0
    seed: int = 0
    accuracy: bool = True
    telemetry_interval_ms: int | None = None  # None: each profile's own

    def validate(self) -> None:
        checks = [
            (self.warmup_runs >= 0, "--warmup-runs must be 0 or more"),
            (self.warmup_seconds >= 0, "--warmup-seconds must be 0 or more"),
            (self.min_runs >= 1, "--min-runs must be at least 1"),
            (self.min_seconds >= 0, "--min-seconds must be 0 or more"),
            (self.max_seconds > 0, "--max-seconds must be more than 0"),
            (self.max_seconds >= self.min_seconds, "--max-seconds must not be less than --min-seconds"),
            (self.telemetry_interval_ms is None or self.telemetry_interval_ms >= 10,
             "--telemetry-ms must be at least 10"),
        ]
        for ok, message in checks:
            if not ok:
                raise BenchbotError(message)


@dataclass(frozen=True)
class Cell:
    key: str
    device: str
    model: str
    variant: str
    threads: int
    xnnpack: bool
    batch: int
    model_path: str
    model_sha256: str
    model_size: int
    eval_path: str | None
    baseline: str | None
    order: int = 0

    def label(self) -> str:
        extra = ("" if self.xnnpack else " no-xnnpack") + (f" batch {self.batch}" if self.batch != 1 else "")
        return f"{self.model}/{self.variant} t{self.threads}{extra}"


@dataclass
class Plan:
    devices: list[Profile]
    cells: list[Cell]
    settings: Settings
    meta: dict[str, Any] = field(default_factory=dict)

    def cells_for(self, device: str) -> list[Cell]:
        return sorted((c for c in self.cells if c.device == device), key=lambda c: c.order)

    def to_json(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "cells": [asdict(c) for c in sorted(self.cells, key=lambda c: (c.device, c.order))],
            **self.meta,
        }


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """A file-system-safe form of a name (device and model names come from users)."""
    return _UNSAFE.sub("_", text).strip("._") or "x"


def cell_key(device: str, model: str, variant: str, threads: int, xnnpack: bool, batch: int) -> str:
    parts = [safe_name(device), safe_name(model), safe_name(variant), f"t{threads}"]
    if not xnnpack:
        parts.append("noxnn")
    if batch != 1:
        parts.append(f"b{batch}")
    return "--".join(parts)


def build_plan(
    devices: list[Profile],
    families: list[ModelFamily],
    settings: Settings,
    threads: list[int] | None = None,
    xnnpack: list[bool] | None = None,
    batches: list[int] | None = None,
    interleave: bool = True,
) -> Plan:
    """Expand devices x models x variants x threads x XNNPACK x batch into ordered cells."""
    settings.validate()
    validate_axes(threads, batches)
    xnn_axis = xnnpack or [True]
    batch_axis = batches or [1]
    cells: list[Cell] = []
    seen: set[str] = set()
    for profile in devices:
        groups: list[list[Cell]] = []
        for family in families:
            for t in threads or list(profile.threads):
                for x in xnn_axis:
                    for b in batch_axis:
                        group = []
                        for v in family.variants:
                            key = cell_key(profile.name, family.name, v.variant, t, x, b)
                            if key in seen:
                                raise BenchbotError(f"two cells would share the name {key}; rename a model")
                            seen.add(key)
                            group.append(Cell(
                                key=key, device=profile.name, model=family.name, variant=v.variant,
                                threads=t, xnnpack=x, batch=b, model_path=str(v.path),
                                model_sha256=v.sha256, model_size=v.size,
                                eval_path=str(v.eval_path) if v.eval_path and settings.accuracy else None,
                                baseline=v.baseline,
                            ))
                        groups.append(group)
        ordered = interleaved(groups) if interleave else [c for g in groups for c in g]
        cells.extend(_with_order(ordered))
    if not cells:
        raise BenchbotError("the plan is empty: no model variant matched")
    return Plan(devices=list(devices), cells=cells, settings=settings)


def validate_axes(threads: list[int] | None, batches: list[int] | None) -> None:
    if threads is not None and (not threads or any(t < 1 for t in threads)):
        raise BenchbotError("--threads takes thread counts of 1 or more, e.g. --threads 1,2")
    if batches is not None and (not batches or any(b < 1 for b in batches)):
        raise BenchbotError("--batch takes batch sizes of 1 or more")


def interleaved(groups: list[list[Cell]]) -> list[Cell]:
    """Rotate the variant order from one group to the next (balanced, like a Latin square)."""
    out: list[Cell] = []
    for index, group in enumerate(groups):
        if group:
            shift = index % len(group)
            out.extend(group[shift:] + group[:shift])
    return out


def _with_order(cells: list[Cell]) -> list[Cell]:
    from dataclasses import replace

    return [replace(c, order=i) for i, c in enumerate(cells)]


def cell_from_json(data: dict[str, Any]) -> Cell:
    return Cell(**data)


def settings_from_json(data: dict[str, Any]) -> Settings:
    return Settings(**data)
