"""The plan: every axis expands, variants are interleaved fairly, bad options are refused."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from benchbot.errors import BenchbotError
from benchbot.models.catalog import ModelFamily, ModelVariant
from benchbot.plan import Settings, build_plan, cell_key
from benchbot.profiles import profile_from_dict


def family(name: str, variants: list[str]) -> ModelFamily:
    return ModelFamily(name, None, "fp32",
                       [ModelVariant(name, v, Path(f"/m/{name}/{v}.tflite"), "0" * 64, 100) for v in variants])


def test_axes_expand_and_keys_are_unique() -> None:
    devices = [profile_from_dict({}, "a"), profile_from_dict({"bench": {"threads": [1, 4]}}, "b")]
    plan = build_plan(devices, [family("m", ["fp32", "int8"])], Settings(), xnnpack=[True, False], batches=[1, 2])
    # a: 1 thread, b: 2 threads; x 2 variants x 2 xnnpack x 2 batch
    assert len(plan.cells_for("a")) == 8 and len(plan.cells_for("b")) == 16
    assert len({c.key for c in plan.cells}) == len(plan.cells)
    assert cell_key("my dev", "m/x", "int8", 2, False, 4) == "my_dev--m_x--int8--t2--noxnn--b4"


def test_variants_rotate_so_none_always_runs_first() -> None:
    variants = ["fp32", "fp16", "dynamic", "int8"]
    device = profile_from_dict({"bench": {"threads": [1, 2, 3, 4]}}, "d")
    plan = build_plan([device], [family("m", variants)], Settings())
    cells = plan.cells_for("d")
    firsts = Counter(cells[i].variant for i in range(0, len(cells), 4))
    assert firsts == Counter({v: 1 for v in variants})
    sequential = build_plan([device], [family("m", variants)], Settings(), interleave=False).cells_for("d")
    assert [c.variant for c in sequential[:4]] == variants and [c.variant for c in sequential[4:8]] == variants


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (Settings(min_runs=0), "--min-runs must be at least 1"),
        (Settings(min_runs=-5), "--min-runs must be at least 1"),
        (Settings(warmup_runs=-1), "--warmup-runs"),
        (Settings(max_seconds=0), "--max-seconds must be more than 0"),
        (Settings(min_seconds=10, max_seconds=5), "--max-seconds must not be less than --min-seconds"),
    ],
)
def test_impossible_settings(settings: Settings, message: str) -> None:
    with pytest.raises(BenchbotError, match=message):
        build_plan([profile_from_dict({}, "a")], [family("m", ["fp32"])], settings)


def test_zero_threads_refused() -> None:
    with pytest.raises(BenchbotError, match="--threads takes thread counts of 1 or more"):
        build_plan([profile_from_dict({}, "a")], [family("m", ["fp32"])], Settings(), threads=[0])


def test_repetitions_run_in_shuffled_rounds() -> None:
    """Round r holds repetition r of every cell once, in an order that differs between rounds and is seeded."""
    variants = ["fp32", "fp16", "dynamic", "int8"]
    device = profile_from_dict({"bench": {"threads": [1, 2], "repetitions": 4}}, "d")
    plan = build_plan([device], [family("m", variants)], Settings(seed=5))
    cells = plan.cells_for("d")
    units = plan.units_for("d")
    assert len(units) == 4 * len(cells) and all(c.repetitions == 4 for c in cells)
    rounds = [units[i * len(cells):(i + 1) * len(cells)] for i in range(4)]
    for r, members in enumerate(rounds, start=1):
        assert {u.repetition for u in members} == {r}
        assert sorted(u.cell.key for u in members) == sorted(c.key for c in cells)
    orders = [tuple(u.cell.key for u in members) for members in rounds]
    assert len(set(orders)) > 1, "every round ran the cells in the same order"
    assert plan.units_for("d") == units  # seeded: the same plan gives the same order (resume relies on it)
    other = build_plan([device], [family("m", variants)], Settings(seed=6)).units_for("d")
    assert [u.cell.key for u in other] != [u.cell.key for u in units]
    # the run's --repetitions overrides the profile's; sequential order runs a cell's repetitions back to back
    three = build_plan([device], [family("m", variants)], Settings(repetitions=3), interleave=False)
    seq = three.units_for("d")
    assert [(u.cell.key, u.repetition) for u in seq[:3]] == [(cells[0].key, 1), (cells[0].key, 2), (cells[0].key, 3)]


def test_repetitions_are_checked() -> None:
    with pytest.raises(BenchbotError, match="--repetitions must be 1 to 1000"):
        build_plan([profile_from_dict({}, "a")], [family("m", ["fp32"])], Settings(repetitions=0))
    with pytest.raises(BenchbotError, match="bench.repetitions"):
        profile_from_dict({"bench": {"repetitions": 0}}, "a")
