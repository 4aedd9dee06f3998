"""Fast checks of the QEMU plumbing: command line, cache key, stale pid files. Nothing boots here."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from benchbot.qemu import doctor as doctor_mod
from benchbot.qemu.image import Image, ImageSettings, _platform_tags, cache_key
from benchbot.qemu.vm import VM, EmulateSettings, is_our_qemu, known_hosts_line, qemu_command, read_ssh_banner


def _image(tmp_path: Path) -> Image:
    folder = tmp_path / "img"
    folder.mkdir()
    pub = folder / "ssh_host_ed25519_key.pub"
    pub.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests benchbot-qemu-host\n")
    return Image(
        folder=folder, disk=folder / "disk.qcow2", kernel=folder / "vmlinuz", initrd=folder / "initrd.img",
        user_key=folder / "id_ed25519", host_pubkey=pub, guest_python="/opt/benchbot/venv/bin/python",
        user="root", key="0123456789abcdef", kernel_cmdline="root=/dev/vda rw console=ttyAMA0",
    )


def _arg_after(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def test_qemu_command_defaults(tmp_path: Path) -> None:
    image = _image(tmp_path)
    overlay = tmp_path / "vm" / "overlay.qcow2"
    argv = qemu_command(image, overlay, EmulateSettings(), 2222, tmp_path / "console.log", tmp_path / "pid")
    assert argv[0] == "qemu-system-aarch64"
    assert _arg_after(argv, "-cpu") == ["cortex-a72"]
    assert _arg_after(argv, "-smp") == ["4"]
    assert _arg_after(argv, "-m") == ["4096"]
    assert _arg_after(argv, "-M") == ["virt"]
    assert _arg_after(argv, "-accel") == ["tcg,thread=multi"]
    assert _arg_after(argv, "-kernel") == [str(image.kernel)]
    assert _arg_after(argv, "-initrd") == [str(image.initrd)]
    assert "console=ttyAMA0" in _arg_after(argv, "-append")[0]
    assert all(isinstance(a, str) for a in argv)


def test_qemu_command_settings_and_pauth(tmp_path: Path) -> None:
    image = _image(tmp_path)
    emulate = EmulateSettings(cpu="max", cores=2, memory_mib=2048, extra_args=("-d", "guest_errors"))
    argv = qemu_command(image, tmp_path / "o.qcow2", emulate, 2222, tmp_path / "c.log", tmp_path / "p")
    assert _arg_after(argv, "-cpu") == ["max,pauth-impdef=on"]
    assert _arg_after(argv, "-smp") == ["2"]
    assert _arg_after(argv, "-m") == ["2048"]
    assert argv[-2:] == ["-d", "guest_errors"]
    a53 = EmulateSettings(cpu="cortex-a53")
    other = qemu_command(image, tmp_path / "o.qcow2", a53, 1, tmp_path / "c", tmp_path / "p")
    assert _arg_after(other, "-cpu") == ["cortex-a53"]


def test_qemu_command_network_is_loopback_only(tmp_path: Path) -> None:
    image = _image(tmp_path)
    argv = qemu_command(image, tmp_path / "o.qcow2", EmulateSettings(), 40123, tmp_path / "c", tmp_path / "p")
    netdevs = _arg_after(argv, "-netdev")
    assert netdevs == ["user,id=n0,hostfwd=tcp:127.0.0.1:40123-:22"]
    joined = " ".join(argv)
    assert "0.0.0.0" not in joined
    assert joined.count("hostfwd=") == 1


def test_qemu_command_uses_overlay_not_base(tmp_path: Path) -> None:
    image = _image(tmp_path)
    overlay = tmp_path / "state" / "overlay.qcow2"
    argv = qemu_command(image, overlay, EmulateSettings(), 2222, tmp_path / "c", tmp_path / "p")
    drives = _arg_after(argv, "-drive")
    assert len(drives) == 1
    assert f"file={overlay}," in drives[0]
    assert str(image.disk) not in " ".join(argv)


def test_qemu_command_escapes_commas(tmp_path: Path) -> None:
    overlay = tmp_path / "a,b" / "overlay.qcow2"
    image = _image(tmp_path)
    argv = qemu_command(image, overlay, EmulateSettings(), 2222, tmp_path / "c,d.log", tmp_path / "p")
    assert f"file={tmp_path}/a,,b/overlay.qcow2," in _arg_after(argv, "-drive")[0]
    assert _arg_after(argv, "-serial") == [f"file:{tmp_path}/c,,d.log"]


def test_known_hosts_line(tmp_path: Path) -> None:
    line = known_hosts_line(_image(tmp_path), 40123)
    assert line == "[127.0.0.1]:40123 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests"


WHEELS = [("tflite_runtime-2.14.0-cp311-cp311-manylinux_2_34_aarch64.whl", "aa" * 32),
          ("ai_edge_litert-2.3.0-cp311-cp311-manylinux_2_27_aarch64.whl", "bb" * 32)]


def test_cache_key_is_stable() -> None:
    assert cache_key(ImageSettings(), WHEELS) == cache_key(ImageSettings(), list(reversed(WHEELS)))
    assert len(cache_key(ImageSettings(), WHEELS)) == 16
    # The order extra packages are given in does not matter, nor duplicates of base packages.
    a = ImageSettings(extra_packages=("htop", "less"))
    b = ImageSettings(extra_packages=("less", "htop", "python3"))
    assert cache_key(a, WHEELS) == cache_key(b, WHEELS)


@pytest.mark.parametrize(
    "changed",
    [
        lambda s, w: (replace(s, suite="trixie"), w),
        lambda s, w: (replace(s, extra_packages=("htop",)), w),
        lambda s, w: (replace(s, free_space_mib=2048), w),
        lambda s, w: (s, [(WHEELS[0][0], "cc" * 32), WHEELS[1]]),
        lambda s, w: (s, [(WHEELS[0][0].replace("2.14.0", "2.13.0"), "aa" * 32), WHEELS[1]]),
        lambda s, w: (s, w[:1]),
    ],
)
def test_cache_key_changes_with_inputs(changed) -> None:  # type: ignore[no-untyped-def]
    base = cache_key(ImageSettings(), WHEELS)
    settings, wheels = changed(ImageSettings(), WHEELS)
    assert cache_key(settings, wheels) != base


def test_cache_key_changes_with_build_version(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchbot.qemu import image as image_mod

    base = cache_key(ImageSettings(), WHEELS)
    monkeypatch.setattr(image_mod, "BUILD_VERSION", image_mod.BUILD_VERSION + "-next")
    assert cache_key(ImageSettings(), WHEELS) != base


def test_platform_tags_cover_older_manylinux() -> None:
    tags = _platform_tags((2, 36))
    assert tags[0] == "manylinux_2_36_aarch64"
    assert "manylinux_2_34_aarch64" in tags and "manylinux_2_27_aarch64" in tags
    assert "manylinux_2_17_aarch64" in tags and "manylinux2014_aarch64" in tags


def test_stale_pid_live_non_qemu_process(tmp_path: Path) -> None:
    vm = VM("t", _image(tmp_path), state_dir=tmp_path / "vm", log=lambda _m: None)
    vm.state_dir.mkdir()
    vm.pidfile.write_text(f"{os.getpid()}\n")  # alive, but it is pytest, not our qemu
    assert not is_our_qemu(os.getpid(), vm.overlay)
    assert vm.status()["running"] is False
    assert vm.stop() is False  # must not signal pytest
    assert not vm.pidfile.exists()


def test_stale_pid_dead_process(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    vm = VM("t", _image(tmp_path), state_dir=tmp_path / "vm", log=lambda _m: None)
    vm.state_dir.mkdir()
    vm.pidfile.write_text(f"{proc.pid}\n")
    vm.state_file.write_text('{"port": 2222, "started_at": 0}')
    assert vm.status() == {"running": False, "pid": None, "port": None, "uptime": None, "boot_seconds": None}


def test_pid_of_qemu_on_another_overlay_is_not_ours(tmp_path: Path) -> None:
    """A process named like qemu but running another overlay (another VM) is not this VM's."""
    fake = tmp_path / "qemu-system-aarch64"
    fake.symlink_to(sys.executable)  # argv[0] is kept as invoked: looks like qemu in /proc/PID/cmdline
    mine = tmp_path / "mine.qcow2"
    other = tmp_path / "other.qcow2"
    argv = [str(fake), "-c", "import time; time.sleep(30)", "-drive", f"file={other},id=hd0"]
    proc = subprocess.Popen(argv)
    try:
        deadline = time.monotonic() + 10  # between fork and exec the child still shows pytest's cmdline
        while not Path(f"/proc/{proc.pid}/cmdline").read_bytes().startswith(str(fake).encode()):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not is_our_qemu(proc.pid, mine)
        assert is_our_qemu(proc.pid, other)
    finally:
        proc.kill()
        proc.wait()
    assert not is_our_qemu(proc.pid, other)  # reaped: gone


