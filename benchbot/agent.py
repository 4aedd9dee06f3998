#!/usr/bin/env python3
"""benchbot device agent: times TFLite inference on the device it runs on.

This one file is copied to Raspberry Pis, Jetsons and other boards we do not
control, so it needs only Python 3.8+, numpy and a TFLite runtime (/proc and /sys
are read directly; psutil is used where there is no /proc). It must not import
anything from the benchbot package.

Usage:
    python3 agent.py hello          # print the device fingerprint as one JSON line
    python3 agent.py run < job.json # run one benchmark cell, stream JSON lines
    python3 agent.py temp           # one temperature reading (for cooldown between cells)
    python3 agent.py probe [FOLDER] # disk free at FOLDER (or its nearest existing parent) and memory

Every line on stdout is one JSON object with an "event" key:
    hello      the device fingerprint (once per process)
    cell_start the model, its tensors and the runtime that loaded it
    init       model load + allocate_tensors time and first-inference time
    samples    raw latencies (phase warmup or loop) in chunks: start times and durations in ns
    idle_power power before the model loads (only where a power source exists)
    telemetry  one reading of the background sampler, on the same clock as the samples; power_w
               (board total) and rails_w where the device has a power source
    accuracy   eval-set predictions (run after the timed loop, never inside it)
    cell_end   loop wall time, counts, peak RSS, throttle bits before/after (and in words),
               time at each CPU frequency during the loop, cores taken offline, power source

sysfs is read under $BENCHBOT_SYSFS (default /sys) and vcgencmd is found on PATH, so the same code
reads recorded board trees in tests.
    error      what went wrong, in one sentence; the cell ends after it

One process runs one cell: a runtime that crashes (SIGSEGV) takes down only that
cell, and peak RSS belongs to that cell alone.
"""

import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time

AGENT_VERSION = "2"
#: The host's benchbot/protocol.py has the same number; the host checks it in `hello`.
PROTOCOL = 2

_write_lock = threading.Lock()


def emit(event, **fields):
    """Write one JSON line and flush it, so the host stores it even if we die next."""
    fields["event"] = event
    line = json.dumps(fields, separators=(",", ":"))
    with _write_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


# --------------------------------------------------------------------------- files


def _read(path, default=None):
    """A small /proc or /sys file as stripped text, read with plain syscalls: the sampler reads
    several every interval, and a text-mode file object costs more than the read itself."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (OSError, ValueError):
        return default
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace").strip()
    except OSError:
        return default
    finally:
        os.close(fd)


def sysfs(relative):
    """A path under the sysfs root: $BENCHBOT_SYSFS when set (a recorded board's tree, as psutil's
    PROCFS_PATH does for /proc), else /sys."""
    return os.path.join(os.environ.get("BENCHBOT_SYSFS") or "/sys", relative.lstrip("/"))


def _read_int(path):
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- runtime


RUNTIMES = ("ai_edge_litert", "tflite_runtime", "tensorflow")


def load_runtime(preference="auto"):
    """Import a TFLite interpreter: LiteRT first, then tflite-runtime, then TensorFlow.

    Returns (name, version, Interpreter class, OpResolverType or None).
    """
    order = RUNTIMES if preference in (None, "", "auto") else (preference,)
    errors = []
    for name in order:
        try:
            if name == "ai_edge_litert":
                from ai_edge_litert import interpreter as mod  # type: ignore

                version = _dist_version("ai-edge-litert", "ai_edge_litert")
            elif name == "tflite_runtime":
                from tflite_runtime import interpreter as mod  # type: ignore

                version = _dist_version("tflite-runtime", "tflite_runtime")
            elif name == "tensorflow":
                import tensorflow as tf  # type: ignore

                mod = tf.lite
                mod.OpResolverType = getattr(tf.lite.experimental, "OpResolverType", None)
                version = tf.__version__
            else:
                errors.append("unknown runtime %r" % name)
                continue
        except Exception as exc:  # ImportError, or numpy ABI errors such as "_ARRAY_API not found"
            errors.append("%s: %s" % (name, _first_line(exc)))
            continue
        return name, version, mod.Interpreter, getattr(mod, "OpResolverType", None)
    raise RuntimeError("no TFLite runtime could be imported (%s)" % "; ".join(errors))


def _dist_version(dist, module):
    try:
        from importlib.metadata import version  # Python 3.8+

        return version(dist)
    except Exception:
        mod = sys.modules.get(module)
        return getattr(mod, "__version__", "unknown")


def _first_line(exc):
    text = str(exc).strip() or type(exc).__name__
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return text


_OP_VERSION = re.compile(r"Didn't find op for builtin opcode '(\w+)' version '(\d+)'")


def explain_load_error(exc, runtime, runtime_version):
    """Turn an interpreter's load error into one sentence a user can act on."""
    text = str(exc)
    match = _OP_VERSION.search(text)
    if match:
        return (
            "op %s version %s is not supported by %s %s; convert the model with an older "
            "TensorFlow or install a newer runtime on the device"
            % (match.group(1), match.group(2), runtime, runtime_version)
        )
    if "identifier" in text and "TFL3" in text:
        return "the file is not a TFLite FlatBuffer (wrong file identifier, expected TFL3)"
    if "Could not open" in text or "No such file" in text:
        return "the model file cannot be opened: %s" % _first_line(exc)
    return "%s could not load the model: %s" % (runtime, _first_line(exc))


# --------------------------------------------------------------------------- fingerprint


def fingerprint(runtime_pref="auto"):
    """What the device is: enough to tell two boards, kernels or runtimes apart in results."""
    fp = {
        "arch": platform.machine(),
        "kernel": platform.release(),
        "os": _os_name(),
        "hostname": platform.node(),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "model": _board_model(),
        "memory_total": _meminfo("MemTotal"),
        "governor": _read(sysfs("devices/system/cpu/cpu0/cpufreq/scaling_governor")),
        "virtualization": _virtualization(),
        "agent_version": AGENT_VERSION,
    }
    try:
        import numpy

        fp["numpy"] = numpy.__version__
    except Exception as exc:
        fp["numpy"] = None
        fp["numpy_error"] = _first_line(exc)
    try:
        import psutil  # noqa: F401

        fp["psutil"] = psutil.__version__
    except Exception:
        fp["psutil"] = None
    try:
        name, version, _, _ = load_runtime(runtime_pref)
        fp["runtime"], fp["runtime_version"] = name, version
    except RuntimeError as exc:
        fp["runtime"], fp["runtime_version"] = None, None
        fp["runtime_error"] = str(exc)
    fp["thermal_zones"] = [z["type"] for z in thermal_zones()]
    fp["cpufreq"] = bool(glob.glob(sysfs("devices/system/cpu/cpu*/cpufreq/scaling_cur_freq")))
    fp["vcgencmd"] = shutil.which("vcgencmd") is not None
    fp["power_sources"] = [m.describe() for m in power_meters()]
    if os.environ.get("BENCHBOT_SYSFS"):
        fp["sysfs"] = os.environ["BENCHBOT_SYSFS"]
    tegra = _read("/etc/nv_tegra_release")
    if tegra:
        fp["l4t"] = tegra.splitlines()[0]
    return fp


def _os_name():
    text = _read("/etc/os-release", "")
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


