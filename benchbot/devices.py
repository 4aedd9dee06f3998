"""`benchbot devices check|trust|setup`: what a device offers, trusting its host key, installing what the agent needs.

Everything goes through the device's transport (`benchbot.transport.for_profile`), so the same code
checks this machine, a board over SSH and the QEMU guest. Remote commands are argv lists that the
transport quotes word by word; nothing from a profile is ever pasted into a shell line.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from benchbot import api
from benchbot.errors import BenchbotError
from benchbot.models.catalog import sha256_file
from benchbot.profiles import Profile, load_profile, location
from benchbot.runner import agent_hello, device_python, push_agent
from benchbot.transport import Transport, TransportError, for_profile
from benchbot.wheeltags import device_tags, manylinux_platforms, parse_requirement, parse_wheel

Echo = Callable[[str], Any]


def load_devices(names: list[str]) -> list[Profile]:
    """Profiles for NAME arguments; an unknown or repeated name is a one-sentence error before anything runs."""
    if not names:
        raise BenchbotError("name at least one device (see `benchbot devices list`)")
    return api.load_devices(names)


def _hello(profile: Profile, transport: Transport, python: str) -> tuple[dict[str, Any] | None, str]:
    """The agent's fingerprint of the device (pushed first, as a run does), or None and why not."""
    return agent_hello(profile, transport, python, push_agent(transport))


# ---------------------------------------------------------------------------------------------- check


@dataclass
class CheckResult:
    name: str
    ok: bool
    facts: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    fingerprint: dict[str, Any] | None = None


def _gib(value: int | None) -> str:
    return "unknown" if value is None else f"{value / 2**30:.1f} GiB"