def test_read_ssh_banner_needs_a_banner() -> None:
    """An accepting socket that sends nothing (QEMU's forwarder before sshd runs) is not 'up'."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(2)
    port = srv.getsockname()[1]

    def serve() -> None:
        conn, _ = srv.accept()
        conn.close()  # accept then drop: like slirp when nothing listens in the guest
        conn, _ = srv.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert read_ssh_banner(port, timeout_s=2) == b""
    assert read_ssh_banner(port, timeout_s=2).startswith(b"SSH-2.0-")
    thread.join(timeout=2)
    srv.close()


def test_install_hint_names_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    checks = [
        doctor_mod.Check("qemu-system-aarch64", False, "not found", "qemu-system-arm"),
        doctor_mod.Check("mmdebstrap", True, "/usr/bin/mmdebstrap", "mmdebstrap"),
        doctor_mod.Check("qemu-aarch64-static", False, "not found", "qemu-user-static"),
    ]
    monkeypatch.setattr(doctor_mod.os, "geteuid", lambda: 1000)
    hint = doctor_mod.install_hint(checks)
    assert hint == "sudo apt-get install qemu-system-arm qemu-user-static binfmt-support"
    monkeypatch.setattr(doctor_mod.os, "geteuid", lambda: 0)
    assert doctor_mod.install_hint().startswith("apt-get install qemu-system-arm qemu-user-static")


def test_binfmt_check_reads_registration(tmp_path: Path) -> None:
    assert not doctor_mod.binfmt_check(tmp_path).ok  # not mounted
    (tmp_path / "status").write_text("enabled\n")
    missing = doctor_mod.binfmt_check(tmp_path)
    assert not missing.ok and "update-binfmts --enable qemu-aarch64" in missing.fix
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n"
                                           "flags: PF\noffset 0\n")
    assert doctor_mod.binfmt_check(tmp_path).ok
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/bin/qemu-aarch64\nflags: \n")
    assert not doctor_mod.binfmt_check(tmp_path).ok


def test_image_json_round_trip(tmp_path: Path) -> None:
    image = _image(tmp_path)
    image.manifest = {"kernel": "6.1.0-x-arm64"}
    image.built_seconds = 360.0
    (image.folder / "image.json").write_text(json.dumps(image.to_json()))
    loaded = Image.load(image.folder)
    assert loaded == image
    assert json.loads((image.folder / "image.json").read_text())["disk"] == "disk.qcow2"  # relative


def test_wheel_resolution_is_reused_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchbot.qemu import image as image_mod

    calls: list[list[str]] = []

    def fake_run(argv: list[str], log: object, what: str, **kwargs: object) -> str:
        calls.append(argv)
        out = Path(argv[argv.index("-d") + 1])
        out.mkdir(parents=True, exist_ok=True)
        (out / WHEELS[0][0]).write_bytes(b"wheel")
        return ""

    monkeypatch.setattr(image_mod, "_run", fake_run)
    first = image_mod.fetch_wheels(ImageSettings(), tmp_path, log=lambda _m: None)
    second = image_mod.fetch_wheels(ImageSettings(), tmp_path, log=lambda _m: None)
    assert len(calls) == 1 and first == second
    assert first[0].project == "tflite-runtime" and first[0].version == "2.14.0"
    assert "--platform" in calls[0] and "manylinux_2_34_aarch64" in calls[0]