def _cpu_model():
    text = _read("/proc/cpuinfo", "")
    for key in ("model name", "Model", "Hardware", "CPU part"):
        for line in text.splitlines():
            if line.startswith(key) and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def _board_model():
    model = _read("/proc/device-tree/model")
    if model:
        return model.rstrip("\x00")
    vendor = _read(sysfs("class/dmi/id/sys_vendor"))
    product = _read(sysfs("class/dmi/id/product_name"))
    parts = [p for p in (vendor, product) if p]
    return " ".join(parts) or None


def _virtualization():
    compatible = _read("/proc/device-tree/compatible", "") or ""
    if "dummy-virt" in compatible or "qemu" in compatible.lower():
        return "qemu"
    vendor = (_read(sysfs("class/dmi/id/sys_vendor")) or "").lower()
    for name in ("qemu", "kvm", "vmware", "virtualbox", "xen", "microsoft", "amazon", "google"):
        if name in vendor:
            return name
    cpuinfo = _read("/proc/cpuinfo", "") or ""
    if re.search(r"^flags\s*:.*\bhypervisor\b", cpuinfo, re.M):
        return "hypervisor"
    return None


def _meminfo(key):
    text = _read("/proc/meminfo", "") or ""
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return None


def probe(folder="~"):
    """What `benchbot devices check` shows beside the fingerprint: free disk where benchbot keeps its files
    (the nearest existing parent of `folder`, which need not exist yet) and memory; None when unknown."""
    path = os.path.abspath(os.path.expanduser(folder or "~"))
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    try:
        disk = shutil.disk_usage(path).free
    except OSError:
        disk = None
    total, available = _meminfo("MemTotal"), _meminfo("MemAvailable")
    if total is None:  # no /proc (not Linux): psutil knows, where it is installed
        try:
            import psutil

            memory = psutil.virtual_memory()
            total, available = memory.total, memory.available
        except Exception:
            pass
    return {"arch": platform.machine(), "os": _os_name(), "python": platform.python_version(), "folder": path,
            "disk_free_bytes": disk, "mem_total_bytes": total, "mem_available_bytes": available}


# --------------------------------------------------------------------------- telemetry


def thermal_zones():
    zones = []
    for path in sorted(glob.glob(sysfs("class/thermal/thermal_zone*")), key=_natural):
        zones.append({"path": path + "/temp", "type": _read(path + "/type") or os.path.basename(path)})
    return zones


