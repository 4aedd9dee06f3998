"""Device profiles: TOML files that say how to reach a device and how to benchmark on it.

Validation is strict (unknown keys are errors) because a typo in a profile
otherwise silently falls back to a default and benchmarks the wrong thing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from benchbot.errors import BenchbotError

TRANSPORTS = ("local", "ssh", "qemu", "labgrid")
RUNTIMES = ("auto", "ai_edge_litert", "tflite_runtime", "tensorflow")
HOST_KEY_POLICIES = ("strict", "accept-new")


class ProfileError(BenchbotError):
    """A profile is missing, malformed or names something impossible."""


@dataclass(frozen=True)
class SSHConfig:
    host: str = ""
    port: int | None = None
    user: str | None = None
    key: str | None = None
    use_ssh_config: bool = True
    password_env: str | None = None
    host_key_policy: str = "strict"
    connect_timeout_s: float = 10.0
    keepalive_s: float = 15.0
    connect_retries: int = 3


@dataclass(frozen=True)
class EmulateConfig:
    cpu: str = "cortex-a72"
    cores: int = 4
    memory_mib: int = 4096


@dataclass(frozen=True)
class LabgridConfig:
    """Where a board farm's place is acquired (benchbot.transport.labgrid): a place by name, or any with tags."""

    coordinator: str = ""
    place: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    wait_s: float = 60.0


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path | None
    description: str = ""
    transport: str = "local"
    python: str = ""
    workdir: str = "~/.cache/benchbot"
    runtime: str = "auto"
    threads: tuple[int, ...] = (1,)
    repetitions: int = 5
    cooldown_max_s: float = 0.0
    cooldown_margin_c: float = 3.0
    telemetry_interval_ms: int = 100
    emulated: bool = False
    time_scale: float = 1.0
    ssh: SSHConfig = field(default_factory=SSHConfig)
    emulate: EmulateConfig | None = None
    labgrid: LabgridConfig | None = None

    def with_name(self, name: str) -> Profile:
        from dataclasses import replace

        return replace(self, name=name)


# key -> (python type(s), description) per table; used for validation and for the error text.
_SCHEMA: dict[str, dict[str, tuple[type | tuple[type, ...], str]]] = {
    "": {
        "name": (str, "a device name"),
        "description": (str, "text"),
        "transport": (str, f"one of {', '.join(TRANSPORTS)}"),
        "emulated": (bool, "true or false"),
    },
    "ssh": {
        "host": (str, "a host name, an address or an alias from ~/.ssh/config"),
        "port": (int, "a port number 1-65535"),
        "user": (str, "a user name"),
        "key": (str, "a path to a private key file"),
        "use_ssh_config": (bool, "true or false"),
        "password_env": (str, "the NAME of an environment variable holding the password"),
        "host_key_policy": (str, f"one of {', '.join(HOST_KEY_POLICIES)}"),
        "connect_timeout_s": ((int, float), "seconds > 0"),
        "keepalive_s": ((int, float), "seconds >= 0"),
        "connect_retries": (int, "a count >= 0"),
    },
    "device": {
        "python": (str, "the Python interpreter on the device"),
        "workdir": (str, "a folder on the device"),
        "runtime": (str, f"one of {', '.join(RUNTIMES)}"),
        "time_scale": ((int, float), "a factor >= 1 for slow (emulated) devices"),
    },
    "bench": {
        "threads": (list, "a list of thread counts >= 1, e.g. [1, 4]"),
        "repetitions": (int, "a count 1-1000 of agent processes per cell"),
        "cooldown_max_s": ((int, float), "seconds >= 0"),
        "cooldown_margin_c": ((int, float), "degrees >= 0"),
    },
    "telemetry": {
        "interval_ms": (int, "milliseconds >= 10"),
    },
    "labgrid": {
        "coordinator": (str, "HOST:PORT of the labgrid coordinator"),
        "place": (str, "the name of a labgrid place"),
        "tags": (dict, "a table of tags a free place must have, e.g. { board = \"pi4\" }"),
        "wait_s": ((int, float), "seconds >= 0 to wait for a taken place"),
    },
    "emulate": {
        "cpu": (str, "a QEMU cpu model such as cortex-a72"),
        "cores": (int, "a core count 1-8"),
        "memory_mib": (int, "MiB >= 256"),
    },
}


