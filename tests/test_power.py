"""Power, energy per inference and throttling forensics: parsers on their own, then real local cells
whose agent reads a recorded board's sysfs tree (BENCHBOT_SYSFS) and a fake vcgencmd first on PATH.

The trees under tests/data/sysfs/ are built from the formats documented for each board (see the README
there); none of them was taken from a board, and their values are chosen so the expected figures can be
written down by hand: Orin VDD_IN 5000 mV x 1200 mA = 6.0 W, Nano POM_5V_IN 4800 mW = 4.8 W, Pi 5 PMIC
sum of V x I = 2.5684 W, Pi 4 no power source.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pandas as pd
import pytest

import benchbot
from benchbot import agent, power
from benchbot.models.catalog import zoo_families
from tests.conftest import QUICK, REPO, run_cli

TREES = REPO / "tests" / "data" / "sysfs"
needs_zoo = pytest.mark.skipif(not zoo_families(), reason="the model zoo is not built")
#: QUICK, with a loop long enough for several 20 ms telemetry readings inside it.
CELL = ["run", "--models", "shapes-cnn", "--variants", "fp32", "--threads", "1", "--telemetry-ms", "20",
        "--quiet", *QUICK, "--min-seconds", "0.4"]


def board(name: str, tmp: Path) -> dict[str, str]:
    """A copy of a recorded board (tests may change it) and the environment that points the agent at it."""
    root = tmp / name
    shutil.copytree(TREES / name, root, symlinks=True)
    env = dict(os.environ, BENCHBOT_RESULTS=str(tmp / "results"), BENCHBOT_SYSFS=str(root / "sys"))
    env.pop("BENCHBOT_PROFILES", None)
    if (root / "bin").is_dir():
        env["PATH"] = f"{root / 'bin'}{os.pathsep}{env['PATH']}"
    return env


def run_cell(env: dict[str, str], tmp: Path) -> benchbot.Run:
    done = run_cli(CELL, env)
    assert done.returncode == 0, done.stderr
    return benchbot.load_run(results=tmp / "results")


@pytest.fixture
def fresh_meters(monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent finds its power sources once per process; unit tests look again under their own root."""
    monkeypatch.setattr(agent, "_POWER_METERS", None)


# ----------------------------------------------------------------------------- parsers


PMIC_COLUMNS = """     3V7_WL_SW_A current(0)=0.01000000A
      VDD_CORE_A current(7)=1.23400000A
          HDMI_A current(22)=0.02000000A
     3V7_WL_SW_V volt(8)=3.70000000V
      VDD_CORE_V volt(15)=0.87500000V
         EXT5V_V volt(24)=5.10000000V
"""
PMIC_PLAIN = "3V7_WL_SW_A=0.01A\nVDD_CORE_A=1.234A\nHDMI_A=0.02A\n3V7_WL_SW_V=3.7V\nVDD_CORE_V=0.875V\nEXT5V_V=5.1V\n"


@pytest.mark.parametrize("text", [PMIC_COLUMNS, PMIC_PLAIN], ids=["current(N)-form", "NAME=VALUE-form"])
def test_pmic_read_adc_both_forms(text: str) -> None:
    rails = agent.parse_pmic(text)
    # only rails with both a current and a voltage: HDMI (no voltage) and EXT5V (no current) drop out
    assert rails == pytest.approx({"3V7_WL_SW": 0.037, "VDD_CORE": 1.234 * 0.875})
    assert agent.parse_pmic("Command not registered") == {} and agent.parse_pmic(None) == {}