def _natural(text):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def vcgencmd(*args):
    """Run vcgencmd (Raspberry Pi firmware) and return its output, or None when absent."""
    exe = shutil.which("vcgencmd")
    if not exe:
        return None
    try:
        out = subprocess.run([exe] + list(args), capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def read_throttled():
    """The Pi's throttle bits as an int, or None when there is no vcgencmd."""
    text = vcgencmd("get_throttled")
    if not text or "=" not in text:
        return None
    try:
        return int(text.split("=", 1)[1], 16)
    except ValueError:
        return None


def read_vc_temp():
    text = vcgencmd("measure_temp")
    match = re.search(r"temp=([\d.]+)", text or "")
    return float(match.group(1)) if match else None


# --------------------------------------------------------------------------- power and throttling

#: Rails that carry the whole board's input on Jetsons: the board total when present.
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
#: `vcgencmd pmic_read_adc` is a subprocess (fork + exec, a few ms of CPU on a Pi 5), so the sampler
#: reads it at most this often, whatever its own interval; readings in between carry no power.
PMIC_INTERVAL_S = 1.0
THROTTLE_WORDS = ("under-voltage", "frequency capped", "throttled", "soft temperature limit")
_PMIC_LINE = re.compile(r"^\s*([A-Za-z0-9_]+?)_([AV])(?:\s+(?:current|volt)\(\d+\))?\s*=\s*([-+0-9.eE]+)\s*[AV]?\s*$")


def _skip_rail(label):
    """Jetson channels that are not rails: unconnected (NC) and the INA3221's sum-of-shunts channel."""
    low = (label or "").strip().lower()
    return not low or low == "nc" or "sum of shunt" in low


def parse_pmic(text):
    """`vcgencmd pmic_read_adc` output -> {rail: watts} over rails with both a current and a voltage.

    Two forms exist: `VDD_CORE_A current(7)=1.23400000A` / `VDD_CORE_V volt(15)=0.87500000V`, and
    plain `VDD_CORE_A=1.234A` on some firmware.
    """
    amps, volts = {}, {}
    for line in (text or "").splitlines():
        match = _PMIC_LINE.match(line)
        if not match:
            continue
        name, kind, value = match.group(1), match.group(2), match.group(3)
        try:
            (amps if kind == "A" else volts)[name] = float(value)
        except ValueError:
            continue
    return {name: volts[name] * amps[name] for name in sorted(amps, key=_natural) if name in volts}


def rapl_delta(before, after, max_range):
    """Energy (µJ) between two readings of a RAPL counter that wraps at max_energy_range_uj."""
    if before is None or after is None:
        return None
    if after >= before:
        return after - before
    return (max_range or 0) - before + after if max_range else None


class PowerMeter:
    """One power source found on this device, read by the telemetry sampler at its interval.

    kind: ina3221-hwmon (JetPack 5+), ina3221-iio (JetPack 4), vcgencmd-pmic (Pi 5), hwmon (generic
    power<N>_input) or rapl (x86 energy counters). read() gives {"power_w", "rails_w"} (and the raw
    counters for RAPL), or None when nothing could be read.
    """

    def __init__(self, kind, rails, interval_s=0.0, subprocess_read=False):
        self.kind = kind
        self.rails = rails  # kind-specific tuples, the name first
        self.interval_s = interval_s
        self.subprocess_read = subprocess_read
        names = [r[0] for r in rails]
        self.total = next((n for n in INPUT_RAILS if n in names), None)
        self.last_read = None
        self._last_energy = None  # RAPL: (perf_counter_ns, {name: µJ})

    def describe(self):
        out = {"kind": self.kind, "rails": [r[0] for r in self.rails],
               "total": self.total or "sum of rails"}
        if self.kind == "rapl":
            out["max_energy_range_uj"] = {r[0]: r[2] for r in self.rails}
        if self.subprocess_read:
            out["subprocess"] = True
            out["min_interval_s"] = self.interval_s
        return out

    def due(self, now_s):
        return self.last_read is None or now_s - self.last_read >= self.interval_s

    def read(self):
        self.last_read = time.monotonic()
        rails = {}
        extra = {}
        if self.kind == "ina3221-hwmon":
            for name, volt_path, curr_path in self.rails:
                mv, ma = _read_int(volt_path), _read_int(curr_path)
                if mv is not None and ma is not None:
                    rails[name] = mv * ma / 1e6
        elif self.kind in ("ina3221-iio", "hwmon"):
            scale = 1e3 if self.kind == "ina3221-iio" else 1e6  # mW, µW
            for name, path in self.rails:
                value = _read_int(path)
                if value is not None:
                    rails[name] = value / scale
        elif self.kind == "vcgencmd-pmic":
            rails = parse_pmic(vcgencmd("pmic_read_adc"))
        elif self.kind == "rapl":
            stamp = time.perf_counter_ns()
            counters = {}
            for name, path, _ in self.rails:
                value = _read_int(path)
                if value is not None:
                    counters[name] = value
            if not counters:
                return None
            previous, self._last_energy = self._last_energy, (stamp, counters)
            extra["energy_uj"] = counters
            if previous is not None and stamp > previous[0]:
                span_s = (stamp - previous[0]) / 1e9
                for name, _path, max_range in self.rails:
                    joules = rapl_delta(previous[1].get(name), counters.get(name), max_range)
                    if joules is not None:
                        rails[name] = joules / 1e6 / span_s
            if not rails:
                extra["power_w"], extra["rails_w"] = None, None
                return extra
        if not rails:
            return None
        total = rails.get(self.total) if self.total else sum(rails.values())
        extra["power_w"] = None if total is None else round(total, 6)
        extra["rails_w"] = dict((k, round(v, 6)) for k, v in rails.items())
        return extra


def _ina3221_hwmon():
    rails = []
    for name_path in sorted(glob.glob(sysfs("bus/i2c/devices/*/name")), key=_natural):
        if _read(name_path) != "ina3221":
            continue
        device = os.path.dirname(name_path)
        for label_path in sorted(glob.glob(os.path.join(device, "hwmon", "hwmon*", "in*_label")), key=_natural):
            match = re.search(r"in(\d+)_label$", label_path)
            label = _read(label_path)
            if not match or _skip_rail(label):
                continue
            folder = os.path.dirname(label_path)
            volt = os.path.join(folder, "in%s_input" % match.group(1))
            curr = os.path.join(folder, "curr%s_input" % match.group(1))
            if _read_int(volt) is not None and _read_int(curr) is not None:
                rails.append((label, volt, curr))
    return PowerMeter("ina3221-hwmon", rails) if rails else None


def _ina3221_iio():
    rails, seen = [], set()
    for pattern in ("bus/i2c/drivers/ina3221x/*/iio:device*/rail_name_*", "bus/i2c/devices/*/iio:device*/rail_name_*"):
        for path in sorted(glob.glob(sysfs(pattern)), key=_natural):
            real = os.path.realpath(path)
            match = re.search(r"rail_name_(\d+)$", path)
            label = _read(path)
            if real in seen or not match or _skip_rail(label):
                continue
            seen.add(real)
            power = os.path.join(os.path.dirname(path), "in_power%s_input" % match.group(1))
            if _read_int(power) is not None:
                rails.append((label, power))
    return PowerMeter("ina3221-iio", rails) if rails else None


def _pmic():
    if shutil.which("vcgencmd") is None:
        return None
    rails = parse_pmic(vcgencmd("pmic_read_adc"))
    if not rails:
        return None
    return PowerMeter("vcgencmd-pmic", [(name,) for name in rails], PMIC_INTERVAL_S, subprocess_read=True)


def _hwmon_power():
    rails = []
    for path in sorted(glob.glob(sysfs("class/hwmon/hwmon*/power*_input")), key=_natural):
        match = re.search(r"power(\d+)_input$", path)
        folder = os.path.dirname(path)
        if not match or _read(os.path.join(folder, "name")) == "ina3221" or _read_int(path) is None:
            continue
        label = _read(os.path.join(folder, "power%s_label" % match.group(1)))
        name = label or "%s/power%s" % (_read(os.path.join(folder, "name")) or os.path.basename(folder), match.group(1))
        rails.append((name, path))
    return PowerMeter("hwmon", rails) if rails else None


def _rapl():
    rails = []
    for folder in sorted(glob.glob(sysfs("class/powercap/intel-rapl:*")), key=_natural):
        if not re.search(r"intel-rapl:\d+$", folder):  # packages only: their subzones are inside them
            continue
        path = os.path.join(folder, "energy_uj")
        if _read_int(path) is None:  # often root-only
            continue
        name = _read(os.path.join(folder, "name")) or os.path.basename(folder)
        rails.append((name, path, _read_int(os.path.join(folder, "max_energy_range_uj"))))
    return PowerMeter("rapl", rails) if rails else None


_POWER_METERS = None


def power_meters():
    """Every power source on this device, best first; found once per process."""
    global _POWER_METERS
    if _POWER_METERS is None:
        found = []
        for find in (_ina3221_hwmon, _ina3221_iio, _pmic, _hwmon_power, _rapl):
            try:
                meter = find()
            except Exception:  # a strange tree must not stop the benchmark
                meter = None
            if meter is not None:
                found.append(meter)
        _POWER_METERS = found
    return _POWER_METERS


def power_meter():
    """The source the sampler reads (the first found), or None: then power is absent, never 0."""
    meters = power_meters()
    return meters[0] if meters else None


def idle_power(meter, seconds=0.3, readings=4):
    """Mean power over a short quiet spell before the model loads; None without a source."""
    if meter is None:
        return None
    if meter.kind == "rapl":
        meter.read()
        time.sleep(seconds)
        got = meter.read()
        return got.get("power_w") if got else None
    values = []
    for i in range(readings):
        got = meter.read()
        if got and got.get("power_w") is not None:
            values.append(got["power_w"])
        if i < readings - 1:
            time.sleep(seconds / (readings - 1))
    return round(sum(values) / len(values), 6) if values else None


def throttle_words(bits):
    """Pi get_throttled bits in words: bits 0-3 now, bits 16-19 the same since boot."""
    if bits is None:
        return None
    return {"now": [w for i, w in enumerate(THROTTLE_WORDS) if bits >> i & 1],
            "since_boot": [w for i, w in enumerate(THROTTLE_WORDS) if bits >> (i + 16) & 1]}


def read_time_in_state():
    """{policy: {"cpus": [...], "khz": [...], "s": [...]}} from cpufreq stats (10 ms units), or {}."""
    out = {}
    for path in sorted(glob.glob(sysfs("devices/system/cpu/cpufreq/policy*/stats/time_in_state")), key=_natural):
        policy_dir = os.path.dirname(os.path.dirname(path))
        khz, secs = [], []
        for line in (_read(path) or "").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                khz.append(int(parts[0]))
                secs.append(int(parts[1]) / 100.0)
        if not khz:
            continue
        cpus = (_read(os.path.join(policy_dir, "affected_cpus")) or _read(os.path.join(policy_dir, "related_cpus")) or "")
        out[os.path.basename(policy_dir)] = {"cpus": [int(c) for c in cpus.split() if c.isdigit()], "khz": khz,
                                             "s": secs}
    return out


def time_in_state_diff(before, after):
    """Seconds spent at each frequency between two read_time_in_state() readings."""
    out = {}
    for policy, now in after.items():
        then = before.get(policy)
        if not then:
            continue
        earlier = dict(zip(then["khz"], then["s"]))
        out[policy] = {"cpus": now["cpus"], "khz": now["khz"],
                       "s": [round(max(0.0, s - earlier.get(k, 0.0)), 2) for k, s in zip(now["khz"], now["s"])]}
    return out


def cores_online():
    """{cpu number: online?} from cpu*/online (cpu0 often has no such file: it is always online)."""
    out = {}
    for path in glob.glob(sysfs("devices/system/cpu/cpu[0-9]*")):
        match = re.search(r"cpu(\d+)$", path)
        if not match:
            continue
        value = _read(os.path.join(path, "online"))
        out[int(match.group(1))] = value != "0"
    return out


def top_frequency_hz():
    """The highest frequency any core may reach (cpuinfo_max_freq), or None without cpufreq."""
    values = [_read_int(p) for p in glob.glob(sysfs("devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq"))]
    values = [v for v in values if v]
    return max(values) * 1000 if values else None


class ProcStat:
    """CPU and memory readings straight from /proc, or from psutil where there is no /proc.

    Both compute the same figures from the same /proc/stat and /proc/self/stat ticks; psutil
    spends about twice the CPU per reading doing it (bench/observer.py measures the sampler).
    """

    def __init__(self):
        self.pid = os.getpid()
        self.psutil = None
        try:
            if os.path.exists("/proc/stat") and os.path.exists("/proc/self/stat"):
                raise ImportError("/proc is present: no need for psutil")
            import psutil

            self.psutil = psutil
            self.proc = psutil.Process(self.pid)
            self.proc.cpu_percent(None)
            psutil.cpu_percent(None, percpu=True)
        except Exception:
            self.psutil = None
        self.ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._last_cores = self._proc_stat_cores()
        self._last_proc = (self._proc_self_ticks(), time.monotonic())

    # /proc fallbacks ------------------------------------------------------
    @staticmethod
    def _proc_stat_cores():
        cores = []
        text = _read("/proc/stat", "") or ""
        for line in text.splitlines():
            if line.startswith("cpu") and line[3:4].isdigit():
                values = [int(v) for v in line.split()[1:]]
                idle = values[3] + (values[4] if len(values) > 4 else 0)
                cores.append((sum(values[:8]), idle))
        return cores

    @staticmethod
    def _proc_self_ticks():
        text = _read("/proc/self/stat", "") or ""
        try:
            fields = text.rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])
        except (IndexError, ValueError):
            return None

    def cpu(self):
        """(system %, per-core %, process %) since the previous call."""
        if self.psutil is not None:
            per_core = self.psutil.cpu_percent(None, percpu=True)
            system = sum(per_core) / len(per_core) if per_core else None
            return system, per_core, self.proc.cpu_percent(None)
        now_cores = self._proc_stat_cores()
        per_core = []
        for (total, idle), (total0, idle0) in zip(now_cores, self._last_cores):
            span = total - total0
            per_core.append(round(100.0 * (span - (idle - idle0)) / span, 1) if span > 0 else 0.0)
        self._last_cores = now_cores
        system = sum(per_core) / len(per_core) if per_core else None
        ticks, stamp = self._proc_self_ticks(), time.monotonic()
        ticks0, stamp0 = self._last_proc
        self._last_proc = (ticks, stamp)
        process = None
        if ticks is not None and ticks0 is not None and stamp > stamp0:
            process = 100.0 * (ticks - ticks0) / self.ticks / (stamp - stamp0)
        return system, per_core, process

    def memory(self):
        """(rss bytes, peak rss bytes, system available bytes)."""
        status = _read("/proc/self/status", "") or ""
        rss = peak = None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
        if rss is None and self.psutil is not None:
            rss = self.proc.memory_info().rss
        if peak is None:
            peak = peak_rss()
        available = _meminfo("MemAvailable")
        if available is None and self.psutil is not None:
            available = self.psutil.virtual_memory().available
        return rss, peak, available


