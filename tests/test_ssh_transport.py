"""SSHTransport and hostkeys against real OpenSSH servers on 127.0.0.1 (see tests/sshd.py); no mocks."""

from __future__ import annotations

import hashlib
import os
import platform
import pwd
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from benchbot.transport import hostkeys
from benchbot.transport.base import TransportError
from benchbot.transport.ssh import SSHSettings, SSHTransport
from tests.sshd import SSHDServer, pid_alive

pytest_plugins = ["tests.sshd"]


@pytest.fixture(autouse=True)
def _no_personal_ssh(isolated_ssh_home: Path) -> None:
    """No key, agent or ssh config of whoever runs the tests may take part."""


@pytest.fixture
def server(sshd_server) -> SSHDServer:
    return sshd_server()


@pytest.fixture
def transport(server: SSHDServer, tmp_path: Path):
    t = SSHTransport(server.settings(tmp_path))
    t.kill_grace_s = 0.3
    t.open()
    yield t
    t.close()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def collect(t: SSHTransport, argv: list[str], stdin: bytes = b"", deadline_s: float = 20.0):
    lines: list[str] = []
    return t.run(argv, stdin, lines.append, deadline_s), lines


def wait_gone(pid: int, timeout: float = 3.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def ssh_keygen_fingerprint(public_key_file: Path) -> str:
    """`ED25519 SHA256:...` as OpenSSH prints it, to compare with ours."""
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(public_key_file)], check=True,
                         capture_output=True, text=True).stdout.split()
    return f"{out[-1].strip('()')} {out[1]}"


# ---------------------------------------------------------------- push


def test_push_is_content_addressed_and_counts_bytes(transport: SSHTransport, tmp_path: Path) -> None:
    model = tmp_path / "mobilenet_v2.tflite"
    model.write_bytes(os.urandom(200_000))
    digest = sha256_of(model)

    remote = transport.push(model, digest)
    assert remote == f"{tmp_path}/device-work/blobs/{digest}.tflite"
    assert Path(remote).read_bytes() == model.read_bytes()
    assert transport.bytes_sent == 200_000

    assert transport.push(model, digest) == remote
    copy = tmp_path / "same bytes other name.tflite"
    copy.write_bytes(model.read_bytes())
    assert transport.push(copy, digest) == remote
    assert transport.bytes_sent == 200_000, "a blob already on the device is not sent again"
    assert [p.name for p in Path(remote).parent.iterdir()] == [Path(remote).name], "no temporary files left"


def test_push_replaces_a_corrupt_blob_checked_on_the_device(transport: SSHTransport, tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"good model bytes" * 1000)
    digest = sha256_of(model)
    remote = Path(transport.push(model, digest))
    remote.write_bytes(b"truncated")  # same name, wrong content: only a hash on the device can tell

    assert transport.push(model, digest) == str(remote)
    assert remote.read_bytes() == model.read_bytes()
    assert transport.bytes_sent == 2 * model.stat().st_size


def test_push_refuses_content_that_does_not_match_its_hash(transport: SSHTransport, tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"these bytes")
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    with pytest.raises(TransportError, match="expected " + wrong):
        transport.push(model, wrong)
    blobs = tmp_path / "device-work" / "blobs"
    assert list(blobs.iterdir()) == [], "neither the blob nor its temporary file stays"


def test_push_of_missing_file_is_a_transport_error(transport: SSHTransport, tmp_path: Path) -> None:
    with pytest.raises(TransportError, match="no such file"):
        transport.push(tmp_path / "absent.tflite", "0" * 64)