def test_rapl_counter_wraps_at_its_range() -> None:
    top = 262143328850
    assert agent.rapl_delta(top - 1_000_000, 2_000_000, top) == 3_000_000
    assert power.rapl_delta(top - 1_000_000, 2_000_000, top) == 3_000_000
    assert power.rapl_delta(5, 9, top) == 4 and power.rapl_delta(9, 5, None) is None
    rows = [{"t_s": -0.1, "energy_uj": {"package-0": top - 1_000_000}},
            {"t_s": 0.2, "energy_uj": {"package-0": 500_000}},
            {"t_s": 0.5, "energy_uj": {"package-0": 2_000_000}}]
    joules, seconds = power.rapl_energy_j(rows, {"package-0": top}, 0.0, 0.4)
    assert joules == pytest.approx(3.0) and seconds == pytest.approx(0.6)
    end = {"loop_ns": 400_000_000, "loop_runs": 100,
           "power": {"kind": "rapl", "total": "sum of rails", "max_energy_range_uj": {"package-0": top}}}
    figures = power.power_figures(rows, end)
    # 3 J over 0.6 s = 5 W, so 2 J over the 0.4 s loop and 20 mJ per inference
    assert figures["power_mean_w"] == pytest.approx(5.0) and figures["energy_per_inference_mj"] == pytest.approx(20.0)


def test_rapl_meter_reads_a_wrapping_counter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             fresh_meters: None) -> None:
    zone = tmp_path / "class" / "powercap" / "intel-rapl:0"
    sub = tmp_path / "class" / "powercap" / "intel-rapl:0:0"
    for folder, name in ((zone, "package-0"), (sub, "core")):
        folder.mkdir(parents=True)
        (folder / "name").write_text(name + "\n")
        (folder / "max_energy_range_uj").write_text("1000000\n")
        (folder / "energy_uj").write_text("990000\n")
    monkeypatch.setenv("BENCHBOT_SYSFS", str(tmp_path))
    (meter,) = agent.power_meters()
    assert meter.kind == "rapl" and meter.describe()["rails"] == ["package-0"]  # subzones are inside packages
    first = meter.read()
    assert first["energy_uj"] == {"package-0": 990000} and first["power_w"] is None  # no interval yet
    (zone / "energy_uj").write_text("20000\n")  # wrapped: 30 000 µJ later
    second = meter.read()
    assert second["power_w"] > 0 and second["energy_uj"] == {"package-0": 20000}


def test_jetson_trees_are_read_as_recorded(monkeypatch: pytest.MonkeyPatch, fresh_meters: None) -> None:
    monkeypatch.setenv("BENCHBOT_SYSFS", str(TREES / "orin" / "sys"))
    (meter,) = agent.power_meters()
    assert meter.describe() == {"kind": "ina3221-hwmon", "rails": ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"],
                                "total": "VDD_IN"}  # NC and "sum of shunt voltages" skipped
    got = meter.read()
    assert got["power_w"] == pytest.approx(6.0) and got["rails_w"]["VDD_SOC"] == pytest.approx(4.992 * 0.304)

    monkeypatch.setattr(agent, "_POWER_METERS", None)
    monkeypatch.setenv("BENCHBOT_SYSFS", str(TREES / "nano" / "sys"))
    (meter,) = agent.power_meters()
    assert meter.kind == "ina3221-iio" and meter.total == "POM_5V_IN"
    assert meter.read() == {"power_w": 4.8, "rails_w": {"POM_5V_IN": 4.8, "POM_5V_GPU": 0.6, "POM_5V_CPU": 1.4}}


def test_generic_hwmon_without_an_input_rail_sums_its_sensors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              fresh_meters: None) -> None:
    hw = tmp_path / "class" / "hwmon" / "hwmon0"
    hw.mkdir(parents=True)
    (hw / "name").write_text("amdgpu\n")
    (hw / "power1_input").write_text("1500000\n")  # µW
    (hw / "power1_label").write_text("PPT\n")
    (hw / "power2_input").write_text("250000\n")
    monkeypatch.setenv("BENCHBOT_SYSFS", str(tmp_path))
    (meter,) = agent.power_meters()
    assert meter.describe() == {"kind": "hwmon", "rails": ["PPT", "amdgpu/power2"], "total": "sum of rails"}
    assert meter.read()["power_w"] == pytest.approx(1.75)