def peak_rss():
    status = _read("/proc/self/status", "") or ""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    try:
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return usage if sys.platform == "darwin" else usage * 1024
    except Exception:
        return None


class Sampler(threading.Thread):
    """Background telemetry at a fixed interval, timestamped with perf_counter_ns.

    It sleeps between readings and reads a handful of small files, so its cost
    stays well under 1 % of a core at the default 100 ms. Power comes from the source
    found once per process (power_meter()); a subprocess source (the Pi 5's vcgencmd) is
    read at most every PMIC_INTERVAL_S, and readings in between carry no power.
    """

    def __init__(self, interval_s):
        threading.Thread.__init__(self, name="benchbot-telemetry", daemon=True)
        self.interval_s = interval_s
        self.stop_event = threading.Event()
        self.phase = "init"
        self.stat = ProcStat()
        self.zones = thermal_zones()
        self.freq_paths = sorted(
            glob.glob(sysfs("devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq")), key=_natural
        )
        self.power = power_meter()
        self.readings = 0

    def read_once(self, force_power=False):
        system, per_core, process = self.stat.cpu()
        rss, peak, available = self.stat.memory()
        temps = {}
        for zone in self.zones:
            value = _read_int(zone["path"])
            if value is not None:
                temps[zone["type"]] = value / 1000.0
        freqs = []
        for path in self.freq_paths:
            value = _read_int(path)
            freqs.append(value * 1000 if value is not None else None)
        self.readings += 1
        power = None
        if self.power is not None and (force_power or self.power.due(time.monotonic())):
            power = self.power.read()
        reading = {
            "t_ns": time.perf_counter_ns(),
            "phase": self.phase,
            "cpu_pct": _round(system),
            "cpu_core_pct": [_round(v) for v in per_core] if per_core else None,
            "proc_cpu_pct": _round(process),
            "rss": rss,
            "rss_peak": peak,
            "mem_available": available,
            "temps_c": temps or None,
            "freq_hz": freqs or None,
        }
        if power:
            reading.update(power)
        return reading

    def run(self):
        while not self.stop_event.wait(self.interval_s):
            emit("telemetry", **self.read_once())

    def stop(self):
        self.stop_event.set()
        self.join(timeout=5)


def _round(value, digits=1):
    return None if value is None else round(float(value), digits)


# --------------------------------------------------------------------------- inputs


def random_input(np, rng, detail, shape):
    """Seeded random values that respect dtype and quantization, as benchmark_model draws them."""
    dtype = detail["dtype"]
    if dtype in (np.float32, np.float16, np.float64):
        return rng.uniform(-0.5, 0.5, size=shape).astype(dtype)
    if dtype == np.int8:
        return rng.integers(-127, 128, size=shape, dtype=np.int64).astype(np.int8)
    if dtype == np.uint8:
        return rng.integers(0, 255, size=shape, dtype=np.int64).astype(np.uint8)
    if dtype == np.int16:
        return rng.integers(-32767, 32768, size=shape, dtype=np.int64).astype(np.int16)
    if dtype in (np.int32, np.int64):
        return rng.integers(0, 100, size=shape, dtype=np.int64).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    raise ValueError("input %s has dtype %s, which benchbot cannot fill" % (detail["name"], dtype))


def quantize(np, values, detail):
    """Float model input -> the tensor's integer type using its own scale and zero point."""
    dtype = detail["dtype"]
    if dtype in (np.float32, np.float16):
        return values.astype(dtype)
    scale, zero = detail.get("quantization", (0.0, 0))
    if dtype in (np.int8, np.uint8, np.int16) and values.dtype.kind == "f" and scale:
        info = np.iinfo(dtype)
        q = np.round(values / scale) + zero
        return np.clip(q, info.min, info.max).astype(dtype)
    return values.astype(dtype)


def dequantize(np, values, detail):
    scale, zero = detail.get("quantization", (0.0, 0))
    if values.dtype.kind in "iu" and scale:
        return (values.astype(np.float32) - zero) * scale
    return values.astype(np.float32)


def describe(detail):
    scale, zero = detail.get("quantization", (0.0, 0))
    return {
        "name": detail["name"],
        "shape": [int(d) for d in detail["shape"]],
        "shape_signature": [int(d) for d in detail.get("shape_signature", detail["shape"])],
        "dtype": str(detail["dtype"].__name__ if hasattr(detail["dtype"], "__name__") else detail["dtype"]),
        "scale": float(scale),
        "zero_point": int(zero),
    }