def location(profile: Profile) -> str:
    """Where a device is reached, for listings: never more than host, port and user."""
    if profile.transport == "ssh":
        ssh = profile.ssh
        return f"ssh {ssh.user + '@' if ssh.user else ''}{ssh.host}{':' + str(ssh.port) if ssh.port else ''}"
    if profile.transport == "labgrid" and profile.labgrid is not None:
        lab = profile.labgrid
        what = f"place {lab.place}" if lab.place else "a place with " + ",".join(f"{k}={v}" for k, v in lab.tags)
        return f"labgrid {what} via {lab.coordinator}"
    return {"local": "this machine", "qemu": "QEMU arm64 guest on 127.0.0.1"}.get(profile.transport, profile.transport)


BUNDLED_DIR = Path(__file__).resolve().parent / "device_profiles"
"""The profiles shipped inside the package (package data), so a wheel installed anywhere finds them."""
USER_DIR_NAME = "device_profiles"
"""The folder in the current directory whose profiles override the bundled ones (and where `init` writes)."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def profile_dirs() -> list[Path]:
    """Where profiles are looked up, first match wins: $BENCHBOT_PROFILES, ./device_profiles, the bundled ones."""
    dirs: list[Path] = []
    env = os.environ.get("BENCHBOT_PROFILES")
    if env:
        dirs.extend(Path(p) for p in env.split(os.pathsep) if p)
    dirs.append(Path.cwd() / USER_DIR_NAME)
    if BUNDLED_DIR not in dirs:
        dirs.append(BUNDLED_DIR)
    return dirs


def available_profiles() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in profile_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found.setdefault(path.stem, path)
    return found


def load_profile(name_or_path: str) -> Profile:
    """Load a profile by device name (looked up in the profile folders) or by file path."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or os.sep in name_or_path:
        if not candidate.is_file():
            raise ProfileError(f"profile file {name_or_path} does not exist")
        return parse_profile(candidate)
    known = available_profiles()
    if name_or_path not in known:
        names = ", ".join(sorted(known)) or "none"
        raise ProfileError(
            f"unknown device '{name_or_path}': no {name_or_path}.toml in "
            f"{', '.join(str(d) for d in profile_dirs())} (known devices: {names})"
        )
    return parse_profile(known[name_or_path])


def init_profile(name: str, source: str, force: bool = False, folder: Path | None = None) -> Path:
    """Write an editable copy of profile `source` (a device name or a .toml path) as `folder`/NAME.toml.

    The copy keeps the source's comments, which document every key; `folder` defaults to
    ./device_profiles, which is searched before the bundled profiles.
    """
    if not _NAME.fullmatch(name) or name.endswith(".toml"):
        raise ProfileError(f"device name '{name}' must be letters, digits, '.', '_' or '-' (without .toml)")
    original = load_profile(source)
    assert original.path is not None  # loaded from a file
    text = original.path.read_text()
    if re.search(r"(?m)^name\s*=", text.split("\n[", 1)[0]):
        head, sep, rest = text.partition("\n[")
        text = re.sub(r"(?m)^name\s*=.*$", f'name = "{name}"', head, count=1) + sep + rest
    target = (folder if folder is not None else Path.cwd() / USER_DIR_NAME) / f"{name}.toml"
    if target.exists() and not force:
        raise ProfileError(f"{target} already exists; pass --force to overwrite it")
    header = f"# {name}: copied from {original.name} ({original.path.name}) by `benchbot devices init`; edit freely.\n"
    profile_from_dict(tomllib.loads(header + text), name, target)  # the copy must load as the new name
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(header + text)
    except OSError as exc:
        raise ProfileError(f"cannot write {target} ({exc.strerror})") from None
    return target


