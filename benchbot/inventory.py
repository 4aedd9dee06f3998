"""Ansible inventories as device lists: `--inventory hosts.yml --devices GROUP_OR_HOST[,...] --profile BASE`.

The inventory is read by `ansible-inventory -i FILE --list` (ansible-core, the optional extra
`benchbot[ansible]`), so INI, YAML, directories and dynamic inventory scripts resolve exactly as they do
for Ansible; benchbot never parses inventory files itself. Each host becomes an SSH device named after
the host: its connection variables replace the base profile's [ssh] table, everything else (runtime,
threads, repetitions, telemetry) comes from the base profile.

Host variables used:
  ansible_host, ansible_port, ansible_user, ansible_ssh_private_key_file, ansible_python_interpreter
  (and the older ansible_ssh_host / ansible_ssh_port / ansible_ssh_user), and benchbot_workdir for the
  device's work folder (several inventory hosts may be one machine). ansible_connection: ssh, paramiko
  or smart (the default) make an SSH device; local makes the controller itself a device (the local
  transport, as Ansible runs its tasks there); any other connection is refused by name. ansible_password / ansible_ssh_pass
  are never used: benchbot takes a password only from the environment variable named in the base
  profile's ssh.password_env.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchbot.errors import BenchbotError
from benchbot.profiles import Profile, SSHConfig, load_profile

INSTALL_HINT = "reading an Ansible inventory needs ansible-core: pip install 'benchbot[ansible]'"


@dataclass
class Inventory:
    """The resolved inventory: every group's hosts (recursively) and every host's variables."""

    path: str
    groups: dict[str, list[str]]
    hostvars: dict[str, dict[str, Any]]

    def hosts(self, names: list[str] | None) -> list[str]:
        """Hosts of these groups or hosts, in order, each once (default: every host)."""
        if not names:
            names = ["all"]
        out: list[str] = []
        for name in names:
            if name in self.groups:
                found = self.groups[name]
            elif name in self.hostvars:
                found = [name]
            else:
                groups = ", ".join(sorted(g for g in self.groups if g not in ("all", "ungrouped")))
                raise BenchbotError(f"'{name}' is neither a group nor a host of the inventory {self.path} "
                                    f"(groups: {groups or 'none'})")
            out.extend(h for h in found if h not in out)
        if not out:
            raise BenchbotError(f"{', '.join(names)} in the inventory {self.path} has no hosts")
        return out


def _ansible_inventory() -> str:
    """The ansible-inventory next to this interpreter (a venv is not always on PATH), else on PATH."""
    beside = Path(sys.executable).parent / "ansible-inventory"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("ansible-inventory")
    if found is None:
        raise BenchbotError(INSTALL_HINT)
    return found


def read_inventory(path: str) -> Inventory:
    """Run `ansible-inventory -i PATH --list` and index its groups and host variables."""
    if not Path(path).exists():
        raise BenchbotError(f"inventory {path} does not exist")
    tool = _ansible_inventory()
    with tempfile.TemporaryDirectory(prefix="benchbot-ansible-") as tmp:
        env = dict(os.environ, ANSIBLE_LOCAL_TEMP=tmp, ANSIBLE_NOCOLOR="1", ANSIBLE_INVENTORY_UNPARSED_FAILED="1",
                   ANSIBLE_DEPRECATION_WARNINGS="0")
        env.setdefault("ANSIBLE_HOME", str(Path(tmp) / "home"))
        try:
            done = subprocess.run([tool, "-i", path, "--list"], capture_output=True, text=True, env=env,
                                  stdin=subprocess.DEVNULL, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BenchbotError(f"ansible-inventory could not read {path}: {exc}") from None
    if done.returncode != 0:
        lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
        why = next((ln for ln in lines if "ERROR" in ln), lines[-1] if lines else f"exit status {done.returncode}")
        raise BenchbotError(f"ansible-inventory could not read {path}: {why}")
    try:
        data = json.loads(done.stdout)
    except ValueError:
        raise BenchbotError(f"ansible-inventory printed no JSON for {path}") from None
    return index(path, data)


def index(path: str, data: dict[str, Any]) -> Inventory:
    """Groups (with their children's hosts) and host variables of `ansible-inventory --list` output."""
    hostvars = dict(data.get("_meta", {}).get("hostvars", {}))
    raw = {name: value for name, value in data.items() if name != "_meta" and isinstance(value, dict)}

    def members(group: str, seen: tuple[str, ...] = ()) -> list[str]:
        entry = raw.get(group, {})
        out = list(entry.get("hosts", []))
        for child in entry.get("children", []):
            if child not in seen:
                out.extend(h for h in members(child, (*seen, group)) if h not in out)
        return out

    groups = {name: members(name) for name in raw}
    for hosts in groups.values():
        for host in hosts:
            hostvars.setdefault(host, {})
    return Inventory(path, groups, hostvars)


#: Ansible connection plugins that are plain SSH, which benchbot speaks itself (smart picks ssh).
SSH_CONNECTIONS = frozenset({"ssh", "paramiko", "paramiko_ssh", "smart"})


def host_profile(host: str, variables: dict[str, Any], base: Profile) -> Profile:
    """The SSH device for one inventory host: its connection variables over the base profile."""

    def var(*names: str) -> Any:
        return next((variables[n] for n in names if variables.get(n) not in (None, "")), None)

    connection = str(var("ansible_connection") or "ssh")
    python = var("ansible_python_interpreter")
    if python and "{{" in str(python):  # a Jinja expression only Ansible can evaluate (e.g. auto discovery)
        python = None
    workdir = str(var("benchbot_workdir") or base.workdir)
    if connection == "local":
        return replace(base, name=host, transport="local", python=str(python or base.python), workdir=workdir,
                       labgrid=None, description=f"inventory host {host}: this machine, ansible_connection=local "
                                                 f"({base.name} profile)")
    if connection not in SSH_CONNECTIONS:
        raise BenchbotError(f"inventory host {host}: ansible_connection={connection} is not one benchbot can use "
                            f"(it reaches devices over {', '.join(sorted(SSH_CONNECTIONS))} or local)")
    port = var("ansible_port", "ansible_ssh_port")
    try:
        port = int(port) if port is not None else base.ssh.port
    except (TypeError, ValueError):
        raise BenchbotError(f"inventory host {host}: ansible_port must be a port number, got {port!r}") from None
    ssh = replace(base.ssh if base.transport == "ssh" else SSHConfig(),
                  host=str(var("ansible_host", "ansible_ssh_host") or host), port=port,
                  user=var("ansible_user", "ansible_ssh_user") or base.ssh.user,
                  key=var("ansible_ssh_private_key_file", "ansible_private_key_file") or base.ssh.key)
    return replace(base, name=host, transport="ssh", ssh=ssh, python=str(python or base.python),
                   workdir=workdir, emulate=base.emulate, labgrid=None,
                   description=f"inventory host {host} ({base.name} profile)")


def base_profile(name: str | None) -> Profile:
    """The profile the inventory hosts start from (--profile), or the defaults of an SSH device."""
    if name:
        return load_profile(name)
    return Profile(name="ssh-defaults", path=None, transport="ssh")


def inventory_devices(path: str, names: list[str] | None, base: str | None) -> list[Profile]:
    """The devices `--inventory PATH --devices NAMES --profile BASE` stands for."""
    inventory = read_inventory(path)
    template = base_profile(base)
    return [host_profile(h, inventory.hostvars.get(h, {}), template) for h in inventory.hosts(names)]