# --------------------------------------------------------------------------- graph, inputs, delegation
#
# What the graph says about its inputs (ids for an embedding table, 0/1 for a mask), what the user
# gave (--input-range, --input-data, --input-shape, --signature) and how the runtime placed the
# graph (XNNPACK partitions). Everything here runs before or after the timed loop, never inside it.

# Ops that carry an input's values through unchanged (or only re-typed/re-shaped): follow them.
_PASS_THROUGH = {
    "CAST", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "QUANTIZE", "DEQUANTIZE", "TRANSPOSE", "SLICE",
    "STRIDED_SLICE", "BROADCAST_TO", "TILE", "IDENTITY",
}
# Ops a 0/1 mask is typically used by: multiplied, subtracted, added, compared, selected.
_MASK_OPS = {
    "MUL", "SUB", "ADD", "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "EQUAL", "NOT_EQUAL",
    "SELECT", "SELECT_V2", "LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT", "MAXIMUM", "MINIMUM",
}


def graph_ops(interpreter):
    """The primary subgraph's nodes (original ops plus one DELEGATE per partition), or None."""
    try:
        ops = interpreter._get_ops_details()
    except Exception:  # an old runtime without the call: ranges fall back to the defaults
        return None
    out = []
    for op in ops:
        out.append({
            "index": int(op["index"]),
            "op": str(op["op_name"]),
            "inputs": [int(t) for t in op["inputs"]],
            "outputs": [int(t) for t in op["outputs"]],
        })
    return out