def test_hostile_names_are_inert(transport: SSHTransport, tmp_path: Path) -> None:
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    canary = tmp_path / "canary"
    canary.write_text("still here")
    models = tmp_path / "models"
    models.mkdir()
    names = [
        "my model; rm -rf ~.tflite",
        "it's a \"quoted\" model.tflite",
        "$(touch PWNED) `touch PWNED`; touch PWNED .tflite",
        "tab\tand  spaces.tflite",
    ]
    try:
        for i, name in enumerate(names):
            path = models / name
            path.write_text(f"model {i}\n")
            remote = transport.push(path, sha256_of(path))
            assert Path(remote).name == f"{sha256_of(path)}.tflite"
            result, lines = collect(transport, ["cat", str(path), remote])
            assert (result.returncode, lines) == (0, [f"model {i}", f"model {i}"])

        args = [f"x; rm -f {canary}", f"$(rm -f {canary})", f"`rm -f {canary}`", "a  'b' \"c\"", "~", "*", ""]
        result, lines = collect(transport, ["printf", "%s\\n", *args])
        assert result.returncode == 0
        assert lines == args
        assert canary.read_text() == "still here"
        assert not (home / "PWNED").exists()
    finally:
        (home / "PWNED").unlink(missing_ok=True)


# ---------------------------------------------------------------- run


def test_lines_stream_in_order_while_the_command_runs(transport: SSHTransport, tmp_path: Path) -> None:
    go = tmp_path / "go"
    script = ('for i in $(seq 1 30); do echo "line $i"; sleep 0.01; done; echo ready; '
              'while [ ! -e "$1" ]; do sleep 0.02; done; echo done')
    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        if line == "ready":  # the command waits for this file: only lines seen before exit can create it
            go.touch()

    result = transport.run(["sh", "-c", script, "sh", str(go)], b"", on_line, 20)
    assert (result.returncode, result.timed_out) == (0, False)
    assert lines == [f"line {i}" for i in range(1, 31)] + ["ready", "done"]


def test_exit_status_signal_stderr_and_partial_last_line(transport: SSHTransport) -> None:
    result, lines = collect(transport, ["sh", "-c", "printf 'a\\r\\nb\\nno newline'; echo oops >&2; exit 3"])
    assert (result.returncode, result.stderr_tail, lines) == (3, "oops\n", ["a", "b", "no newline"])
    result, _ = collect(transport, ["sh", "-c", "kill -SEGV $$"])
    assert result.returncode == -11, "a crash reads like subprocess's -signal"
    result, _ = collect(transport, ["no-such-program-benchbot"])
    assert result.returncode == 127 and "not found" in result.stderr_tail


def test_large_output_and_input_do_not_deadlock(transport: SSHTransport) -> None:
    # 1.3 MB of stdout while 3 MB of stderr is written at the same time: both windows fill.
    script = "(head -c 3000000 /dev/zero | tr '\\0' e; echo; echo END-ERR) >&2 & seq 1 200000; wait"
    result, lines = collect(transport, ["sh", "-c", script], deadline_s=60)
    assert result.returncode == 0
    assert len(lines) == 200000 and lines[0] == "1" and lines[-1] == "200000"
    assert len(result.stderr_tail) <= 8192 and result.stderr_tail.endswith("e\nEND-ERR\n")

    data = b"".join(b"%07d stdin line\n" % i for i in range(150_000))  # 2.4 MB in, echoed back
    result, lines = collect(transport, ["cat"], stdin=data, deadline_s=60)
    assert result.returncode == 0 and len(lines) == 150_000 and lines[-1] == "0149999 stdin line"


