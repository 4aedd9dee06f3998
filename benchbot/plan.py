"""The plan of a run: every cell (device x model x variant x threads x XNNPACK x batch), its
repetitions, and the order in which a device runs them.

A cell is measured as K repetitions, each a fresh agent process: samples from one
process share its memory layout and its stretch of the device's time, so the
process, not the sample, is the unit that varies from run to run. On a device the
repetitions run in rounds; each round runs every cell once, in a seeded shuffled
order (Google Benchmark's random interleaving), so slow drift of the device spreads
over all cells instead of landing on one.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from benchbot.errors import BenchbotError
from benchbot.models.catalog import ModelFamily
from benchbot.profiles import Profile
from benchbot.vocab import cell_label


@dataclass(frozen=True)
class Settings:
    """How each repetition of a cell is timed; the same for every cell of a run.

    These are the host's only defaults: the CLI, the library and the agent's job take them from here.
    Warmup and loop limits apply to each repetition (one agent process).
    """

    warmup_runs: int = 5
    warmup_seconds: float = 0.05
    min_runs: int = 20
    min_seconds: float = 0.15
    max_seconds: float = 60.0
    seed: int = 0
    accuracy: bool = True
    telemetry_interval_ms: int | None = None  # None: each profile's own
    repetitions: int | None = None  # None: each profile's own

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
            (self.repetitions is None or 1 <= self.repetitions <= 1000, "--repetitions must be 1 to 1000"),
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
    repetitions: int = 1  # runs stored before repetitions existed have one

    def label(self) -> str:
        return cell_label(self.model, self.variant, self.threads, self.xnnpack, self.batch)


@dataclass(frozen=True)
class Unit:
    """One repetition of one cell: what one agent process measures."""

    cell: Cell
    repetition: int  # 1-based

    def label(self) -> str:
        return f"{self.cell.label()} rep {self.repetition}/{self.cell.repetitions}"


@dataclass
class Plan:
    devices: list[Profile]
    cells: list[Cell]
    settings: Settings
    meta: dict[str, Any] = field(default_factory=dict)

    def cells_for(self, device: str) -> list[Cell]:
        return sorted((c for c in self.cells if c.device == device), key=lambda c: c.order)

    def units_for(self, device: str) -> list[Unit]:
        """The device's repetitions in the order they run: round by round, each round shuffled."""
        return schedule(self.cells_for(device), self.settings.seed, device, bool(self.meta.get("interleave", True)))

    @property
    def units(self) -> list[Unit]:
        return [u for p in self.devices for u in self.units_for(p.name)]

    def to_json(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "cells": [asdict(c) for c in sorted(self.cells, key=lambda c: (c.device, c.order))],
            **self.meta,
        }


def schedule(cells: list[Cell], seed: int, device: str, interleave: bool = True) -> list[Unit]:
    """Round r runs repetition r of every cell that has one, in an order shuffled per round.

    The shuffle is seeded by the run's seed, the device and the round, so a resumed run (and a
    reader of the manifest) gets the same order. With `interleave` off (`--order sequential`)
    every repetition of a cell runs back to back, cells in plan order: what drift then does to
    one cell is what interleaving prevents.
    """
    if not interleave:
        return [Unit(c, r) for c in cells for r in range(1, c.repetitions + 1)]
    rounds = max((c.repetitions for c in cells), default=0)
    units: list[Unit] = []
    for r in range(1, rounds + 1):
        members = [c for c in cells if c.repetitions >= r]
        random.Random(f"{seed}/{device}/{r}").shuffle(members)
        units.extend(Unit(c, r) for c in members)
    return units


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
    """Expand devices x models x variants x threads x XNNPACK x batch into ordered cells.

    Each cell gets the run's repetitions, or its device profile's when the run sets none.
    """
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
                                repetitions=settings.repetitions or profile.repetitions,
                            ))
                        groups.append(group)
        ordered = interleaved(groups) if interleave else [c for g in groups for c in g]
        cells.extend(_with_order(ordered))
    if not cells:
        raise BenchbotError("the plan is empty: no model variant matched")
    return Plan(devices=list(devices), cells=cells, settings=settings, meta={"interleave": interleave})


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
    return [replace(c, order=i) for i, c in enumerate(cells)]


def cell_from_json(data: dict[str, Any]) -> Cell:
    return Cell(**data)


def settings_from_json(data: dict[str, Any]) -> Settings:
    return Settings(**data)