def parse_profile(path: Path) -> Profile:
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot be read ({exc.strerror})") from None
    return profile_from_dict(data, path.stem, path)


def profile_from_dict(data: dict[str, Any], default_name: str, path: Path | None = None) -> Profile:
    where = str(path) if path else default_name
    _check_keys(data, where)

    def get(table: str, key: str, default: Any) -> Any:
        section = data if not table else data.get(table, {})
        return section.get(key, default)

    def fail(key: str, problem: str) -> ProfileError:
        return ProfileError(f"{where}: key '{key}' {problem}")

    transport = get("", "transport", "local")
    if transport not in TRANSPORTS:
        raise fail("transport", f"must be one of {', '.join(TRANSPORTS)}, got '{transport}'")
    runtime = get("device", "runtime", "auto")
    if runtime not in RUNTIMES:
        raise fail("device.runtime", f"must be one of {', '.join(RUNTIMES)}, got '{runtime}'")
    threads_raw = get("bench", "threads", [1])
    if not threads_raw or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 1 for t in threads_raw):
        raise fail("bench.threads", f"must be a non-empty list of thread counts >= 1, got {threads_raw!r}")
    repetitions = get("bench", "repetitions", 5)
    if not 1 <= repetitions <= 1000:
        raise fail("bench.repetitions", f"must be between 1 and 1000, got {repetitions}")
    interval = get("telemetry", "interval_ms", 100)
    if interval < 10:
        raise fail("telemetry.interval_ms", f"must be at least 10, got {interval}")
    for key in ("cooldown_max_s", "cooldown_margin_c"):
        if get("bench", key, 0) < 0:
            raise fail(f"bench.{key}", "must not be negative")
    time_scale = float(get("device", "time_scale", 1.0))
    if time_scale < 1:
        raise fail("device.time_scale", f"must be at least 1, got {time_scale}")

    ssh_table = data.get("ssh", {})
    policy = ssh_table.get("host_key_policy", "strict")
    if policy not in HOST_KEY_POLICIES:
        raise fail("ssh.host_key_policy", f"must be one of {', '.join(HOST_KEY_POLICIES)}, got '{policy}'")
    port = ssh_table.get("port")
    if port is not None and not 1 <= port <= 65535:
        raise fail("ssh.port", f"must be between 1 and 65535, got {port}")
    if transport == "ssh" and not ssh_table.get("host"):
        raise fail("ssh.host", "is required when transport = \"ssh\"")
    ssh = SSHConfig(
        host=ssh_table.get("host", ""),
        port=port,
        user=ssh_table.get("user"),
        key=ssh_table.get("key"),
        use_ssh_config=ssh_table.get("use_ssh_config", True),
        password_env=ssh_table.get("password_env") or None,
        host_key_policy=policy,
        connect_timeout_s=float(ssh_table.get("connect_timeout_s", 10.0)),
        keepalive_s=float(ssh_table.get("keepalive_s", 15.0)),
        connect_retries=int(ssh_table.get("connect_retries", 3)),
    )
    emulate = None
    if "emulate" in data:
        table = data["emulate"]
        cores, memory = table.get("cores", 4), table.get("memory_mib", 4096)
        if not 1 <= cores <= 8:
            raise fail("emulate.cores", f"must be between 1 and 8, got {cores}")
        if memory < 256:
            raise fail("emulate.memory_mib", f"must be at least 256, got {memory}")
        emulate = EmulateConfig(cpu=table.get("cpu", "cortex-a72"), cores=cores, memory_mib=memory)
    if transport == "qemu" and emulate is None:
        emulate = EmulateConfig()
    labgrid = _labgrid_config(data.get("labgrid"), transport, fail)
    return Profile(
        name=data.get("name", default_name),
        path=path,
        description=data.get("description", ""),
        transport=transport,
        python=get("device", "python", ""),
        workdir=get("device", "workdir", "~/.cache/benchbot"),
        runtime=runtime,
        threads=tuple(threads_raw),
        repetitions=int(repetitions),
        cooldown_max_s=float(get("bench", "cooldown_max_s", 0.0)),
        cooldown_margin_c=float(get("bench", "cooldown_margin_c", 3.0)),
        telemetry_interval_ms=int(interval),
        emulated=bool(data.get("emulated", transport == "qemu")),
        time_scale=time_scale,
        ssh=ssh,
        emulate=emulate,
        labgrid=labgrid,
    )