def delegation_facts(ops):
    """Total ops, ops inside delegate partitions, partitions, and undelegated op types with counts.

    A DELEGATE node lists the tensors its partition consumes and produces; the original nodes
    it holds are those reached walking back from its outputs without crossing its inputs.
    """
    if ops is None:
        return {"total_ops": None, "delegated_ops": None, "partitions": None, "undelegated_ops": None}
    originals = [op for op in ops if op["op"] != "DELEGATE"]
    delegates = [op for op in ops if op["op"] == "DELEGATE"]
    producer = {}
    for op in originals:
        for t in op["outputs"]:
            producer[t] = op
    covered = set()
    for node in delegates:
        boundary = set(node["inputs"])
        stack = list(node["outputs"])
        seen = set()
        while stack:
            t = stack.pop()
            if t < 0 or t in seen or t in boundary:
                continue
            seen.add(t)
            op = producer.get(t)
            if op is None or op["index"] in covered:
                continue
            covered.add(op["index"])
            stack.extend(op["inputs"])
    undelegated = {}
    for op in originals:
        if op["index"] not in covered:
            undelegated[op["op"]] = undelegated.get(op["op"], 0) + 1
    return {
        "total_ops": len(originals),
        "delegated_ops": len(covered),
        "partitions": len(delegates),
        "undelegated_ops": dict(sorted(undelegated.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def _default_range(np, dtype):
    """benchmark_model's random ranges, high end exclusive."""
    if dtype in (np.float32, np.float16, np.float64):
        return (-0.5, 0.5), "benchmark_model's default for float inputs"
    if dtype == np.int8:
        return (-127, 128), "benchmark_model's default for int8"
    if dtype == np.uint8:
        return (0, 255), "benchmark_model's default for uint8"
    if dtype == np.int16:
        return (-32767, 32768), "benchmark_model's default for int16"
    if dtype in (np.int32, np.int64):
        return (0, 100), "benchmark_model's default for %s" % np.dtype(dtype).name
    if dtype == np.bool_:
        return (0, 2), "boolean"
    return None, "no default for dtype %s" % dtype


def graph_range(interpreter, ops, tensor):
    """(lo, hi, why) the graph implies for an integer input tensor, or None when it says nothing."""
    if not ops:
        return None
    consumers = {}
    for op in ops:
        if op["op"] == "DELEGATE":
            continue
        for pos, t in enumerate(op["inputs"]):
            consumers.setdefault(t, []).append((op, pos))
    tables, uses = [], set()
    stack, seen = [tensor], set()
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        for op, pos in consumers.get(t, ()):
            name = op["op"]
            if (name == "GATHER" and pos == 1) or (name == "EMBEDDING_LOOKUP" and pos == 0):
                table = op["inputs"][0 if name == "GATHER" else 1]
                try:
                    rows = int(interpreter._get_tensor_details(table, 0)["shape"][0])
                except Exception:
                    rows = None
                if rows:
                    tables.append((rows, name))
                else:
                    uses.add(name)
            elif name in _PASS_THROUGH and pos == 0:
                stack.extend(op["outputs"])
            elif name in ("SHAPE", "RANK", "SIZE"):
                continue  # reads only the shape, never the values
            else:
                uses.add(name)
    if tables:
        rows, name = min(tables)
        return 0, rows, "indices of %s table with %d rows" % (name, rows)
    if uses and uses <= _MASK_OPS:
        return 0, 2, "mask: only used by %s" % ", ".join(sorted(uses))
    return None


def match_input(key, details):
    """The input detail a user's name means: signature name, tensor name, or tensor name without
    the converter's 'serving_default_' prefix and ':0' suffix."""
    for d in details:
        if key in (d.get("key"), d["name"], _short_name(d["name"])):
            return d
    return None


def _short_name(name):
    name = name.split(":", 1)[0]
    return name[len("serving_default_"):] if name.startswith("serving_default_") else name


def _input_names(details):
    return ", ".join(d.get("key") or _short_name(d["name"]) for d in details)


def _user_map(option, mapping, details):
    """{input index: value} from a {name: value} job field; an unknown name is the user's error."""
    out = {}
    for key, value in (mapping or {}).items():
        d = match_input(key, details)
        if d is None:
            raise CellError("input", "%s names '%s', which is not an input of this model (inputs: %s)"
                            % (option, key, _input_names(details)))
        out[d["index"]] = value
    return out


def input_plan(np, interpreter, ops, details, job):
    """Per input: (lo, hi, why). User ranges win, then what the graph shows, then the defaults."""
    user = _user_map("--input-range", job.get("input_ranges"), details)
    plan = []
    for d in details:
        dtype = d["dtype"]
        scale = (d.get("quantization") or (0.0, 0))[0]
        if d["index"] in user:
            lo, hi = user[d["index"]]
            if dtype not in (np.float32, np.float16, np.float64):
                lo, hi = int(lo), int(hi)
            if not lo < hi:
                raise CellError("input", "--input-range for %s must have LO < HI, got %s:%s" % (d["name"], lo, hi))
            plan.append((lo, hi, "given by the user"))
            continue
        found = None
        if dtype in (np.int32, np.int64, np.int16) or (dtype in (np.int8, np.uint8) and not scale):
            found = graph_range(interpreter, ops, d["index"])
        if found is None:
            rng_range, why = _default_range(np, dtype)
            if rng_range is None:
                raise CellError("input", "input %s has dtype %s, which benchbot cannot fill" % (d["name"], dtype))
            found = (rng_range[0], rng_range[1], why)
        plan.append(found)
    return plan


def random_values(np, rng, detail, shape, lo, hi):
    """Seeded uniform values in [lo, hi) of the input's dtype (the defaults match benchmark_model)."""
    dtype = detail["dtype"]
    if dtype in (np.float32, np.float16, np.float64):
        return rng.uniform(lo, hi, size=shape).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    return rng.integers(int(lo), int(hi), size=shape, dtype=np.int64).astype(dtype)


def load_input_data(np, path, details, batch, option="--input-data"):
    """Feeds from an .npz of arrays named by input: [[value per input], ...] (one per sample set).

    An array is one sample (the input's shape) or many ([N, ...] with the input's shape after the
    first axis, taken `batch` rows at a time). An eval set (x, or x_NAME per input) works too.
    """
    try:
        data = np.load(path, allow_pickle=False)
        arrays = {k: data[k] for k in data.files}
    except Exception as exc:
        raise CellError("input", "%s cannot be read as .npz: %s" % (option, _first_line(exc)))
    arrays.pop("y", None)
    if len(details) == 1 and "x" in arrays:
        arrays = {details[0].get("key") or details[0]["name"]: arrays["x"]}
    given = {}
    for key, value in arrays.items():
        name = key[2:] if key.startswith("x_") and match_input(key, details) is None else key
        d = match_input(name, details)
        if d is None:
            raise CellError("input", "%s has array '%s', which names no input of this model (inputs: %s)"
                            % (option, key, _input_names(details)))
        given[d["index"]] = value
    missing = [d for d in details if d["index"] not in given]
    if missing:
        raise CellError("input", "%s has no array for input '%s' (inputs: %s)"
                        % (option, missing[0].get("key") or _short_name(missing[0]["name"]), _input_names(details)))
    per_input = []
    for d in details:
        arr, shape = given[d["index"]], tuple(int(s) for s in d["shape"])
        label = d.get("key") or _short_name(d["name"])
        if arr.dtype.kind not in "biuf" or (arr.dtype.kind == "f" and d["dtype"] not in (np.float32, np.float16, np.float64)
                                             and not (d.get("quantization") or (0.0, 0))[0]):
            raise CellError("input", "%s: '%s' holds %s but the model input is %s"
                            % (option, label, arr.dtype, np.dtype(d["dtype"]).name))
        if tuple(arr.shape) == shape:
            samples = [arr]
        elif arr.ndim == len(shape) and tuple(arr.shape[1:]) == shape[1:] and len(arr) >= batch:
            samples = [arr[i:i + batch] for i in range(0, len(arr) - batch + 1, batch)]
        else:
            raise CellError("input", "%s: '%s' has shape %s but the model input is %s (one sample, or N samples along the first axis)"
                            % (option, label, list(arr.shape), list(shape)))
        per_input.append([quantize(np, s, d) for s in samples])
    count = max(len(s) for s in per_input)
    return [[s[k % len(s)] for s in per_input] for k in range(count)]


class ModelIO:
    """The interpreter, or one signature of it: inputs, outputs, resize, set, invoke and get.

    The plain interpreter path is used unless a signature is named or the model has several
    (then the first runs, through the signature's subgraph), so single-signature models run as before.
    """

    def __init__(self, np, interpreter, signature=None):
        self.np = np
        self.interpreter = interpreter
        self.wrapper = None
        self.subgraph = 0
        try:
            signatures = interpreter._get_full_signature_list() or {}
        except Exception:
            signatures = {}
        self.signatures = list(signatures)
        if signature and signature not in signatures:
            raise CellError("option", "the model has no signature '%s' (signatures: %s)"
                            % (signature, ", ".join(self.signatures) or "none"))
        self.signature = signature or (self.signatures[0] if self.signatures else None)
        keys = {}
        if self.signature:
            sig = signatures[self.signature]
            keys = {int(v): k for k, v in sig["inputs"].items()}
            if signature or len(self.signatures) > 1:
                self.wrapper = interpreter._interpreter
                self.subgraph = int(self.wrapper.GetSubgraphIndexFromSignature(self.signature))
                self._inputs = [int(v) for v in sig["inputs"].values()]
                self._outputs = [int(v) for v in sig["outputs"].values()]
        self.keys = keys

    def _details(self, indices):
        return [self.interpreter._get_tensor_details(i, self.subgraph) for i in indices]

    def input_details(self):
        details = self._details(self._inputs) if self.wrapper else self.interpreter.get_input_details()
        for d in details:
            if d["index"] in self.keys:
                d["key"] = self.keys[d["index"]]
        return details

    def output_details(self):
        return self._details(self._outputs) if self.wrapper else self.interpreter.get_output_details()

    def resize(self, index, shape):
        if self.wrapper:
            self.wrapper.ResizeInputTensor(index, self.np.array(shape, dtype=self.np.int32), True, self.subgraph)
        else:
            self.interpreter.resize_tensor_input(index, shape, strict=True)

    def allocate(self):
        if self.wrapper:
            self.wrapper.AllocateTensors(self.subgraph)
        else:
            self.interpreter.allocate_tensors()

    def set(self, index, value):
        if self.wrapper:
            self.wrapper.SetTensor(index, value, self.subgraph)
        else:
            self.interpreter.set_tensor(index, value)

    def get(self, index):
        if self.wrapper:
            return self.wrapper.GetTensor(index, self.subgraph)
        return self.interpreter.get_tensor(index)

    def invoker(self):
        if self.wrapper:
            wrapper, subgraph = self.wrapper, self.subgraph
            return lambda: wrapper.Invoke(subgraph)
        return self.interpreter.invoke


def plan_shapes(details, batch, job):
    """{input index: shape} to resize to: the batch, and --input-shape for dynamic dimensions."""
    user = _user_map("--input-shape", job.get("input_shapes"), details)
    shapes = {}
    for d in details:
        signature = [int(s) for s in d.get("shape_signature", d["shape"])]
        if d["index"] in user:
            shape = [int(s) for s in user[d["index"]]]
            if len(shape) != len(signature) or any(s >= 0 and s != g for s, g in zip(signature, shape)):
                raise CellError("input", "--input-shape %s=%s does not fit the model's shape %s"
                                % (d.get("key") or _short_name(d["name"]), "x".join(map(str, shape)), signature))
            if batch != 1:
                shape[0] = batch
            shapes[d["index"]] = shape
        elif any(s < 0 for s in signature[1:]):
            name = d.get("key") or _short_name(d["name"])
            example = "x".join(str(s if s >= 0 else (batch if i == 0 else 128)) for i, s in enumerate(signature))
            raise CellError("input", "input %s has a dynamic shape %s; give one with --input-shape %s=%s"
                            % (name, signature, name, example))
        elif batch != 1:
            shapes[d["index"]] = [batch] + [int(s) for s in d["shape"][1:]]
    return shapes


# --------------------------------------------------------------------------- the cell


class CellError(Exception):
    """A failure of this cell, already phrased for the user."""

    def __init__(self, kind, message):
        Exception.__init__(self, message)
        self.kind = kind


JOB_FIELDS = (
    "cell_id", "repetition", "model_path", "eval_path", "threads", "xnnpack", "batch", "runtime",
    "warmup_runs", "warmup_seconds", "min_runs", "min_seconds", "max_seconds", "seed",
    "telemetry_interval_s", "eval_max_seconds", "deadline_s", "chunk", "flush_seconds", "protocol",
    "input_ranges", "input_shapes", "input_data", "input_data_label", "signature",
)


def check_job(job):
    """The host sends every field (its defaults are the only ones); a missing one means mismatched versions."""
    if not isinstance(job, dict):
        raise CellError("job", "the job on stdin is not a JSON object")
    missing = [name for name in JOB_FIELDS if name not in job]
    if missing:
        raise CellError("job", "the job lacks %s: the host's benchbot and this agent differ in version"
                        % ", ".join(missing))
    if job["protocol"] != PROTOCOL:
        raise CellError("job", "the job is protocol %s but this agent speaks %s" % (job["protocol"], PROTOCOL))


def run_cell(job):
    import numpy as np

    check_job(job)
    cell_id = job["cell_id"]
    threads = int(job["threads"])
    batch = int(job["batch"])
    warmup_runs = int(job["warmup_runs"])
    warmup_s = float(job["warmup_seconds"])
    min_runs = int(job["min_runs"])
    min_s = float(job["min_seconds"])
    max_s = float(job["max_seconds"])
    chunk = int(job["chunk"])
    flush_s = float(job["flush_seconds"])

    try:
        runtime, runtime_version, Interpreter, OpResolverType = load_runtime(job["runtime"])
    except RuntimeError as exc:
        raise CellError("runtime", str(exc))

    model_path = job["model_path"]
    if not os.path.isfile(model_path):
        raise CellError("model", "model file %s does not exist on the device" % model_path)
    kwargs = {"model_path": model_path, "num_threads": threads}
    if not job["xnnpack"]:
        if OpResolverType is None:
            raise CellError("option", "%s %s cannot turn XNNPACK off" % (runtime, runtime_version))
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES

    meter = power_meter()
    # Before the model loads, once per cell (the first repetition, like the eval pass): 0.3 s where there
    # is a source, nothing where there is none.
    idle_w = idle_power(meter) if job["repetition"] == 1 else None
    if meter is not None and idle_w is not None:
        emit("idle_power", idle_power_w=idle_w, source=meter.kind, total=meter.describe()["total"])
    sampler = Sampler(float(job["telemetry_interval_s"]))
    throttled_before = read_throttled()
    vc_temp_start = read_vc_temp()
    emit("telemetry", **sampler.read_once(force_power=True))
    sampler.start()
    try:
        t0 = time.perf_counter_ns()
        try:
            interpreter = Interpreter(**kwargs)
            model = ModelIO(np, interpreter, job["signature"])
            for index, shape in plan_shapes(model.input_details(), batch, job).items():
                model.resize(index, shape)
            model.allocate()
        except CellError:
            raise
        except Exception as exc:
            if batch != 1 and "resize" in str(exc).lower():
                raise CellError("option", "the model does not allow batch size %d: %s" % (batch, _first_line(exc)))
            raise CellError("load", explain_load_error(exc, runtime, runtime_version))
        init_ns = time.perf_counter_ns() - t0

        input_details = model.input_details()
        output_details = model.output_details()
        # _get_ops_details() lists the primary subgraph only: another signature's graph gets no figures
        ops = graph_ops(interpreter) if model.subgraph == 0 else None
        ranges = input_plan(np, interpreter, ops, input_details, job)
        feeds = None
        if job["input_data"]:
            label = "--input-data " + job["input_data_label"] if job["input_data_label"] else "--input-data"
            feeds = load_input_data(np, job["input_data"], input_details, batch, label)
        inputs = [describe(d) for d in input_details]
        for info, d, (lo, hi, why) in zip(inputs, input_details, ranges):
            info.update({"key": d.get("key"), "range": None if feeds else [lo, hi],
                         "why": "from the input data file" if feeds else why})
        emit(
            "cell_start",
            cell_id=cell_id,
            repetition=job["repetition"],
            runtime=runtime,
            runtime_version=runtime_version,
            threads=threads,
            xnnpack=bool(job["xnnpack"]),
            batch=batch,
            model_size=os.path.getsize(model_path),
            inputs=inputs,
            outputs=[describe(d) for d in output_details],
            signature=model.signature,
            signatures=model.signatures,
            input_samples=len(feeds) if feeds else None,
            pid=os.getpid(),
            **delegation_facts(ops)
        )

        if feeds is None:
            rng = np.random.default_rng(int(job["seed"]))
            feeds = [[random_values(np, rng, d, tuple(d["shape"]), lo, hi)
                      for d, (lo, hi, _) in zip(input_details, ranges)]]
        indices = [d["index"] for d in input_details]

        def prepare(run):
            """Set the next sample set (outside the timed interval; only when there are several)."""
            for index, value in zip(indices, feeds[run % len(feeds)]):
                model.set(index, value)

        prepare(0)
        if len(feeds) == 1:
            prepare = None
        invoke = model.invoker()
        clock = time.perf_counter_ns

        sampler.phase = "first"
        t0 = clock()
        invoke()
        first_ns = clock() - t0
        emit("init", init_ns=init_ns, first_ns=first_ns)

        sampler.phase = "warmup"
        warm = timed_loop(invoke, clock, warmup_runs, warmup_s, max(warmup_s, 0.0) + max_s, chunk, flush_s, "warmup",
                          prepare)
        states_before, online_before = read_time_in_state(), cores_online()  # outside the timed loop
        sampler.phase = "loop"
        loop = timed_loop(invoke, clock, min_runs, min_s, max_s, chunk, flush_s, "loop", prepare)
        sampler.phase = "done"
        states_after, online_after = read_time_in_state(), cores_online()
    finally:
        sampler.stop()
    emit("telemetry", **sampler.read_once(force_power=True))
    throttled_after = read_throttled()

    end = {
        "cell_id": cell_id,
        "repetition": job["repetition"],
        "warmup_runs": warm["runs"],
        "warmup_ns": warm["wall_ns"],
        "loop_runs": loop["runs"],
        "loop_ns": loop["wall_ns"],
        "loop_start_ns": loop["start_ns"],
        "hit_max_seconds": loop["hit_max"],
        "rss_peak": peak_rss(),
        "throttled_before": throttled_before,
        "throttled_after": throttled_after,
        "throttle_words_before": throttle_words(throttled_before),
        "throttle_words_after": throttle_words(throttled_after),
        "vc_temp_start_c": vc_temp_start,
        "vc_temp_end_c": read_vc_temp(),
        "telemetry_readings": sampler.readings,
        # forensics of the timed loop: time at each frequency, cores taken offline
        "time_in_state": time_in_state_diff(states_before, states_after) or None,
        "freq_top_hz": top_frequency_hz(),
        "cores_offline_before": sorted(c for c, on in online_before.items() if not on),
        "cores_offlined": sorted(c for c, on in online_after.items() if not on and online_before.get(c, True)),
        "power": meter.describe() if meter is not None else None,
        "idle_power_w": idle_w,
    }
    if job["eval_path"]:
        try:
            run_accuracy(np, model, job["eval_path"], input_details, output_details, batch, job)
        except CellError as exc:
            emit("error", cell_id=cell_id, kind=exc.kind, message=str(exc), fatal=False)
    emit("cell_end", **end)


def timed_loop(invoke, clock, min_runs, min_s, max_s, chunk, flush_s, phase, prepare=None):
    """Invoke until both min_runs and min_seconds are met, stopping at max_seconds.

    Only invoke() sits between the two clock reads. Samples are flushed in chunks
    between invocations, and the next input set (prepare) is set, outside any timed interval.
    """
    starts, durations = [], []
    runs = 0
    begin = clock()
    min_ns, max_ns, flush_ns = int(min_s * 1e9), int(max_s * 1e9), int(flush_s * 1e9)
    last_flush = begin
    hit_max = False
    while True:
        elapsed = clock() - begin
        if runs >= min_runs and elapsed >= min_ns:
            break
        if elapsed > max_ns:
            hit_max = True
            break
        if prepare is not None:
            prepare(runs + 1)
        t0 = clock()
        invoke()
        t1 = clock()
        starts.append(t0)
        durations.append(t1 - t0)
        runs += 1
        if len(durations) >= chunk or t1 - last_flush >= flush_ns:
            emit("samples", phase=phase, start_ns=starts, latency_ns=durations)
            starts, durations = [], []
            last_flush = clock()
    wall = clock() - begin
    if durations:
        emit("samples", phase=phase, start_ns=starts, latency_ns=durations)
    return {"runs": runs, "wall_ns": wall, "start_ns": begin, "hit_max": hit_max}


def run_accuracy(np, model, eval_path, input_details, output_details, batch, job):
    """Run the eval set through the model once, after timing; record predictions and labels.

    Single-input models read the array `x`; multi-input models read one array per input named
    `x_NAME` (NAME: the signature's input name, or the tensor name, see match_input).
    """
    try:
        data = np.load(eval_path)
        arrays, labels = {k: data[k] for k in data.files if k != "y"}, data["y"]
    except Exception as exc:
        raise CellError("eval", "eval set %s cannot be read: %s" % (eval_path, _first_line(exc)))
    pairs = eval_inputs(arrays, input_details)
    out = output_details[0]
    count = len(pairs[0][1])
    for detail, xs in pairs:
        expected = tuple(int(d) for d in detail["shape"][1:])
        if tuple(xs.shape[1:]) != expected:
            raise CellError(
                "eval",
                "eval set inputs have shape %s per sample but the model expects %s"
                % (list(xs.shape[1:]), list(expected)),
            )
        if len(xs) != count:
            raise CellError("eval", "eval set arrays hold different numbers of samples (%d and %d)" % (len(xs), count))
        if xs.dtype.kind in "iu" and detail["dtype"] not in (np.int32, np.int64, np.int8, np.uint8, np.int16):
            raise CellError("eval", "eval set holds integers but the model input is %s" % detail["dtype"].__name__)
        if xs.dtype.kind == "f" and detail["dtype"] in (np.int32, np.int64):
            raise CellError("eval", "eval set holds floats but the model input is %s (token ids?)" % detail["dtype"].__name__)
    try:
        labels = [int(v) for v in np.asarray(labels).reshape(-1)]
    except (TypeError, ValueError):
        raise CellError("eval", "eval labels must be class indices (integers), found %s" % np.asarray(labels).dtype)
    classes = int(np.prod(output_details[0]["shape"][1:]))
    if len(labels) != count:
        raise CellError("eval", "eval set has %d inputs but %d labels" % (count, len(labels)))
    bad = [v for v in labels if v < 0 or v >= classes]
    if bad:
        raise CellError("eval", "eval labels must be in 0..%d for this model, found %d" % (classes - 1, bad[0]))
    predictions = []
    invoke = model.invoker()
    t0 = time.perf_counter_ns()
    budget_ns = int(float(job["eval_max_seconds"]) * 1e9)
    for start in range(0, count, batch):
        if time.perf_counter_ns() - t0 > budget_ns:  # slow (emulated) devices evaluate a prefix
            break
        for detail, xs in pairs:
            part = xs[start:start + batch]
            if len(part) < batch:  # pad the last batch with copies; extra rows are ignored
                part = np.concatenate([part, np.repeat(part[-1:], batch - len(part), axis=0)])
            model.set(detail["index"], quantize(np, part, detail))
        invoke()
        scores = dequantize(np, model.get(out["index"]), out)
        scores = scores.reshape(batch, -1)
        take = min(batch, count - start)
        predictions.extend(int(p) for p in np.argmax(scores[:take], axis=1))
    elapsed = time.perf_counter_ns() - t0
    labels = labels[: len(predictions)]
    correct = sum(1 for p, y in zip(predictions, labels) if p == y)
    emit(
        "accuracy",
        n=len(labels),
        correct=correct,
        accuracy=correct / len(labels) if labels else None,
        predictions=predictions,
        labels=labels,
        truncated=len(predictions) < count,
        eval_ns=elapsed,
    )


def eval_inputs(arrays, input_details):
    """[(input detail, samples)]: `x` for a single-input model, `x_NAME` per input otherwise."""
    if len(input_details) == 1 and "x" in arrays:
        return [(input_details[0], arrays["x"])]
    pairs = []
    for detail in input_details:
        names = [n for n in (detail.get("key"), detail["name"], _short_name(detail["name"])) if n]
        found = [arrays["x_" + n] for n in names if "x_" + n in arrays]
        if not found:
            raise CellError("eval", "eval set has no array x_%s for input %s (arrays: %s)"
                            % (names[0], names[0], ", ".join(sorted(arrays)) or "none"))
        pairs.append((detail, found[0]))
    return pairs


# --------------------------------------------------------------------------- main


def _deadline(seconds):
    """Leave by ourselves if the host's deadline passes and nobody killed us."""

    def expire():
        emit("error", kind="deadline", message="the agent exceeded its deadline of %.0f s" % seconds, fatal=True)
        os._exit(124)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else "hello"
    try:
        os.setpgrp()  # our own process group, so the host can stop us and any child at once
    except (AttributeError, OSError):
        pass
    if command == "hello":
        emit("hello", protocol=PROTOCOL, pid=os.getpid(), fingerprint=fingerprint(argv[1] if len(argv) > 1 else "auto"))
        return 0
    if command == "temp":
        temps = {}
        for zone in thermal_zones():
            value = _read_int(zone["path"])
            if value is not None:
                temps[zone["type"]] = value / 1000.0
        emit("temp", temps_c=temps or None, vc_temp_c=read_vc_temp())
        return 0
    if command == "probe":
        emit("probe", protocol=PROTOCOL, **probe(argv[1] if len(argv) > 1 else "~"))
        return 0
    if command != "run":
        sys.stderr.write("usage: agent.py hello|temp|probe [FOLDER]|run < job.json\n")
        return 2
    try:
        job = json.loads(sys.stdin.read())
    except ValueError as exc:
        emit("error", kind="job", message="the job on stdin is not JSON: %s" % exc, fatal=True)
        return 2
    if not isinstance(job, dict):
        job = {"job": job}  # check_job refuses it below, with a line the host can store
    if job.get("deadline_s"):
        _deadline(float(job["deadline_s"]))
    # The full fingerprint was taken once per device by `hello`; a repetition says only what can differ
    # between processes (reading it all again costs ~40 ms per repetition).
    emit("hello", protocol=PROTOCOL, pid=os.getpid(),
         fingerprint={"arch": platform.machine(), "python": platform.python_version(), "agent_version": AGENT_VERSION,
                      "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")})
    try:
        run_cell(job)
    except CellError as exc:
        emit("error", cell_id=job.get("cell_id"), kind=exc.kind, message=str(exc), fatal=True)
        return 1
    except KeyboardInterrupt:
        emit("error", cell_id=job.get("cell_id"), kind="interrupted", message="interrupted", fatal=True)
        return 130
    except Exception as exc:  # the host must get a line, whatever happened
        emit("error", cell_id=job.get("cell_id"), kind="internal", message="%s: %s" % (type(exc).__name__, _first_line(exc)), fatal=True)
        return 1
    return 0


if __name__ == "__main__":
    status = main()
    if sys.argv[1:2] == ["run"]:
        # Every line is written and flushed; skip the interpreter's teardown of the runtime's libraries
        # (~50 ms, paid once per repetition of every cell).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status or 0)
    sys.exit(status)