def test_deadline_kills_the_whole_process_group(transport: SSHTransport, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    # The child ignores SIGTERM (inherited), so this also checks the SIGKILL escalation.
    script = 'trap "" TERM; sleep 30 & echo $! > "$1"; echo started; wait'
    start = time.monotonic()
    result, lines = collect(transport, ["sh", "-c", script, "sh", str(pidfile)], deadline_s=1.0)
    assert time.monotonic() - start < 5
    assert result.timed_out and not result.interrupted
    assert result.returncode == -9
    assert lines == ["started"]
    assert wait_gone(int(pidfile.read_text())), "the command's child survived the deadline"
    result, lines = collect(transport, ["echo", "still usable"])
    assert lines == ["still usable"]


def test_interrupt_stops_the_command_promptly(transport: SSHTransport, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = 'sleep 30 & echo $! > "$1"; echo started; wait'
    asked = []

    def on_line(line: str) -> None:
        if line == "started":
            asked.append(time.monotonic())
            threading.Thread(target=transport.interrupt).start()  # as a Ctrl-C handler would

    result = transport.run(["sh", "-c", script, "sh", str(pidfile)], b"", on_line, 60)
    assert time.monotonic() - asked[0] < 3
    assert result.interrupted and not result.timed_out
    assert result.returncode == -15
    assert wait_gone(int(pidfile.read_text()))


def test_on_line_error_kills_the_command_and_propagates(transport: SSHTransport, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"

    def on_line(line: str) -> None:
        raise ValueError("parser broke")

    with pytest.raises(ValueError, match="parser broke"):
        transport.run(["sh", "-c", 'sleep 30 & echo $! > "$1"; echo started; wait', "sh", str(pidfile)],
                      b"", on_line, 60)
    assert wait_gone(int(pidfile.read_text()))


def test_server_killed_mid_run_means_connection_lost(server: SSHDServer, transport: SSHTransport,
                                                     tmp_path: Path) -> None:
    def on_line(line: str) -> None:
        if line == "started":
            server.kill()

    start = time.monotonic()
    result = transport.run(["sh", "-c", "echo started; sleep 30"], b"", on_line, 60)
    assert time.monotonic() - start < 10
    assert result.returncode is None and not result.timed_out
    assert "connection lost" in result.stderr_tail
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    with pytest.raises(TransportError, match="cannot connect"):
        transport.push(model, sha256_of(model))


def test_hung_device_is_detected_by_keepalive(server: SSHDServer, tmp_path: Path) -> None:
    t = SSHTransport(server.settings(tmp_path, keepalive_s=0.3))
    t.open()

    def on_line(line: str) -> None:
        if line == "started":
            server.freeze()  # TCP stays up; nothing answers any more

    try:
        start = time.monotonic()
        result = t.run(["sh", "-c", "echo started; sleep 30"], b"", on_line, 60)
        assert time.monotonic() - start < 10
        assert result.returncode is None and "connection lost" in result.stderr_tail
    finally:
        t.close()  # the frozen server is killed at teardown


def test_close_is_idempotent_and_run_reconnects(transport: SSHTransport) -> None:
    transport.close()
    transport.close()
    result, lines = collect(transport, ["echo", "back"])
    assert (result.returncode, lines) == (0, ["back"])


def test_several_devices_at_once(sshd_server, tmp_path: Path) -> None:
    servers = [sshd_server() for _ in range(3)]
    outputs: dict[int, list[str]] = {}

    def work(i: int) -> None:
        with SSHTransport(servers[i].settings(tmp_path / f"d{i}")) as t:
            outputs[i] = collect(t, ["sh", "-c", f"sleep 0.2; echo device {i}"])[1]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert outputs == {i: [f"device {i}"] for i in range(3)}


def test_probe_reports_device_facts(transport: SSHTransport) -> None:
    """The agent's `probe`, pushed and run over SSH as `benchbot devices check` does."""
    from benchbot.profiles import profile_from_dict
    from benchbot.session import DeviceSession

    profile = profile_from_dict({"device": {"python": sys.executable}, "bench": {}}, "sshd")
    session = DeviceSession(profile, transport)
    fingerprint, why = session.prepare()
    assert fingerprint is not None, why
    facts = session.probe()
    assert facts["arch"] == platform.machine()
    assert facts["python"]  # python3 on the test machine
    assert facts["disk_free_bytes"] > 0
    assert 0 < facts["mem_available_bytes"] <= facts["mem_total_bytes"]
    if Path("/etc/os-release").exists():
        assert facts["os"] and facts["os"] in Path("/etc/os-release").read_text()


def test_workdir_tilde_is_the_remote_home(server: SSHDServer, tmp_path: Path) -> None:
    with SSHTransport(server.settings(tmp_path, workdir="~/.cache/benchbot-test")) as t:
        home = pwd.getpwuid(os.getuid()).pw_dir.rstrip("/")
        assert t.remote_workdir == f"{home}/.cache/benchbot-test"
        assert t.expand_user("~/x y") == f"{home}/x y"
        assert t.expand_user("/abs/~") == "/abs/~"


# ---------------------------------------------------------------- host keys


def test_unknown_host_key_is_refused_with_the_trust_hint(server: SSHDServer, tmp_path: Path) -> None:
    settings = server.settings(tmp_path, trusted=False, device_name="pi4")
    with pytest.raises(TransportError) as e:
        SSHTransport(settings).open()
    fp = ssh_keygen_fingerprint(Path(f"{server.host_key}.pub"))
    assert str(e.value) == (f"pi4: host key for [127.0.0.1]:{server.port} is not known ({fp}). "
                            "Check it and run: benchbot devices trust pi4")
    assert not settings.known_hosts.exists()


@pytest.mark.parametrize("policy", ["strict", "accept-new"])
def test_changed_host_key_is_never_accepted(sshd_server, ssh_keys, tmp_path: Path, policy: str) -> None:
    server = sshd_server(host_key=ssh_keys.new_key(f"host-{policy}"))
    known = server.trust(tmp_path / "known_hosts", public_key=" ".join(
        Path(f"{ssh_keys.host_key}.pub").read_text().split()[:2]))  # what we saw "last time"
    before = known.read_text()
    settings = server.settings(tmp_path, trusted=False, known_hosts=known, host_key_policy=policy)
    with pytest.raises(TransportError) as e:
        SSHTransport(settings).open()
    message = str(e.value)
    assert "HAS CHANGED" in message and "man-in-the-middle" in message
    assert ssh_keygen_fingerprint(Path(f"{server.host_key}.pub")) in message
    assert "benchbot devices trust dev --replace" in message
    assert known.read_text() == before


def test_accept_new_records_the_key(server: SSHDServer, tmp_path: Path) -> None:
    known = tmp_path / "cfg" / "benchbot" / "known_hosts"
    settings = server.settings(tmp_path, trusted=False, known_hosts=known, host_key_policy="accept-new")
    with SSHTransport(settings) as t:
        assert collect(t, ["echo", "hi"])[1] == ["hi"]
    assert known.read_text() == f"[127.0.0.1]:{server.port} {server.host_public_key}\n"
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    assert stat.S_IMODE(known.parent.stat().st_mode) == 0o700
    strict = server.settings(tmp_path, trusted=False, known_hosts=known)
    with SSHTransport(strict) as t:  # now known: strict accepts it, and nothing is added twice
        assert collect(t, ["echo", "again"])[1] == ["again"]
    assert len(known.read_text().splitlines()) == 1


def test_hostkeys_trust_fetch_and_fingerprint(sshd_server, ssh_keys, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert hostkeys.default_known_hosts() == tmp_path / "xdg" / "benchbot" / "known_hosts"
    server = sshd_server()
    expected = ssh_keygen_fingerprint(Path(f"{server.host_key}.pub"))
    key = hostkeys.fetch_host_key("127.0.0.1", server.port, timeout=5)
    assert hostkeys.fingerprint(key) == expected
    assert not hostkeys.is_known("127.0.0.1", server.port)

    assert hostkeys.trust("127.0.0.1", server.port, timeout=5) == expected
    path = hostkeys.default_known_hosts()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert hostkeys.is_known("127.0.0.1", server.port, key)
    assert hostkeys.trust("127.0.0.1", server.port, timeout=5) == expected
    assert len(path.read_text().splitlines()) == 1, "trusting twice records once"

    reinstalled = sshd_server(host_key=ssh_keys.new_key("host-reinstalled"))
    path.write_text(path.read_text().replace(str(server.port), str(reinstalled.port)))
    with pytest.raises(hostkeys.HostKeyChangedError):
        hostkeys.trust("127.0.0.1", reinstalled.port, timeout=5)
    new_fp = hostkeys.trust("127.0.0.1", reinstalled.port, timeout=5, replace=True)
    assert new_fp == ssh_keygen_fingerprint(Path(f"{reinstalled.host_key}.pub"))
    assert path.read_text() == f"[127.0.0.1]:{reinstalled.port} {reinstalled.host_public_key}\n"


def test_transport_trust_then_strict_open(server: SSHDServer, tmp_path: Path) -> None:
    settings = server.settings(tmp_path, trusted=False)
    recorded = SSHTransport(settings).trust()
    assert recorded == [f"[127.0.0.1]:{server.port} {ssh_keygen_fingerprint(Path(f'{server.host_key}.pub'))}"]
    with SSHTransport(settings) as t:
        assert collect(t, ["echo", "ok"])[1] == ["ok"]


# ---------------------------------------------------------------- authentication and connecting


def test_wrong_user_key_gives_the_auth_message(server: SSHDServer, ssh_keys, tmp_path: Path) -> None:
    wrong = ssh_keys.new_key("intruder")
    with pytest.raises(TransportError) as e:
        SSHTransport(server.settings(tmp_path, key=str(wrong))).open()
    assert str(e.value).startswith(
        f"dev: authentication failed for {server.user}@127.0.0.1:{server.port} (tried key {wrong}"
    )


def test_password_never_appears_in_errors(server: SSHDServer, ssh_keys, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cret-Pa55-benchbot"
    monkeypatch.setenv("BENCHBOT_TEST_PASSWORD", secret)
    settings = server.settings(tmp_path, key=str(ssh_keys.new_key("nobody")),
                               password_env="BENCHBOT_TEST_PASSWORD")
    assert secret not in repr(settings)
    with pytest.raises(TransportError) as e:
        SSHTransport(settings).open()  # the server refuses passwords: the secret is tried and fails
    assert "password from $BENCHBOT_TEST_PASSWORD" in str(e.value)
    texts, exc = [], e.value
    while exc is not None:
        texts += [str(exc), repr(exc), repr(getattr(exc, "args", ""))]
        exc = exc.__cause__ or exc.__context__
    assert all(secret not in text for text in texts)


def test_connection_refused_is_retried_then_reported(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = SSHTransport(SSHSettings(host="127.0.0.1", port=port, known_hosts=tmp_path / "kh", connect_retries=2,
                                 use_ssh_config=False, device_name="pi4"))
    t.retry_backoff_s = 0.01
    with pytest.raises(TransportError, match=rf"pi4: cannot connect to .*@127\.0\.0\.1:{port} after 3 attempt"):
        t.open()


def write_ssh_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ssh_config"
    path.write_text(text)
    return path


def test_ssh_config_alias_is_honoured(server: SSHDServer, tmp_path: Path) -> None:
    config = write_ssh_config(tmp_path, f"""
Host benchdev
    HostName 127.0.0.1
    Port {server.port}
    User {server.user}
    IdentityFile {server.user_key}
""")
    known = server.trust(tmp_path / "known_hosts")
    settings = SSHSettings(host="benchdev", ssh_config_path=str(config), known_hosts=known,
                           workdir=str(tmp_path / "w"), connect_retries=0, device_name="pi4")
    with SSHTransport(settings) as t:
        assert collect(t, ["id", "-un"])[1] == [server.user]


def test_explicit_settings_override_the_ssh_config(server: SSHDServer, tmp_path: Path) -> None:
    config = write_ssh_config(tmp_path, f"""
Host benchdev
    HostName 127.0.0.1
    Port 1
    User no-such-user-benchbot
    IdentityFile {tmp_path / 'no-such-key'}
""")
    known = server.trust(tmp_path / "known_hosts")
    settings = SSHSettings(host="benchdev", port=server.port, user=server.user, key=str(server.user_key),
                           ssh_config_path=str(config), known_hosts=known, connect_retries=0)
    with SSHTransport(settings) as t:
        assert collect(t, ["echo", "override"])[1] == ["override"]


RELAY = """
import os, select, socket, sys
open(sys.argv[3], "a").write("relayed\\n")
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
inputs = [0, s]
while True:
    ready = select.select(inputs, [], [])[0]
    if 0 in ready:
        data = os.read(0, 65536)
        if data:
            s.sendall(data)
        else:
            inputs.remove(0)
            s.shutdown(socket.SHUT_WR)
    if s in ready:
        data = s.recv(65536)
        if not data:
            break
        os.write(1, data)
"""


def test_proxy_command_from_the_ssh_config(server: SSHDServer, tmp_path: Path) -> None:
    relay = tmp_path / "relay.py"
    relay.write_text(RELAY)
    used = tmp_path / "relay.log"
    config = write_ssh_config(tmp_path, f"""
Host viaproxy
    HostName 127.0.0.1
    Port {server.port}
    User {server.user}
    IdentityFile {server.user_key}
    ProxyCommand {sys.executable} {relay} %h %p {used}
""")
    settings = SSHSettings(host="viaproxy", ssh_config_path=str(config),
                           known_hosts=server.trust(tmp_path / "known_hosts"), connect_retries=0)
    with SSHTransport(settings) as t:
        assert collect(t, ["echo", "through the proxy"])[1] == ["through the proxy"]
    assert used.read_text() == "relayed\n"


def jump_config(tmp_path: Path, jump: SSHDServer, target: SSHDServer) -> Path:
    return write_ssh_config(tmp_path, f"""
Host jumpbox
    HostName 127.0.0.1
    Port {jump.port}
    User {jump.user}
    IdentityFile {jump.user_key}

Host behind
    HostName 127.0.0.1
    Port {target.port}
    User {target.user}
    IdentityFile {target.user_key}
    ProxyJump jumpbox
""")


def test_proxy_jump_through_a_second_sshd(sshd_server, tmp_path: Path) -> None:
    jump, target = sshd_server(), sshd_server()
    known = target.trust(jump.trust(tmp_path / "known_hosts"))
    settings = SSHSettings(host="behind", ssh_config_path=str(jump_config(tmp_path, jump, target)),
                           known_hosts=known, connect_retries=0, workdir=str(tmp_path / "w"))
    t = SSHTransport(settings)
    t.open()
    try:
        assert collect(t, ["echo", "hello from behind"])[1] == ["hello from behind"]
        model = tmp_path / "m.tflite"
        model.write_bytes(b"jumped")
        assert Path(t.push(model, sha256_of(model))).read_bytes() == b"jumped"

        def on_line(line: str) -> None:  # the target is only reached through the jump host
            if line == "started":
                jump.kill()

        pidfile = tmp_path / "pgid"
        result = t.run(["sh", "-c", 'echo $$ > "$1"; echo started; sleep 30', "sh", str(pidfile)], b"", on_line, 30)
        assert result.returncode is None and "connection lost" in result.stderr_tail
    finally:
        t.close()
        if (tmp_path / "pgid").exists():  # the target never saw a hang-up: end its command ourselves
            try:
                os.killpg(int((tmp_path / "pgid").read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_proxy_jump_host_keys_follow_the_same_rules(sshd_server, tmp_path: Path) -> None:
    jump, target = sshd_server(), sshd_server()
    known = target.trust(tmp_path / "known_hosts")  # the device is known, its jump host is not
    settings = SSHSettings(host="behind", ssh_config_path=str(jump_config(tmp_path, jump, target)),
                           known_hosts=known, connect_retries=0, device_name="pi4")
    with pytest.raises(TransportError, match=rf"host key for jump host \[127\.0\.0\.1\]:{jump.port} is not known"):
        SSHTransport(settings).open()

    known.unlink()
    assert len(SSHTransport(settings).trust()) == 2  # `benchbot devices trust pi4` records the chain
    with SSHTransport(settings) as t:
        assert collect(t, ["echo", "trusted chain"])[1] == ["trusted chain"]


def test_host_key_names_and_settings_validation() -> None:
    assert hostkeys.host_key_name("pi4.local", 22) == "pi4.local"
    assert hostkeys.host_key_name("127.0.0.1", 2222) == "[127.0.0.1]:2222"
    with pytest.raises(ValueError):
        SSHSettings(host="x", host_key_policy="auto-add")  # type: ignore[arg-type]