def _local_probe(workdir: str) -> dict[str, Any]:
    """What SSHTransport.probe() reports, for this machine."""
    import shutil

    path = Path(workdir).expanduser()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        disk: int | None = shutil.disk_usage(path).free
    except OSError:
        disk = None
    mem: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable") and rest.split():
                mem[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return {"disk_free_bytes": disk, "mem_total_bytes": mem.get("MemTotal"),
            "mem_available_bytes": mem.get("MemAvailable")}


def check_device(profile: Profile) -> CheckResult:
    """Connect, run the agent's `hello` and probe disk and memory; never raises for device problems."""
    result = CheckResult(profile.name, ok=False)
    result.facts.append(("reached by", location(profile)))
    try:
        transport = for_profile(profile)
    except Exception as exc:  # noqa: BLE001 - TransportError, or a transport that cannot be loaded here
        result.problems.append(str(exc) if isinstance(exc, TransportError) else f"{type(exc).__name__}: {exc}")
        return result
    try:
        transport.open()
        python = device_python(profile, transport)
        fp, why = _hello(profile, transport, python)
        # SSH devices answer probe(); the QEMU transport wraps an SSHTransport; local is read here.
        probe_fn = getattr(transport, "probe", None) or getattr(getattr(transport, "ssh", None), "probe", None)
        if callable(probe_fn):
            probe = probe_fn()
        elif profile.transport == "local":
            probe = _local_probe(transport.expand_user(profile.workdir))
        else:
            probe = {}
    except TransportError as exc:
        result.problems.append(str(exc))
        return result
    except Exception as exc:  # noqa: BLE001 - one device's surprise must not stop the others
        result.problems.append(f"{type(exc).__name__}: {exc}")
        return result
    finally:
        try:
            transport.close()
        except Exception:  # noqa: BLE001
            pass
    if fp is None:
        result.facts.append(("python", f"{python}: NOT USABLE"))
        result.problems.append(f"{why}; install it with: benchbot devices setup {profile.name}")
        return result
    result.fingerprint = fp
    f = result.facts
    f.append(("arch", str(fp.get("arch") or probe.get("arch") or "unknown")))
    f.append(("os", f"{fp.get('os') or probe.get('os') or 'unknown'} (kernel {fp.get('kernel') or '?'})"))
    board = fp.get("model") or fp.get("cpu")
    if board:
        f.append(("board", f"{board}, {fp.get('cores')} cores"))
    f.append(("python", f"{fp.get('python')} ({python})"))
    if fp.get("numpy"):
        f.append(("numpy", str(fp["numpy"])))
    else:
        f.append(("numpy", f"MISSING ({fp.get('numpy_error') or 'cannot be imported'})"))
        result.problems.append(f"numpy cannot be imported by {python}; run: benchbot devices setup {profile.name}")
    if fp.get("runtime"):
        f.append(("tflite runtime", f"{fp['runtime']} {fp.get('runtime_version') or ''}".strip()))
    else:
        f.append(("tflite runtime", f"MISSING ({fp.get('runtime_error') or 'none found'})"))
        result.problems.append(f"no TFLite runtime for {python}; run: benchbot devices setup {profile.name}")
    f.append(("psutil", str(fp["psutil"]) if fp.get("psutil") else "absent (telemetry reads /proc directly)"))
    zones = fp.get("thermal_zones") or []
    f.append(("thermal", ", ".join(zones) if zones else "no thermal zones (temperatures are recorded as absent)"))
    f.append(("cpufreq", "yes" if fp.get("cpufreq") else "no"))
    f.append(("vcgencmd", "yes" if fp.get("vcgencmd") else "no"))
    sources = [f"{s.get('kind')} ({s.get('total')})" for s in fp.get("power_sources") or []]
    f.append(("power", ", ".join(sources) if sources else "no source (power and energy are recorded as absent)"))
    if fp.get("governor"):
        f.append(("governor", str(fp["governor"])))
    if fp.get("virtualization"):
        f.append(("virtualization", str(fp["virtualization"])))
    f.append(("disk free", f"{_gib(probe.get('disk_free_bytes'))} (at {profile.workdir})"))
    f.append(("memory", f"{_gib(probe.get('mem_available_bytes'))} available of {_gib(probe.get('mem_total_bytes'))}"))
    result.ok = not result.problems
    return result


def check_devices(names: list[str], echo: Echo) -> list[CheckResult]:
    """Check every device (in parallel), print each one's facts in the order given; return the results."""
    profiles = load_devices(names)
    with ThreadPoolExecutor(max_workers=min(8, len(profiles))) as pool:
        results = list(pool.map(check_device, profiles))
    for res in results:
        echo(f"{res.name}: {'ok' if res.ok else 'FAILED'}")
        for key, value in res.facts:
            echo(f"  {key:15} {value}")
        for problem in res.problems:
            echo(f"  problem: {problem.removeprefix(res.name + ': ')}")
    return results


# ---------------------------------------------------------------------------------------------- trust


def trust_device(name: str, replace: bool, echo: Echo) -> None:
    """Record the host key(s) of an SSH device (and its jump hosts) in benchbot's known_hosts."""
    profile = load_profile(name)
    if profile.transport == "local":
        echo(f"{profile.name}: this machine is reached without SSH; there is nothing to trust")
        return
    if profile.transport == "labgrid":  # every board the place (or tags) may give, without acquiring
        from benchbot.transport.labgrid import trust_targets

        for place, transport in trust_targets(profile):
            echo(f"{profile.name}: labgrid place {place}")
            _trust(profile, transport, replace, echo)
        return
    if profile.transport != "ssh":
        echo(f"{profile.name}: a {profile.transport} device brings its own host key; there is nothing to trust")
        return
    from benchbot.transport import ssh_settings
    from benchbot.transport.ssh import SSHTransport

    _trust(profile, SSHTransport(ssh_settings(profile)), replace, echo)  # type: ignore[arg-type]


def _trust(profile: Profile, transport: Any, replace: bool, echo: Echo) -> None:
    try:
        recorded = transport.trust(replace=replace)
    except TransportError as exc:
        text = str(exc)
        if "differs from the one recorded in" in text and not replace:
            text += f"; if you have checked the new key, run: benchbot devices trust {profile.name} --replace"
        raise BenchbotError(text) from None
    finally:
        transport.close()
    for line in recorded:
        echo(f"{profile.name}: trusted {line}")
    echo(f"{profile.name}: recorded in {transport.known_hosts}")


# ---------------------------------------------------------------------------------------------- setup

_RUNTIMES = ("ai-edge-litert", "tflite-runtime")
_FACTS = (
    "import json, platform, sys\n"
    "lib, ver = platform.libc_ver()\n"
    "print(json.dumps({'version': '%d.%d' % sys.version_info[:2], 'full': platform.python_version(),\n"
    "                  'machine': platform.machine(), 'libc': lib, 'libc_version': ver,\n"
    "                  'executable': sys.executable}))\n"
)


def runtime_requirements(runtime: str) -> list[str]:
    """pip requirements for a --runtime value: numpy (below 2 for tflite-runtime), the runtime, psutil."""
    try:
        name, spec = parse_requirement(runtime, _RUNTIMES)
    except ValueError:
        raise BenchbotError(
            f"--runtime takes ai-edge-litert or tflite-runtime, optionally with a version such as "
            f"tflite-runtime==2.14.0, got '{runtime}'"
        ) from None
    tflite = name == "tflite-runtime"
    # tflite-runtime (last release 2.14) is built against numpy 1: with numpy 2 its import fails.
    return ["numpy<2" if tflite else "numpy", name + spec, "psutil"]


def platform_tags(machine: str, libc: str, libc_version: str) -> list[str]:
    """pip --platform values for a Linux device: every manylinux tag its glibc accepts, newest first."""
    if libc != "glibc" or not re.fullmatch(r"\d+\.\d+(\.\d+)?", libc_version or ""):
        raise BenchbotError(
            f"offline setup needs a glibc device to pick wheels for, found {libc or 'an unknown C library'} "
            f"{libc_version}; use online setup (without --offline)"
        )
    arch = {"arm64": "aarch64"}.get(machine, machine)
    major, minor = (int(x) for x in libc_version.split(".")[:2])
    if major != 2:
        raise BenchbotError(f"glibc {libc_version} is not a version pip knows wheels for")
    return manylinux_platforms(arch, (major, minor))


def wheel_cache_root() -> Path:
    """Where offline setup keeps downloaded wheels: ${XDG_CACHE_HOME:-~/.cache}/benchbot/wheels."""
    import os

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "benchbot" / "wheels"


_download_locks: dict[str, threading.Lock] = {}
_download_guard = threading.Lock()


def download_wheels(facts: dict[str, Any], requirements: list[str], echo: Echo,
                    cache_root: Path | None = None) -> list[Path]:
    """On this machine: fetch binary wheels of `requirements` for the device's Python and platform.

    The cache folder is tried first without any index, so a repeated setup works with no network.
    """
    version = str(facts["version"])
    nodot = version.replace(".", "")
    platforms = platform_tags(str(facts["machine"]), str(facts["libc"]), str(facts["libc_version"]))
    folder = (cache_root or wheel_cache_root()) / f"cp{nodot}-{platforms[0]}"
    folder.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
            "--progress-bar", "off", "--only-binary=:all:", "--implementation", "cp", "--python-version", version,
            "--abi", f"cp{nodot}", "--abi", "abi3", "--abi", "none", "--dest", str(folder)]
    for tag in platforms:
        argv += ["--platform", tag]
    with _download_guard:
        lock = _download_locks.setdefault(str(folder), threading.Lock())
    with lock:
        done = subprocess.run(argv + ["--no-index", "--find-links", str(folder), *requirements],
                              capture_output=True, text=True)
        if done.returncode != 0:
            echo(f"  downloading wheels for Python {version} on {platforms[0]} into {folder}")
            done = subprocess.run(argv + requirements, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines[-1:] or ["pip failed"]
        if "No module named pip" in done.stderr:
            errors = [f"pip is not installed for {sys.executable}"]
        raise BenchbotError(f"cannot download wheels of {', '.join(requirements)} for Python {version} on "
                            f"{platforms[0]}: {errors[0]}")
    found: list[Path] = []
    for line in done.stdout.splitlines():
        m = re.search(r"(?:Saved|File was already downloaded)\s+(.+\.whl)\s*$", line.strip())
        if m:
            path = Path(m.group(1))
            path = path if path.is_absolute() else folder / path.name
            if path.is_file() and path not in found:
                found.append(path)
    if not found:  # an unknown pip wording: send the whole folder rather than too little
        found = sorted(folder.glob("*.whl"))
    accepted = device_tags(version, platforms)
    for path in found:
        try:
            fits = parse_wheel(path.name).fits(accepted)
        except ValueError as exc:
            raise BenchbotError(f"refusing a wheel with an unexpected file name: {path.name!r}") from exc
        if not fits:  # pip chose it, so it was put in the cache by hand
            raise BenchbotError(f"{path.name} does not install on Python {version} on {platforms[0]}; "
                                f"remove it from {folder} and run setup again")
    return found


@dataclass
class _Setup:
    profile: Profile
    transport: Transport
    echo: Echo
    time_scale: float = 1.0

    def say(self, text: str) -> None:
        self.echo(f"{self.profile.name}: {text}")

    def run(self, argv: list[str], deadline_s: float = 600.0) -> tuple[int | None, list[str], str]:
        lines: list[str] = []
        result = self.transport.run(argv, b"", lines.append, deadline_s=deadline_s * self.time_scale)
        if result.timed_out:
            raise BenchbotError(f"{self.profile.name}: `{' '.join(argv[:4])} ...` did not finish within "
                                f"{deadline_s * self.time_scale:.0f} s")
        if result.returncode is None:
            tail = result.stderr_tail.strip().splitlines()[-1:] or ["connection lost"]
            raise BenchbotError(f"{self.profile.name}: {tail[0]}")
        return result.returncode, lines, result.stderr_tail

    def fail(self, what: str, lines: list[str], stderr: str) -> BenchbotError:
        text = [ln.strip() for ln in (stderr.splitlines() + lines) if ln.strip()]
        errors = [ln for ln in text if ln.startswith("ERROR") or "Error" in ln] or text[-1:] or ["no output"]
        return BenchbotError(f"{self.profile.name}: {what}: {errors[-1]}")


def venv_folder(profile: Profile, transport: Transport) -> str:
    """The venv that `[device] python` points into (…/venv/bin/python -> …/venv)."""
    where = f"in {profile.path}" if profile.path else "in its profile"
    if not profile.python and profile.transport == "local":
        raise BenchbotError(
            f"{profile.name}: the agent runs with benchbot's own Python ({sys.executable}), which has what it "
            f"needs; to set up another one, set [device] python {where} to a venv interpreter"
        )
    if not profile.python:
        raise BenchbotError(
            f"{profile.name}: [device] python is not set {where}; set it to a venv interpreter such as "
            f"\"~/.cache/benchbot/venv/bin/python\" and run setup again"
        )
    path = PurePosixPath(profile.python)
    if not (path.is_absolute() or profile.python.startswith("~/")) or path.parent.name != "bin" \
            or not path.name.startswith("python") or len(path.parts) < 3:
        raise BenchbotError(
            f"{profile.name}: [device] python = \"{profile.python}\" {where} is not inside a venv "
            f"(…/bin/python); point it at one, e.g. \"~/.cache/benchbot/venv/bin/python\""
        )
    return transport.expand_user(str(path.parent.parent))


def _workdir(profile: Profile, transport: Transport) -> str:
    remote = getattr(transport, "remote_workdir", None)
    return remote if isinstance(remote, str) else transport.expand_user(profile.workdir)


def setup_device(profile: Profile, requirements: list[str], offline: bool, base_python: str, echo: Echo,
                 cache_root: Path | None = None) -> dict[str, Any]:
    """Create the venv on the device and install numpy, the runtime and psutil; return the new fingerprint."""
    transport = for_profile(profile)
    try:
        transport.open()
        step = _Setup(profile, transport, echo, time_scale=min(max(profile.time_scale, 1.0), 20.0))
        venv = venv_folder(profile, transport)
        python = device_python(profile, transport)

        rc, lines, err = step.run([base_python, "-c", _FACTS], deadline_s=60)
        facts: dict[str, Any] | None = None
        for line in lines:
            try:
                facts = json.loads(line)
            except ValueError:
                continue
        if rc != 0 or not facts:
            raise step.fail(f"cannot run {base_python} (install Python 3.8 or newer, or pass --base-python)",
                            lines, err)
        step.say(f"{base_python} is Python {facts['full']} on {facts['machine']} "
                 f"({facts['libc'] or 'unknown libc'} {facts['libc_version']})")

        _make_venv(step, base_python, venv, python)
        wheels: list[Path] = []
        if offline:
            wheels = download_wheels(facts, ["pip", *requirements], echo, cache_root)

        pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
        if offline:
            wheel_dir = f"{_workdir(profile, transport)}/wheels/cp{str(facts['version']).replace('.', '')}"
            sent = transport.bytes_sent
            pairs: list[str] = []
            for wheel in wheels:
                pairs += [transport.push(wheel, sha256_file(wheel)), wheel.name]
            link = 'd=$1; shift; mkdir -p "$d" || exit 1; while [ $# -gt 1 ]; do ln -sf "$1" "$d/$2" || exit 1; shift 2; done'
            rc, lines, err = step.run(["/bin/sh", "-c", link, "sh", wheel_dir, *pairs], deadline_s=60)
            if rc != 0:
                raise step.fail(f"cannot place the wheels in {wheel_dir}", lines, err)
            sent = transport.bytes_sent - sent
            step.say(f"{len(wheels)} wheels in {wheel_dir} "
                     + (f"({sent / 2**20:.1f} MiB pushed)" if sent else "(all were already on the device)"))
            pip += ["--no-index", "--find-links", wheel_dir]
        rc, lines, err = step.run([*pip, "--upgrade", "pip"], deadline_s=600)
        if rc != 0:
            raise step.fail("cannot upgrade pip in the venv", lines, err)
        step.say(f"installing {' '.join(requirements)}" + (" from the pushed wheels" if offline else " from the index"))
        rc, lines, err = step.run([*pip, *requirements], deadline_s=1800)
        if rc != 0:
            raise step.fail(f"pip could not install {' '.join(requirements)}", lines, err)

        fp, why = _hello(profile, transport, python)
        if fp is None:
            raise BenchbotError(f"{why} (after installing)")
        if not fp.get("runtime") or not fp.get("numpy"):
            problem = fp.get("runtime_error") or fp.get("numpy_error") or "the runtime cannot be imported"
            raise BenchbotError(f"{profile.name}: installed, but the agent cannot use it: {problem}")
        step.say(f"ready: {fp['runtime']} {fp.get('runtime_version')}, numpy {fp['numpy']}, "
                 f"psutil {fp.get('psutil') or 'absent'} (Python {fp.get('python')}, {python})")
        return fp
    except TransportError as exc:
        raise BenchbotError(str(exc)) from None
    finally:
        try:
            transport.close()
        except Exception:  # noqa: BLE001
            pass


_VENV_STATE = (
    'd=$1; if [ -f "$d/pyvenv.cfg" ]; then echo venv; elif [ ! -e "$d" ]; then echo absent; '
    'elif [ -d "$d" ] && [ -z "$(ls -A "$d")" ]; then echo empty; else echo occupied; fi'
)


def _make_venv(step: _Setup, base_python: str, venv: str, python: str) -> None:
    """`python3 -m venv`; without ensurepip, virtualenv, else a venv that borrows the system's pip.

    Only a missing or empty folder becomes a venv, and an existing venv is reused: setup never
    turns a folder holding anything else (say /usr, when python points at /usr/bin/python3) into one.
    """
    rc, lines, err = step.run(["/bin/sh", "-c", _VENV_STATE, "sh", venv], deadline_s=60)
    state = lines[-1].strip() if rc == 0 and lines else ""
    if state == "venv":
        rc, _lines, _err = step.run([python, "-c", "import sys; sys.exit(sys.prefix == sys.base_prefix)"],
                                    deadline_s=60)
        if rc != 0:
            raise BenchbotError(f"{step.profile.name}: the venv {venv} is broken ({python} does not run as its "
                                f"interpreter); remove the folder and run setup again")
        step.say(f"using the existing venv {venv}")
        return
    if state not in ("absent", "empty"):
        raise BenchbotError(
            f"{step.profile.name}: {venv} exists and is not a venv, so setup will not touch it; point "
            f"[device] python at a new folder's bin/python, e.g. \"~/.cache/benchbot/venv/bin/python\""
        )
    rc, lines, err = step.run([base_python, "-m", "venv", venv], deadline_s=300)
    if rc == 0:
        step.say(f"created the venv {venv}")
        return
    if "ensurepip" not in err + "\n".join(lines):
        raise step.fail(f"cannot create the venv {venv}", lines, err)
    step.run(["rm", "-rf", venv], deadline_s=60)  # the half-made venv without pip that we just created
    rc, lines, err = step.run([base_python, "-m", "virtualenv", venv], deadline_s=300)
    if rc == 0:
        step.say(f"{base_python} has no ensurepip (python3-venv is not installed): created {venv} with virtualenv")
        return
    rc, lines, err = step.run([base_python, "-m", "pip", "--version"], deadline_s=60)
    if rc != 0:
        raise BenchbotError(
            f"{step.profile.name}: {base_python} has neither ensurepip, virtualenv nor pip; install one on the "
            f"device (e.g. sudo apt install python3-venv) and run setup again"
        )
    rc, lines, err = step.run([base_python, "-m", "venv", "--without-pip", "--system-site-packages", venv],
                              deadline_s=300)
    if rc != 0:
        raise step.fail(f"cannot create the venv {venv}", lines, err)
    step.say(f"{base_python} has no ensurepip (python3-venv is not installed): created {venv} with "
             f"--system-site-packages, so it uses the system's pip (and any system numpy)")


def setup_devices(names: list[str], runtime: str, offline: bool, base_python: str, echo: Echo,
                  cache_root: Path | None = None) -> dict[str, str]:
    """Set up every device (in parallel), printing progress; return {name: why} of those that failed."""
    requirements = runtime_requirements(runtime)
    profiles = load_devices(names)
    lock = threading.Lock()

    def say(text: str) -> None:
        with lock:
            echo(text)

    def one(profile: Profile) -> str | None:
        try:
            setup_device(profile, requirements, offline, base_python, say, cache_root)
        except BenchbotError as exc:
            text = str(exc)
            return text if text.startswith(f"{profile.name}:") else f"{profile.name}: {text}"
        except Exception as exc:  # noqa: BLE001 - one device's surprise must not stop the others
            return f"{profile.name}: {type(exc).__name__}: {exc}"
        return None

    with ThreadPoolExecutor(max_workers=min(8, len(profiles))) as pool:
        outcomes = list(pool.map(one, profiles))
    return {p.name: why for p, why in zip(profiles, outcomes) if why}
