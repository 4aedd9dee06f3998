"""`benchbot report`: every number people read is recomputed here from the stored samples with numpy.

One real run of the smallest zoo family on two devices (this machine as itself and
as a stand-in flagged emulated), with threads swept, shared by the module.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import benchbot
from benchbot.models.catalog import ZOO_DIR, load_family
from benchbot.report import fmt
from benchbot.report.build import build_report
from benchbot.report.data import fingerprint_line
from benchbot.report.plots import cell_trace, plot_run, timeline_figure
from tests.conftest import QUICK, first_run_headline_by_hand, run_cli
from tests.test_compare import welch_by_hand

# The model folder the tests draw families from (the bundled zoo; another folder of families for a dry run).
MODELS = Path(os.environ.get("BENCHBOT_TEST_ZOO") or ZOO_DIR)
FAMILIES = sorted(p.parent.name for p in MODELS.glob("*/family.json"))

pytestmark = pytest.mark.skipif(not FAMILIES, reason="the model zoo is not built")


def smallest_family() -> Path:
    return min((MODELS / f for f in FAMILIES), key=lambda p: sum(v.size for v in load_family(p).variants))


def env_for(results: Path, profiles: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, BENCHBOT_RESULTS=str(results))
    env.pop("COLUMNS", None)
    if profiles:
        env["BENCHBOT_PROFILES"] = str(profiles)
    else:
        env.pop("BENCHBOT_PROFILES", None)
    return env


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("report")
    profiles = tmp / "profiles"
    profiles.mkdir()
    (profiles / "local.toml").write_text('transport = "local"\n')
    # the same machine again, declared emulated: real samples, labelled like a QEMU device
    (profiles / "twin.toml").write_text('transport = "local"\nemulated = true\ndescription = "stand-in"\n')
    env = env_for(tmp / "results", profiles)
    family = smallest_family()
    variants = ",".join(v.variant for v in load_family(family).variants[:2])
    swept = run_cli(["run", "--devices", "local,twin", "--models", str(family), "--variants", variants,
                     "--threads", "1,2", "--telemetry-ms", "20", "--no-accuracy", "--quiet", *QUICK], env)
    assert swept.returncode == 0, swept.stderr
    run = benchbot.load_run(results=tmp / "results")
    second = run_cli(["run", "--devices", "local", "--models", str(family), "--variants", variants,
                      "--threads", "1", "--no-accuracy", "--quiet", *QUICK], env)
    assert second.returncode == 0, second.stderr
    other = benchbot.load_run(results=tmp / "results")
    assert other.run_id != run.run_id
    return {"tmp": tmp, "env": env, "run": run, "other": other, "family": family.name}


def loop(run: benchbot.Run, row: pd.Series | dict) -> np.ndarray:
    s = run.samples
    mask = ((s["device"] == row["device"]) & (s["model"] == row["model"]) & (s["variant"] == row["variant"])
            & (s["threads"] == int(row["threads"])) & (s["phase"] == "loop"))
    return s[mask]["latency_ns"].to_numpy() / 1e6


def rep_medians(run: benchbot.Run, row: pd.Series | dict) -> list[float]:
    """Each repetition's median loop latency, straight from the samples."""
    s = run.samples
    mask = ((s["device"] == row["device"]) & (s["model"] == row["model"]) & (s["variant"] == row["variant"])
            & (s["threads"] == int(row["threads"])) & (s["phase"] == "loop"))
    return [float(np.median(g["latency_ms"])) for _, g in s[mask].groupby("repetition")]


def headline_by_hand(medians: list[float]) -> tuple[float, float, float]:
    """Geometric mean and the next-run interval of a first run (tests.conftest.first_run_headline_by_hand)."""
    return first_run_headline_by_hand(medians)


def median_ci_by_binomial(values: np.ndarray) -> tuple[float, float]:
    """The order-statistic interval, found independently with scipy's binomial distribution."""
    from scipy.stats import binom

    x = np.sort(values)
    n = x.size
    k = np.arange(1, n + 1)
    lo = k[binom.cdf(k - 1, n, 0.5) <= 0.025].max()  # P(B < lo) within the lower tail
    hi = k[binom.sf(k - 1, n, 0.5) <= 0.025].min()   # P(B >= hi) within the upper tail
    return float(x[lo - 1]), float(x[hi - 1])