def test_no_source_means_absent_not_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         fresh_meters: None) -> None:
    monkeypatch.setenv("BENCHBOT_SYSFS", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # no vcgencmd either
    assert agent.power_meters() == [] and agent.power_meter() is None and agent.idle_power(None) is None
    figures = power.power_figures([{"t_s": 0.1, "phase": "loop"}], {"loop_ns": 10**9, "loop_runs": 10})
    assert figures["power_mean_w"] is None and figures["energy_per_inference_mj"] is None
    assert figures["power_few_readings"] is False


def test_energy_is_the_integral_over_the_loop() -> None:
    # power rising linearly 2 W -> 4 W over a 1 s loop, readings every 0.25 s and one on each side
    rows = [{"t_s": t, "power_w": 2.0 + 2.0 * t} for t in (-0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25)]
    figures = power.power_figures(rows, {"loop_ns": 10**9, "loop_runs": 1000, "power": {"kind": "hwmon"}})
    assert figures["energy_loop_j"] == pytest.approx(3.0) and figures["power_mean_w"] == pytest.approx(3.0)
    assert figures["energy_per_inference_mj"] == pytest.approx(3.0) and figures["power_peak_w"] == pytest.approx(4.0)
    assert figures["power_readings"] == 5 and figures["power_few_readings"] is False
    # the same loop seen by two readings only: flagged, not silently averaged
    few = power.power_figures([rows[0], rows[-1]], {"loop_ns": 10**9, "loop_runs": 1000, "power": {"kind": "x"}})
    assert few["power_readings"] == 0 and few["power_few_readings"] is True


def test_forensics_flags_time_below_top_only_on_busy_cores() -> None:
    tis = {"policy0": {"cpus": [0, 1], "khz": [600000, 1500000], "s": [0.3, 0.7]},   # busy cores, 30 % below top
           "policy2": {"cpus": [2, 3], "khz": [400000, 2000000], "s": [1.0, 0.0]}}   # idle cores, always low
    rows = [{"t_s": t, "phase": "loop", "cpu_core_pct": [100.0, 3.0, 1.0, 0.0]} for t in (0.2, 0.5, 0.8)]
    found = power.forensics(rows, {"loop_ns": 10**9, "time_in_state": tis})
    assert found["throttled_forensics"] and found["policies_below_top"] == "policy0"
    assert found["time_below_top_s"] == pytest.approx(0.3)
    calm = dict(tis, policy0={"cpus": [0, 1], "khz": [600000, 1500000], "s": [0.0, 1.0]})
    assert not power.forensics(rows, {"loop_ns": 10**9, "time_in_state": calm})["throttled_forensics"]
    assert power.forensics(rows, {"loop_ns": 10**9, "cores_offlined": [3]})["cores_offlined"] == "3"
    bits = power.forensics(rows, {"loop_ns": 10**9, "throttled_before": 0x10000, "throttled_after": 0x50005})
    assert bits["throttle_words"] == "under-voltage, throttled, throttled since boot" and bits["throttled_forensics"]
    assert agent.throttle_words(0x80008) == {"now": ["soft temperature limit"], "since_boot": ["soft temperature limit"]}


# ----------------------------------------------------------------------------- real cells on recorded boards


def energy_of(run: benchbot.Run, watts: float) -> tuple[pd.Series, float]:
    """The cell's row, and `watts` times the loop time of all its repetitions over all their inferences (mJ)."""
    row = run.summary.iloc[0]
    ends = [a.first("cell_end") for a in run.repetitions(row["key"]).values()]
    return row, 1000.0 * watts * sum(e["loop_ns"] / 1e9 for e in ends) / sum(e["loop_runs"] for e in ends)


def readings_inside_loops(run: benchbot.Run, key: str) -> int:
    """Power readings inside each repetition's timed loop (t_s counts from that loop's start), all added up."""
    tele, total = run.telemetry, 0
    for rep, attempt in run.repetitions(key).items():
        loop_s = attempt.first("cell_end")["loop_ns"] / 1e9
        mine = tele[(tele["repetition"] == rep) & tele["power_w"].notna()]
        total += int(((mine["t_s"] >= 0) & (mine["t_s"] <= loop_s)).sum())
    return total


def report_json(env: dict[str, str]) -> dict:
    done = run_cli(["report", "--format", "json", "--no-plots"], env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["cells"][0]


@needs_zoo
@pytest.mark.parametrize(("name", "watts", "source", "total"), [
    ("orin", 6.0, "ina3221-hwmon", "VDD_IN"),
    ("nano", 4.8, "ina3221-iio", "POM_5V_IN"),
    ("pi5", 2.5684, "vcgencmd-pmic", "sum of rails"),
])
def test_a_real_cell_measures_energy_per_inference(name: str, watts: float, source: str, total: str,
                                                   tmp_path: Path) -> None:
    env = board(name, tmp_path)
    run = run_cell(env, tmp_path)
    row, expected_mj = energy_of(run, watts)
    assert row["status"] == "ok"
    assert row["power_source"] == source and row["power_total"] == total
    assert row["power_mean_w"] == pytest.approx(watts, rel=0.01)
    assert row["energy_per_inference_mj"] == pytest.approx(expected_mj, rel=0.01)
    assert row["idle_power_w"] == pytest.approx(watts, rel=0.01)
    # the flag says whether the loop held enough power readings; it is never silently dropped
    inside = readings_inside_loops(run, row["key"])
    assert row["power_readings"] == inside
    assert ("power-few-readings" in row["flags"]) == (inside < power.FEW_READINGS)
    if source == "vcgencmd-pmic":  # a subprocess, read at most once a second: a short loop holds one at most
        assert inside <= len(run.repetitions(row["key"])) and "power-few-readings" in row["flags"]
    assert run.fingerprints["local"]["power_sources"][0]["kind"] == source
    cell = report_json(env)
    assert cell["power_mean_w"] == pytest.approx(watts, rel=0.01)
    assert cell["energy_per_inference_mj"] == pytest.approx(expected_mj, rel=0.01)
    shown = run_cli(["report", "--no-plots"], env).stdout
    assert "mJ/inf" in shown and "mJ per inference" in shown


@needs_zoo
def test_a_board_without_a_power_source_shows_absent_and_a_still_cpu_is_not_throttled(tmp_path: Path) -> None:
    env = board("pi4", tmp_path)
    run = run_cell(env, tmp_path)
    row = run.summary.iloc[0]
    assert row["status"] == "ok" and run.fingerprints["local"]["power_sources"] == []
    for column in ("power_mean_w", "power_peak_w", "energy_per_inference_mj", "idle_power_w"):
        assert pd.isna(row[column]), column
    assert run.telemetry["power_w"].isna().all()
    assert not any(e["event"] == "idle_power" for e in run.best(row["key"]).events)
    cell = report_json(env)
    assert cell["power_mean_w"] is None and cell["energy_per_inference_mj"] is None
    shown = run_cli(["report", "--no-plots"], env).stdout
    assert "mJ/inf" not in shown and "mJ per inference" not in shown
    # the recorded time_in_state did not move, the fake firmware reports nothing: not throttled
    end = run.best(row["key"]).first("cell_end")
    assert end["time_in_state"]["policy0"]["s"] == [0.0] * 10
    assert end["throttle_words_after"] == {"now": [], "since_boot": []}
    assert "throttled" not in row["flags"].split(",")


@needs_zoo
def test_time_below_top_frequency_during_a_cell_sets_throttled(tmp_path: Path) -> None:
    """A background writer plays a throttling Pi 4: its cpufreq stats accumulate time at 600 MHz and cpu0
    reads 600 MHz, while the firmware says under-voltage and throttled now."""
    env = board("pi4", tmp_path)
    root = Path(env["BENCHBOT_SYSFS"])
    stats = root / "devices/system/cpu/cpufreq/policy0/stats/time_in_state"
    lines = [line.split() for line in stats.read_text().splitlines()]
    (root / "devices/system/cpu/cpu0/cpufreq/scaling_cur_freq").write_text("600000\n")
    (root.parent / "state" / "throttled").write_text("0x50005\n")
    stop = threading.Event()

    def writer() -> None:
        while not stop.wait(0.01):
            lines[0][1] = str(int(lines[0][1]) + 1)  # one more 10 ms tick at 600000 kHz
            tmp = stats.with_suffix(".tmp")
            tmp.write_text("".join(f"{k} {t}\n" for k, t in lines))
            os.replace(tmp, stats)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        run = run_cell(env, tmp_path)
    finally:
        stop.set()
        thread.join()
    row = run.summary.iloc[0]
    assert "throttled" in row["flags"].split(",")
    assert row["time_below_top_s"] > 0 and row["policies_below_top"] == "policy0"
    assert row["throttle_words"] == "under-voltage, throttled"
    end = run.best(row["key"]).first("cell_end")
    assert end["throttle_words_after"] == {"now": ["under-voltage", "throttled"],
                                           "since_boot": ["under-voltage", "throttled"]}
    assert end["time_in_state"]["policy0"]["s"][0] > 0 and end["time_in_state"]["policy0"]["s"][-1] == 0

    from benchbot.report.plots import _throttled_spans, cell_trace, timeline_figure

    trace = cell_trace(run, row["key"])
    assert trace.top_mhz == 1500.0
    assert _throttled_spans(trace.telemetry, top_mhz=trace.top_mhz)  # shaded: below the top frequency
    assert "below the top frequency (policy0" in trace.forensics and "under-voltage" in trace.forensics
    fig = timeline_figure(trace)
    assert "below the top frequency" in fig.get_suptitle()
    assert any(t.get_text() == "throttled" for legend in fig.legends for t in legend.get_texts())
    assert [a.get_ylabel() for a in fig.axes][-1] == "RSS (MB)"  # no power panel: the Pi 4 has no source


@needs_zoo
def test_timeline_gains_a_power_panel_where_power_is_measured(tmp_path: Path) -> None:
    env = board("orin", tmp_path)
    run = run_cell(env, tmp_path)
    from benchbot.report.plots import cell_trace, energy_figure, timeline_figure

    key = run.summary["key"].iloc[0]
    fig = timeline_figure(cell_trace(run, key))
    panel = fig.axes[5]
    assert panel.get_ylabel() == "power (W)"
    assert list(panel.lines[0].get_ydata()) == pytest.approx([6.0] * len(panel.lines[0].get_ydata()))
    energy = energy_figure(run.summary, "local")
    assert energy is not None
    (x,), (y,) = zip(*energy.axes[0].collections[0].get_offsets())
    assert x == pytest.approx(run.summary["p50_ms"].iloc[0])
    assert y == pytest.approx(run.summary["energy_per_inference_mj"].iloc[0])
    assert energy_figure(run.summary.assign(energy_per_inference_mj=None), "local") is None


def test_sampler_probe_reads_a_recorded_board(tmp_path: Path) -> None:
    """bench/sampler_probe.py --tree: the figure in the README comes from the agent reading the board's files."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(REPO / "bench" / "sampler_probe.py"), "--main", "idle", "--seconds",
                           "0.3", "--tree", "pi5"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["power_source"]["kind"] == "vcgencmd-pmic" and result["power_source"]["subprocess"] is True
    assert result["power_reading"]["power_w"] == pytest.approx(2.5684)
    assert result["thermal_zones"] == 1 and result["freq_files"] == 4
    assert set(result["subprocess_per_read_ms"]) == {"source", "exec_stand_in"}
    bad = subprocess.run([sys.executable, str(REPO / "bench" / "sampler_probe.py"), "--main", "idle", "--tree",
                          str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no sys/ folder" in bad.stderr
