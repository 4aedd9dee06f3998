"""Device profiles: the bundled ones load; bad ones give one clear sentence naming file and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchbot.profiles import _SCHEMA, BUNDLED_DIR, ProfileError, init_profile, load_profile, parse_profile

BUNDLED = BUNDLED_DIR


@pytest.mark.parametrize("name", ["local", "pi4", "jetson-nano", "qemu-arm64"])
def test_bundled_profiles_load(name: str) -> None:
    profile = parse_profile(BUNDLED / f"{name}.toml")
    assert profile.name == name
    assert profile.threads and all(t >= 1 for t in profile.threads)
    if name in ("pi4", "jetson-nano"):
        assert profile.transport == "ssh" and profile.ssh.host and profile.ssh.host_key_policy == "strict"
        assert profile.emulate is not None
    if name == "qemu-arm64":
        assert profile.emulated and profile.transport == "qemu" and profile.emulate.cpu == "cortex-a72"


def _documented_keys(text: str) -> set[tuple[str, str]]:
    """(table, key) of every key, set or commented out, in a paragraph that also has an explaining comment."""
    found: set[tuple[str, str]] = set()
    table, block = "", []
    for line in [*text.splitlines(), ""]:
        stripped = line.strip()
        header = re.fullmatch(r"#?\s*\[([a-z_]+)\]", stripped)  # a table, or a commented-out example of one
        if stripped and not header:
            block.append(stripped)
            continue
        keys = [m.group(1) for m in (re.match(r"#?\s*([A-Za-z_]+)\s*=", s) for s in block) if m]
        if any(s.startswith("#") and not re.match(r"#\s*[A-Za-z_]+\s*=", s) for s in block):
            found.update((table, k) for k in keys)
        block = []
        if header:
            table = header.group(1)
    return found


def test_every_profile_key_is_documented_by_a_comment_in_a_bundled_profile() -> None:
    documented: set[tuple[str, str]] = set()
    for path in BUNDLED.glob("*.toml"):
        documented |= _documented_keys(path.read_text())
    every_key = {(table, key) for table, keys in _SCHEMA.items() for key in keys}
    assert every_key - documented == set()


def test_the_documentation_check_can_fail() -> None:
    assert _documented_keys('# comment\nthreads = 1\n\nruntime = "x"\n# runtime = "y"\n') == {("", "threads")}
    assert ("bench", "threads") in _documented_keys("[bench]\n# how many\nthreads = [1]\n")
    assert _documented_keys("# [labgrid]\n# # where\n# coordinator = \"h:1\"\n") == {("labgrid", "coordinator")}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('transport = "telnet"\n', "key 'transport' must be one of local, ssh, qemu"),
        ("[bench]\nthreads = [0]\n", "key 'bench.threads'"),
        ("[bench]\nthreads = 2\n", "key 'bench.threads' must be a list"),
        ('[ssh]\nhost = "h"\nport = "22"\n', "key 'ssh.port' must be a port number"),
        ('[ssh]\nhost = "h"\nport = 70000\n', "key 'ssh.port' must be between 1 and 65535"),
        ('[ssh]\nhost = "h"\npassword = "hunter2"\n', "key 'ssh.password' is not allowed"),
        ('transport = "ssh"\n', "key 'ssh.host' is required"),
        ("thread = 2\n", "unknown key 'thread'"),
        ("[bench]\nthred = [2]\n", "unknown key 'bench.thred'"),
        ("[bench\n", "not valid TOML"),
        ("[emulate]\ncores = 64\n", "key 'emulate.cores' must be between 1 and 8"),
        ('[device]\nruntime = "onnx"\n', "key 'device.runtime' must be one of"),
    ],
)
def test_bad_profile_names_file_and_key(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "board.toml"
    path.write_text(text)
    with pytest.raises(ProfileError) as info:
        parse_profile(path)
    message = str(info.value)
    assert str(path) in message and fragment in message
    assert "hunter2" not in message
    assert "\n" not in message


def test_unknown_device_lists_the_known_ones(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BENCHBOT_PROFILES", str(tmp_path))
    (tmp_path / "board.toml").write_text('description = "x"\n')
    with pytest.raises(ProfileError, match=r"unknown device 'nope'.*known devices: .*board"):
        load_profile("nope")
    assert load_profile("board").name == "board"


def test_init_writes_an_editable_copy_that_loads_under_the_new_name(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENCHBOT_PROFILES", raising=False)
    path = init_profile("myboard", "pi4")
    assert path == tmp_path / "device_profiles" / "myboard.toml"
    assert "host_key_policy" in path.read_text() and "# " in path.read_text()  # the comments come along
    profile = load_profile("myboard")
    assert profile.path == path and profile.transport == "ssh" and profile.ssh.host == "pi4.local"


def test_init_refuses_to_overwrite_without_force(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "device_profiles" / "board.toml"
    target.parent.mkdir()
    target.write_text("# mine\n")
    with pytest.raises(ProfileError, match=r"already exists; pass --force") as info:
        init_profile("board", "local")
    assert "\n" not in str(info.value) and target.read_text() == "# mine\n"
    init_profile("board", "local", force=True)
    assert load_profile("board").transport == "local"


def test_init_renames_a_source_that_names_itself(tmp_path: Path) -> None:
    source = tmp_path / "src.toml"
    source.write_text('name = "old"\ndescription = "x"\n[bench]\nthreads = [2]\n')
    path = init_profile("new", str(source), folder=tmp_path / "out")
    assert parse_profile(path).name == "new" and parse_profile(path).threads == (2,)


@pytest.mark.parametrize(("name", "source", "fragment"), [
    ("../evil", "local", "must be letters, digits"),
    ("board.toml", "local", "without .toml"),
    ("board", "nope", "unknown device 'nope'"),
])
def test_init_rejects_bad_names_in_one_sentence(tmp_path: Path, name: str, source: str, fragment: str) -> None:
    with pytest.raises(ProfileError, match=re.escape(fragment)) as info:
        init_profile(name, source, folder=tmp_path)
    assert "\n" not in str(info.value)
    assert not list(tmp_path.iterdir())
