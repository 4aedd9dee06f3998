"""A real labgrid board farm on loopback for tests: coordinator, one exporter, places made with labgrid-client.

The exporter publishes one `NetworkService` per board, pointing at a loopback sshd (tests/sshd.py), so a
place acquired through labgrid is reached over real SSH. Everything runs from the test venv's own
labgrid (installed by the `test` extra) on free ports, in a tmp folder.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def have_labgrid() -> bool:
    return all((BIN / tool).exists() for tool in ("labgrid-coordinator", "labgrid-exporter", "labgrid-client"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A coordinator and an exporter; `board()` publishes a NetworkService, `place()` creates a place."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen] = []
        self.boards: dict[str, dict] = {}
        self.address = ""
        self.exporter_name = "bench-exporter"

    # ------------------------------------------------------------ processes
    def _spawn(self, argv: list[str], log: str) -> subprocess.Popen:
        out = open(self.folder / log, "ab")
        proc = subprocess.Popen(argv, cwd=self.folder, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True, env=self.env())
        out.close()
        self.procs.append(proc)
        return proc

    def env(self, user: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LG_")}
        env["PYTHONUNBUFFERED"] = "1"
        if user:
            env["LG_USERNAME"] = user
        return env

    def start(self, boards: dict[str, dict], places: dict[str, tuple[str, dict[str, str]]] | None = None) -> Lab:
        """Start the coordinator, then an exporter publishing `boards` (name -> NetworkService params).

        `places` (name -> (board, tags)) are written to the coordinator's own state file (places.yaml) before
        it starts, which is what `labgrid-client create/add-match/set-tags` would leave there, in a second.
        """
        if places:
            (self.folder / "places.yaml").write_text(json.dumps({
                name: {"acquired": None, "acquired_resources": [], "aliases": [], "allowed": [], "comment": "",
                       "created": time.time(), "changed": time.time(), "reservation": None, "tags": tags,
                       "matches": [{"cls": "NetworkService", "exporter": self.exporter_name, "group": board,
                                    "name": None, "rename": None}]}
                for name, (board, tags) in places.items()}))
        for _ in range(5):
            port = _free_port()
            proc = self._spawn([str(BIN / "labgrid-coordinator"), "-l", f"127.0.0.1:{port}"], "coordinator.log")
            if self._wait_port(port, proc):
                self.address = f"127.0.0.1:{port}"
                break
            proc.kill()
        else:
            raise RuntimeError("labgrid-coordinator did not start:\n" + (self.folder / "coordinator.log").read_text())
        self.boards = boards
        config = self.folder / "exporter.yaml"
        config.write_text(json.dumps({name: {"NetworkService": params} for name, params in boards.items()}))
        self._spawn([str(BIN / "labgrid-exporter"), "-c", self.address, "-n", self.exporter_name,
                     "--hostname", "127.0.0.1", str(config)], "exporter.log")
        end = time.monotonic() + 30
        while time.monotonic() < end:
            listed = self.client("resources", check=False).stdout
            if all(f"{self.exporter_name}/{b}/NetworkService" in listed for b in boards):
                return self
            time.sleep(0.2)
        raise RuntimeError("the exporter's resources did not appear:\n" + (self.folder / "exporter.log").read_text())

    def _wait_port(self, port: int, proc: subprocess.Popen, timeout: float = 20) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return True
            except OSError:
                time.sleep(0.1)
        return False

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self.procs.clear()

    # ------------------------------------------------------------ labgrid-client
    def client(self, *args: str, place: str | None = None, user: str | None = None, check: bool = True
               ) -> subprocess.CompletedProcess[str]:
        argv = [str(BIN / "labgrid-client"), "-x", self.address, *(["-p", place] if place else []), *args]
        done = subprocess.run(argv, env=self.env(user), cwd=self.folder, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stdout}{done.stderr}")
        return done

    def place(self, name: str, resource: str, **tags: str) -> None:
        self.client("create", place=name)
        self.client("add-match", f"{self.exporter_name}/{resource}/NetworkService", place=name)
        if tags:
            self.client("set-tags", *(f"{k}={v}" for k, v in tags.items()), place=name)

    def holder(self, place: str) -> str | None:
        """Who holds the place ('host/user'), or None when it is free."""
        for line in self.client("show", place=place).stdout.splitlines():
            if line.strip().startswith("acquired:"):
                value = line.split(":", 1)[1].strip()
                return None if value in ("", "None") else value
        return None


def cleanup(lab: Lab) -> None:
    lab.stop()
    shutil.rmtree(lab.folder, ignore_errors=True)