def _labgrid_config(table: dict[str, Any] | None, transport: str, fail: Any) -> LabgridConfig | None:
    """The [labgrid] table: required (coordinator, and place or tags) when transport = "labgrid"."""
    if table is None:
        if transport == "labgrid":
            raise fail("labgrid", 'is required when transport = "labgrid" (coordinator, and place or tags)')
        return None
    if not table.get("coordinator"):
        raise fail("labgrid.coordinator", "is required: HOST:PORT of the labgrid coordinator")
    place, tags = table.get("place", ""), table.get("tags", {})
    if bool(place) == bool(tags):
        raise fail("labgrid.place", "or labgrid.tags must be given, not both and not neither")
    for key, value in tags.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]+", key) or not isinstance(value, str) or not value:
            raise fail("labgrid.tags", f"must map tag names (lowercase, 2+ characters) to text, got {key!r} = {value!r}")
    wait = float(table.get("wait_s", 60.0))
    if wait < 0:
        raise fail("labgrid.wait_s", f"must not be negative, got {wait}")
    return LabgridConfig(coordinator=table["coordinator"], place=place, tags=tuple(sorted(tags.items())), wait_s=wait)


def _check_keys(data: dict[str, Any], where: str) -> None:
    for key, value in data.items():
        if key in _SCHEMA and key != "":
            if not isinstance(value, dict):
                raise ProfileError(f"{where}: '{key}' must be a table ([{key}])")
            for sub, sub_value in value.items():
                _check_value(where, key, sub, sub_value)
        elif key in _SCHEMA[""]:
            _check_value(where, "", key, value)
        else:
            known = sorted([k for k in _SCHEMA[""]] + [f"[{t}]" for t in _SCHEMA if t])
            raise ProfileError(f"{where}: unknown key '{key}' (known: {', '.join(known)})")


def _check_value(where: str, table: str, key: str, value: Any) -> None:
    full = f"{table}.{key}" if table else key
    spec = _SCHEMA[table].get(key)
    if "password" in key and key != "password_env":
        raise ProfileError(
            f"{where}: key '{full}' is not allowed: put the password in an environment variable "
            "and name it in ssh.password_env"
        )
    if full == "ssh.password_env" and value != "" and not _is_env_name(value):
        # Never echo it: a value that is not a variable name is most likely the password itself.
        raise ProfileError(
            f"{where}: key 'ssh.password_env' must be the name of an environment variable (letters, digits "
            "and _, not starting with a digit), not a password: put the password in an environment variable "
            "and name that variable here"
        )
    if spec is None:
        known = ", ".join(sorted(_SCHEMA[table]))
        raise ProfileError(f"{where}: unknown key '{full}' (known in [{table}]: {known})")
    types, meaning = spec
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ProfileError(f"{where}: key '{full}' must be {meaning}, got {value!r}")
    if not isinstance(value, types):
        raise ProfileError(f"{where}: key '{full}' must be {meaning}, got {value!r}")


def _is_env_name(value: Any) -> bool:
    """A POSIX environment variable name (what ssh.password_env must hold)."""
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value) is not None