def shown_equals(text: str, value: float) -> None:
    """A displayed number equals `value` to its last printed digit and keeps 3 significant digits."""
    assert text, f"nothing shown for {value}"
    decimals = len(text.split(".")[1]) if "." in text else 0
    assert abs(float(text) - value) <= 0.5 * 10 ** -decimals + 1e-12, (text, value)
    digits = text.replace(".", "").lstrip("0")
    assert len(digits) >= 3 or value == 0, f"{text} hides digits of {value}"


def printed_equals(text: str, value: float) -> None:
    """A displayed number equals `value` to its last printed digit (interval ends keep the p50's decimals)."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    assert abs(float(text) - value) <= 0.5 * 10 ** -decimals + 1e-12, (text, value)


def parse_md(text: str) -> list[dict[str, str]]:
    """The main table: the first block of | lines (optional sections after it may hold tables of their own)."""
    lines: list[str] = []
    for line in text.splitlines():
        if not line.startswith("|"):
            if lines:
                break
            continue  # the answer above the table
        lines.append(line)
    headers = [h.strip() for h in lines[0].strip("|").split("|")]
    return [dict(zip(headers, (c.strip() for c in ln.strip("|").split("|")))) for ln in lines[2:]]


def check_row(run: benchbot.Run, shown: dict[str, str], device: str, baseline_rows: dict) -> None:
    key = {"device": device, "model": shown["model"], "variant": shown["variant"], "threads": shown["thr"]}
    x = loop(run, key)
    assert int(shown["runs"]) == x.size >= 40 and shown["reps"] == "2"
    medians = rep_medians(run, key)
    p50, lo_ms, hi_ms = headline_by_hand(medians)
    shown_equals(shown["p50 ms"], p50)
    shown_equals(shown["p90 ms"], float(np.percentile(x, 90)))
    shown_equals(shown["p99 ms"], float(np.percentile(x, 99)))
    lo, hi = shown["next run 95%"].split("–")
    printed_equals(lo, lo_ms)
    printed_equals(hi, hi_ms)
    base = baseline_rows[(device, shown["model"], shown["thr"])]
    if shown["variant"] == base["variant"]:
        assert shown["vs fastest"] == "ref"
    else:
        m = re.fullmatch(r"(tie )?([\d.]+)× \(([\d.]+)–([\d.]+)\)", shown["vs fastest"])
        assert m, shown["vs fastest"]
        ratio, r_lo, r_hi, _ = welch_by_hand(rep_medians(run, {**key, "variant": base["variant"]}), medians)
        assert float(m.group(2)) == pytest.approx(ratio, abs=0.006 * max(1, ratio))
        printed_equals(m.group(3), r_lo)
        printed_equals(m.group(4), r_hi)
        assert bool(m.group(1)) == (r_lo <= 1 <= r_hi)  # a tie is named exactly when the interval holds 1


def fastest(run: benchbot.Run) -> dict:
    out = {}
    for (device, model, threads), g in run.summary.groupby(["device", "model", "threads"]):
        medians = {v: headline_by_hand(rep_medians(run, {"device": device, "model": model, "variant": v,
                                                         "threads": threads}))[0] for v in g["variant"]}
        out[(device, model, str(threads))] = {"variant": min(medians, key=medians.get)}
    return out


def test_markdown_numbers_equal_statistics_of_the_samples(setup: dict) -> None:
    run = setup["run"]
    done = run_cli(["report", run.run_id, "--format", "md", "--no-plots"], setup["env"])
    assert done.returncode == 0, done.stderr
    rows = parse_md(done.stdout)
    assert len(rows) == len(run.summary) == 2 * 2 * 2  # devices x threads x variants
    base = fastest(run)
    for shown in rows:
        device = "twin" if shown["device"] == "twin (emulated)" else shown["device"]
        assert device in ("local", "twin")
        check_row(run, shown, device, base)
    # rows grouped by device: real hardware first, then the emulated twin
    devices = [r["device"] for r in rows]
    assert devices == sorted(devices, key=lambda d: d != "local")
    assert "mixes emulated devices (twin) with real hardware (local)" in done.stdout
    assert "`~`" in done.stdout and "few samples" in done.stdout  # the flags legend


def test_csv_and_json_carry_full_precision_and_the_relative_columns(setup: dict) -> None:
    run, env = setup["run"], setup["env"]
    out = setup["tmp"] / "cells.csv"
    assert run_cli(["report", run.run_id, "--format", "csv", "-o", str(out), "--no-plots"], env).returncode == 0
    frame = pd.read_csv(out)
    js = json.loads(run_cli(["report", run.run_id, "--format", "json", "--no-plots"], env).stdout)
    assert js["format"] == "benchbot-summary" and js["baseline"] == "fastest"
    assert [c["run_id"] for c in js["cells"]] == list(frame["run_id"])
    assert js["runs"][0]["devices"]["local"]["cores"] >= 1
    for (_, row), cell in zip(frame.iterrows(), js["cells"]):
        x = loop(run, row)
        p50, lo, hi = headline_by_hand(rep_medians(run, row))
        for name, value in (("p50_ms", p50), ("p90_ms", np.percentile(x, 90)),
                            ("p99_ms", np.percentile(x, 99)), ("mean_ms", x.mean()), ("max_ms", x.max()),
                            ("p50_ci_lo_ms", lo), ("p50_ci_hi_ms", hi)):
            assert row[name] == pytest.approx(value, rel=1e-9)
            assert cell[name] == pytest.approx(value, rel=1e-9)
        assert cell["rep_p50_ms"] == pytest.approx(rep_medians(run, row), rel=1e-9)
        assert (row["repetitions"], row["reps_ok"]) == (2, 2)
        group = frame[(frame["device"] == row["device"]) & (frame["model"] == row["model"])
                      & (frame["threads"] == row["threads"])]
        base = group.loc[group["p50_ms"].idxmin()]
        assert row["rel_baseline"] == base["variant"] == cell["rel_baseline"]
        assert row["rel_ratio"] == pytest.approx(p50 / base["p50_ms"], rel=1e-9)
        if row["variant"] != base["variant"]:
            _, r_lo, r_hi, p = welch_by_hand(rep_medians(run, base), rep_medians(run, row))
            assert (row["rel_ci_lo"], row["rel_ci_hi"], row["rel_p"]) == pytest.approx((r_lo, r_hi, p), rel=1e-9)
            assert bool(row["rel_tie"]) == (r_lo <= 1 <= r_hi)
        assert bool(row["emulated"]) == (row["device"] == "twin")
        assert ("emulated" in str(row["flags"])) == (row["device"] == "twin")


def test_baseline_variant_ratios_stay_within_one_device(setup: dict) -> None:
    run = setup["run"]
    variant = load_family(MODELS / setup["family"]).variants[0].variant
    data = build_report([run], baseline=variant)
    s = data.summary
    for _, row in s.iterrows():
        base = s[(s["device"] == row["device"]) & (s["model"] == row["model"]) & (s["threads"] == row["threads"])
                 & (s["variant"] == variant)].iloc[0]
        assert row["rel_baseline"] == variant
        assert row["rel_ratio"] == pytest.approx(row["p50_ms"] / base["p50_ms"])
        # never against the other device, even though it is the same model and thread count
        other = s[(s["device"] != row["device"]) & (s["model"] == row["model"]) & (s["threads"] == row["threads"])
                  & (s["variant"] == variant)].iloc[0]
        if other["p50_ms"] != base["p50_ms"]:
            assert row["rel_ratio"] != pytest.approx(row["p50_ms"] / other["p50_ms"], rel=1e-12)
    md = run_cli(["report", run.run_id, "--format", "md", "--no-plots", "--baseline", variant], setup["env"]).stdout
    rows = parse_md(md)
    assert all(r[f"vs {variant}"] == "ref" for r in rows if r["variant"] == variant)
    bad = run_cli(["report", run.run_id, "--baseline", "nosuchvariant", "--no-plots"], setup["env"])
    assert bad.returncode == 2 and "nosuchvariant" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_terminal_table_has_a_section_per_device_and_a_legend(setup: dict) -> None:
    run = setup["run"]
    done = run_cli(["report", run.run_id, "--no-plots"], setup["env"])
    assert done.returncode == 0, done.stderr
    answer_at = done.stdout.index("Answer")
    out = done.stdout[done.stdout.index("--max-accuracy-drop"):]  # the tables come after the answer
    local_at, twin_at = out.index("\nlocal"), out.index("twin (emulated) — emulated, not comparable")
    end = out.index("Note: This report mixes")  # after the last device table come notes and sections
    assert local_at < twin_at < end
    # every row of a device's table sits between its title and the next device's title
    assert out[local_at:twin_at].count(setup["family"]) == len(run.summary) // 2
    assert out[twin_at:end].count(setup["family"]) == len(run.summary) // 2
    answer = done.stdout[answer_at:done.stdout.index("--max-accuracy-drop")]
    assert answer.count(f"{setup['family']} t") == 4  # per device, per thread count: the fastest (or a tie)
    assert "tied for fastest" in answer or "fastest " in answer
    for header in ("reps", "p50 ms", "next run 95%", "rep CV", "p90 ms", "p99 ms", "inf/s", "vs fastest", "CPU %", "peak RSS MB",
                   "temp °C", "flags"):
        assert header in out
    assert "Flags: ~ unstable  T throttled  E emulated  n few samples" in out
    assert "mixes emulated devices" in out


def test_multi_run_report_keeps_run_ids(setup: dict) -> None:
    run, other, env = setup["run"], setup["other"], setup["env"]
    md = run_cli(["report", run.run_id, other.run_id, "--format", "md", "--no-plots"], env).stdout
    rows = parse_md(md)
    assert len(rows) == len(run.summary) + len(other.summary)
    assert {r["run"] for r in rows} == {run.run_id, other.run_id}
    for r in rows:
        source = run if r["run"] == run.run_id else other
        device = "twin" if r["device"].startswith("twin") else r["device"]
        key = {"device": device, "model": r["model"], "variant": r["variant"], "threads": r["thr"]}
        shown_equals(r["p50 ms"], headline_by_hand(rep_medians(source, key))[0])
    assert f"local appears in runs {run.run_id}, {other.run_id}" in md
    js = json.loads(run_cli(["report", run.run_id, other.run_id, "--format", "json", "--no-plots"], env).stdout)
    assert [r["run_id"] for r in js["runs"]] == [run.run_id, other.run_id]
    # relative columns never mix runs: each run's group has its own "ref"
    refs = {(c["run_id"], c["device"], c["threads"]) for c in js["cells"] if c["rel_ratio"] == 1.0}
    assert {(other.run_id, "local", 1), (run.run_id, "local", 1)} <= refs


def test_plots_for_a_thread_sweep(setup: dict) -> None:
    run = setup["run"]
    done = run_cli(["report", run.run_id, "--plot-format", "both"], setup["env"])
    assert done.returncode == 0, done.stderr
    plots = run.folder / "plots"
    expected = {f"{kind}-{device}.{ext}" for kind in ("latency", "throughput", "scaling", "timelines")
                for device in ("local", "twin") for ext in ("png", "svg")}
    names = {p.name for p in plots.iterdir() if p.is_file()}
    assert expected <= names
    assert not [n for n in names - expected if n.startswith(("latency", "throughput", "scaling", "timelines"))]
    for name in expected:
        assert (plots / name).stat().st_size > 10_000, name
    timelines = sorted((plots / "cells").glob("*-timeline.png"))
    assert [p.name for p in timelines] == sorted(f"{k}-timeline.png" for k in run.summary["key"])
    assert all(p.stat().st_size > 20_000 for p in timelines)
    # a second report reuses the plots whose inputs did not change (by content: touching a file is no change)
    # and redraws those whose inputs did
    stamps = {p: p.stat().st_mtime_ns for p in [*timelines, *(plots / n for n in expected)]}
    for attempt in run.attempts[run.summary["key"].iloc[1]]:
        touched = attempt.folder / "events.jsonl"
        os.utime(touched, ns=(touched.stat().st_atime_ns, max(stamps.values()) + 10**9))
    changed = run.best(run.summary["key"].iloc[0]).folder / "events.jsonl"
    changed.write_text(changed.read_text() + '{"event":"note","source":"test"}\n')
    again = plot_run(benchbot.load_run(run.folder), plots, formats=("png", "svg"), cells=True)
    assert sorted(p for f in again if f.kind == "timeline" for p in f.paths) == timelines
    redrawn = {p for p in stamps if p.stat().st_mtime_ns != stamps[p]}
    device = run.summary["device"].iloc[0]
    assert redrawn == {plots / "cells" / f"{run.summary['key'].iloc[0]}-timeline.png",
                       *(plots / f"{kind}-{device}.{ext}" for kind in ("latency", "throughput", "scaling", "timelines")
                         for ext in ("png", "svg"))}
    # without a sweep there is no scaling plot
    other = setup["other"]
    assert run_cli(["report", other.run_id, "--cell-plots", "none"], setup["env"]).returncode == 0  # PNG by default
    assert sorted(p.name for p in (other.folder / "plots").glob("*.png")) == ["latency-local.png",
                                                                            "throughput-local.png"]


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.images: list[tuple[str, str]] = []
        self.cells: dict[str, dict[str, str]] = {}
        self._row: str | None = None
        self._col: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        for name in ("src", "href", "data", "action", "poster"):
            if a.get(name):
                self.refs.append(a[name])
        if tag == "img":
            self.images.append((a.get("alt", ""), a.get("src", "")))
        if tag == "tr" and "data-cell" in a:
            self._row = a["data-cell"]
            self.cells[self._row] = {}
        if tag == "td" and self._row:
            self._col = a.get("data-col")
            self.cells[self._row][self._col] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._col = None

    def handle_data(self, data: str) -> None:
        if self._row and self._col:
            self.cells[self._row][self._col] += data


def test_html_is_one_self_contained_file_with_the_same_numbers(setup: dict) -> None:
    run = setup["run"]
    out = setup["tmp"] / "mail" / "report.html"
    out.parent.mkdir()
    done = run_cli(["report", run.run_id, "--format", "html", "-o", str(out), "--plot-format", "png"], setup["env"])
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]  # nothing beside it
    text = out.read_text()
    page = _Html()
    page.feed(text)
    # no external reference of any kind: every src/href is an embedded data: URI or an in-page anchor
    assert page.refs and all(r.startswith("data:") or r.startswith("#") for r in page.refs), page.refs[:3]
    assert not re.search(r"https?://|url\(|@import|<link|<script", text)
    assert "<style>" in text
    assert all(src.startswith("data:image/") for _, src in page.images)
    ours = re.compile(r"latency distribution|throughput of the timed loop|thread scaling|timeline")
    pngs = [base64.b64decode(src.split(",", 1)[1]) for alt, src in page.images
            if ours.search(alt) and src.startswith("data:image/png;base64,")]
    # per device: latency, throughput, thread scaling; then one timeline per cell (sections may add more images)
    assert len(pngs) == 2 * 3 + len(run.summary)
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") and len(p) > 10_000 for p in pngs)
    for phrase in ("unstable: the repetitions' medians vary", "emulated: measured under QEMU", "Answer", "mixes emulated devices",
                   fingerprint_line(run.fingerprints["local"])):
        assert phrase in html.unescape(text)
    assert len(page.cells) == len(run.summary)
    for ident, shown in page.cells.items():
        _run_id, device, model, variant, threads, _xnn, _batch = ident.split("|")
        key = {"device": device, "model": model, "variant": variant, "threads": threads}
        x = loop(run, key)
        assert int(shown["count"]) == x.size
        p50, lo_ms, _ = headline_by_hand(rep_medians(run, key))
        shown_equals(shown["p50_ms"], p50)
        shown_equals(shown["p99_ms"], float(np.percentile(x, 99)))
        lo, hi = shown["p50_ci"].split("–")
        printed_equals(lo, lo_ms)
        assert ("E" in shown["flags"]) == (device == "twin")


def test_absent_sensors_are_said_absent_not_zero(setup: dict) -> None:
    run = setup["run"]
    key = run.summary["key"].iloc[0]
    trace = cell_trace(run, key)
    tele = run.telemetry
    if tele["temp_c"].isna().all():
        assert trace.absent["temp"].startswith("absent")
    else:
        assert "temp" not in trace.absent
    if tele["freq_max_mhz"].isna().all():
        assert "freq" in trace.absent
    assert "cpu" not in trace.absent and "rss" not in trace.absent
    # the figure says so on the panel, with no ticks that would read as zero
    fig = timeline_figure(trace)
    for panel, part in zip(fig.axes[1:3], ("temp", "freq")):
        if part in trace.absent:
            assert [t.get_text() for t in panel.texts] == [trace.absent[part]]
            assert list(panel.get_yticks()) == []
    # warmup before 0, the timed loop from 0, on the latency clock
    assert trace.warmup[0] < 0 and trace.loop[0] == 0 and trace.loop[1] > 0
    assert (trace.samples_t[trace.samples_phase == "loop"] >= 0).all()


def test_numbers_keep_significant_digits() -> None:
    assert fmt.sig(0.004) == "0.00400"
    assert fmt.sig(0.0041234) == "0.00412"
    assert fmt.sig(0.05929) == "0.0593"
    assert fmt.sig(12.345) == "12.3"
    assert fmt.sig(11701.5) == "11702"
    assert fmt.interval(0.059388, 0.059418, fmt.latency_decimals(0.0594)) == "0.05939–0.05942"
    assert fmt.ratio(1.0) == "1.00" and fmt.ratio(0.5471) == "0.547" and fmt.ratio(12.34) == "12.3"
    assert fmt.sig(float("nan")) == "" and fmt.sig(None) == ""
    assert math.isclose(float(fmt.sig(0.000123456)), 0.000123, rel_tol=1e-9)


def test_report_sections_hook(setup: dict, tmp_path: Path) -> None:
    """Optional sections (the trade-off section's place) appear in every format."""
    from benchbot.api import report_runs
    from benchbot.report.sections import Section

    def section(data):
        return Section("Extra", markdown=f"{len(data.summary)} cells seen", data={"cells": len(data.summary)})

    run = setup["run"]
    out = tmp_path / "r.md"
    report_runs([str(run.folder)], fmt="md", output=out, plots=False, sections=[section])
    assert f"## Extra\n\n{len(run.summary)} cells seen" in out.read_text()
    report_runs([str(run.folder)], fmt="json", output=tmp_path / "r.json", plots=False, sections=[section])
    assert json.loads((tmp_path / "r.json").read_text())["sections"] == {"Extra": {"cells": len(run.summary)}}
    report_runs([str(run.folder)], fmt="html", output=tmp_path / "r.html", plots=False, cell_plots=False,
                sections=[section])
    assert "<h2>Extra</h2>" in (tmp_path / "r.html").read_text()


def test_timeline_with_every_sensor_shades_throttled_spans(tmp_path: Path) -> None:
    """This VM has no thermal zones or cpufreq; a synthetic trace exercises the panels a Pi would fill."""
    from benchbot.report.plots import CellTrace, _throttled_spans, timeline_figure

    t = np.linspace(-0.5, 3.0, 36)
    freq_max = np.full(t.size, 1800.0)
    freq_min = np.where((t > 1.2) & (t < 2.1), 1200.0, 1800.0)
    tele = pd.DataFrame({"phase": np.where(t < 0, "warmup", "loop"), "t_s": t, "cpu_pct": 25.0, "proc_cpu_pct": 98.0,
                         "rss_mb": 60.0, "temp_c": 45 + 30 * (1 - np.exp(-(t + 0.5) / 1.5)),
                         "freq_min_mhz": freq_min, "freq_max_mhz": freq_max})
    spans = _throttled_spans(tele)
    assert len(spans) == 1 and spans[0][0] < 1.2 < 2.1 <= spans[0][1] + 1e-9
    assert _throttled_spans(tele.assign(freq_min_mhz=freq_max)) == []
    starts = np.linspace(-0.5, 3.0, 3000)
    trace = CellTrace("pi4: m/fp32, 4 threads", starts, 2.0 + (starts > 1.2) * (starts < 2.1),
                      np.where(starts < 0, "warmup", "loop"), tele, (-0.5, 0.0), (0.0, 3.0), True, {})
    fig = timeline_figure(trace)
    axes = fig.axes[:5]
    assert [a.get_ylabel() for a in axes] == ["latency (ms)", "temp (°C)", "CPU freq (MHz)", "CPU (%)", "RSS (MB)"]
    assert not any(t.get_text().startswith("absent") for a in axes for t in a.texts)
    assert "the firmware reported throttling" in fig.get_suptitle()
    fig.savefig(tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 20_000
