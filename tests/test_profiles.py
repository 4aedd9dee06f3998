"""Device profiles: the bundled ones load; bad ones give one clear sentence naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchbot.profiles import ProfileError, load_profile, parse_profile

BUNDLED = Path(__file__).resolve().parent.parent / "device_profiles"


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


def test_every_bundled_key_is_documented_by_a_comment() -> None:
    for path in BUNDLED.glob("*.toml"):
        text = path.read_text()
        assert text.lstrip().startswith("#"), f"{path} starts without a comment"


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
