"""A labgrid place as a device: reserve and acquire it, reach its board over SSH, release it afterwards.

labgrid (the optional extra `benchbot[lab]`) is the board farm's own scheduler: a coordinator knows every
exporter's resources and every place; a place is acquired exclusively by one `host/user`. benchbot asks
the coordinator for a place through labgrid's reservations (a filter of tags, or the implicit `name` tag
of one place), so a taken place is queued for fairly rather than polled for, waits up to `wait_s`, then
fails that one device. The acquired place's `NetworkService` gives address, port and user; from there on
the device is an ordinary SSH device (benchbot's SSHTransport, host keys checked the same way).

The coordinator speaks gRPC through labgrid's asyncio `ClientSession`. One session per coordinator is
shared by every device of the process and lives on its own event-loop thread; device threads submit
coroutines to it. Places are released with `fromuser` set to benchbot's own identity, so a place that
someone else holds (or kicked benchbot from) is never released by benchbot; at exit any place still held
is released as a last resort.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from benchbot.errors import BenchbotError
from benchbot.transport.base import OverSSH, TransportError

INSTALL_HINT = "labgrid devices need labgrid: pip install 'benchbot[lab]'"
#: How often a waiting reservation is polled (each poll also keeps it from expiring on the coordinator).
POLL_S = 0.5
RPC_TIMEOUT_S = 15.0


def _labgrid() -> Any:
    """labgrid's client module, or one sentence saying how to install it."""
    try:
        import labgrid.remote.client as client_module
    except ImportError:
        raise BenchbotError(INSTALL_HINT) from None
    return client_module


@dataclass
class Lease:
    """A place benchbot acquired (or found acquired by its own identity, which it then never releases)."""

    coordinator: str
    device: str
    place: str
    token: str | None
    tags: dict[str, str]
    exporter: str
    resource: str
    address: str
    port: int
    username: str
    released: bool = False
    ours: bool = True
    acquired_at: float = field(default_factory=time.time)

    def record(self) -> dict[str, Any]:
        """What goes into the run's device record."""
        return {"coordinator": self.coordinator, "place": self.place, "tags": self.tags, "exporter": self.exporter,
                "resource": self.resource, "address": self.address, "port": self.port,
                "acquired_by_benchbot": self.ours}


class Hub:
    """One coordinator session on its own event-loop thread, shared by every device of this process."""

    _hubs: dict[str, Hub] = {}
    _hubs_lock = threading.Lock()

    @classmethod
    def get(cls, address: str) -> Hub:
        with cls._hubs_lock:
            hub = cls._hubs.get(address)
            if hub is None or hub.broken:
                hub = cls._hubs[address] = Hub(address)
            return hub

    def __init__(self, address: str) -> None:
        self.address = address
        self.client = _labgrid()
        if not logging.getLogger().handlers:  # labgrid logs connection trouble itself; benchbot reports it once
            logging.getLogger().addHandler(logging.NullHandler())
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"labgrid-{address}", daemon=True)
        self.thread.start()
        self.session: Any = None
        self.broken = False
        self.lock = threading.Lock()
        self.leases: dict[str, Lease] = {}
        try:
            self.call(self._start(), RPC_TIMEOUT_S)
        except BaseException:
            self.broken = True
            raise
        atexit.register(self.release_all)

    # ----------------------------------------------------------------- plumbing
    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = RPC_TIMEOUT_S) -> Any:
        """Run a coroutine on the session's loop and wait for it here."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TransportError(f"the labgrid coordinator at {self.address} did not answer within {timeout:.0f} s"
                                 ) from None

    async def _start(self) -> None:
        from labgrid.util.proxy import proxymanager

        grpc_address = proxymanager.get_grpc_address(self.address, default_port=20408)
        self.session = self.client.ClientSession(grpc_address, self.loop)
        try:
            await asyncio.wait_for(self.session.start(), RPC_TIMEOUT_S)
        except (self.client.Error, asyncio.TimeoutError):
            raise TransportError(f"cannot reach the labgrid coordinator at {self.address}") from None

    @property
    def identity(self) -> str:
        return f"{self.session.gethostname()}/{self.session.getuser()}"

    async def _rpc(self, name: str, request: Any) -> Any:
        import grpc

        try:
            return await getattr(self.session.stub, name)(request)
        except grpc.aio.AioRpcError as exc:
            raise TransportError(f"the labgrid coordinator at {self.address} refused {name}: {exc.details()}"
                                 ) from None

    def _pb(self) -> Any:
        from labgrid.remote.generated import labgrid_coordinator_pb2

        return labgrid_coordinator_pb2

    # ----------------------------------------------------------------- views (run on the loop)
    async def _place_view(self, name: str) -> dict[str, Any] | None:
        place = self.session.places.get(name)
        if place is None:
            return None
        return {"name": place.name, "tags": dict(place.tags), "acquired": place.acquired,
                "acquired_resources": [tuple(p) for p in place.acquired_resources]}

    async def _places_with(self, tags: dict[str, str]) -> list[dict[str, Any]]:
        return [{"name": p.name, "acquired": p.acquired} for p in self.session.places.values()
                if all(p.tags.get(k) == v for k, v in tags.items())]

    async def _network_services(self, place_name: str, acquired_only: bool) -> list[tuple[str, str, str, dict]]:
        """(exporter, group, resource name, params) of the place's NetworkService resources."""
        place = self.session.places.get(place_name)
        if place is None:
            return []
        found = []
        if acquired_only:
            paths = [tuple(p) for p in place.acquired_resources]
        else:
            paths = [(exp, grp, res.cls, name) for exp, groups in self.session.resources.items()
                     for grp, group in groups.items() for name, res in group.items()
                     if place.getmatch((exp, grp, res.cls, name))]
        for exporter, group, cls, name in paths:
            if cls != "NetworkService":
                continue
            try:
                entry = self.session.resources[exporter][group][name]
            except KeyError:
                continue
            found.append((exporter, group, name, dict(entry.params)))
        return found

    async def _sync(self) -> None:
        await self.session.sync_with_coordinator()

    # ----------------------------------------------------------------- acquire / release
    def acquire(self, device: str, place: str, tags: dict[str, str], wait_s: float,
                cancelled: threading.Event, on_wait: Callable[[str], None] | None = None) -> Lease:
        """Reserve and acquire a place (by name or tags), waiting up to wait_s; raise TransportError otherwise.

        `on_wait(text)` is called once when the reservation has to wait (the place is taken), with who holds it."""
        pb = self._pb()
        what = f"labgrid place '{place}'" if place else "a labgrid place with " + _tag_text(tags)
        if place:
            view = self.call(self._place_view(place))
            if view is None:
                raise TransportError(f"{device}: {what} does not exist on the coordinator at {self.address}")
            if place in self.leases:
                raise TransportError(f"{device}: {what} is already acquired for device "
                                     f"{self.leases[place].device} of this run")
            if view["acquired"] == self.identity and place not in self.leases:
                # acquired by this user outside benchbot: use it as it is, and leave it acquired
                return self._lease(device, place, None, view["tags"], ours=False)
        elif not self.call(self._places_with(tags)):
            raise TransportError(f"{device}: no place on the labgrid coordinator at {self.address} has "
                                 f"{_tag_text(tags)}")
        wanted = {"name": place} if place else dict(tags)
        request = pb.CreateReservationRequest(filters={"main": pb.Reservation.Filter(filter=wanted)}, prio=0)
        token = self.call(self._rpc("CreateReservation", request)).reservation.token
        begin = time.monotonic()
        acquired = ""  # set once AcquirePlace succeeded: from then on a failure must release it
        try:
            while True:
                pb_res = self.call(self._rpc("PollReservation", pb.PollReservationRequest(token=token))).reservation
                res = self.client.Reservation.from_pb2(pb_res)
                state = res.state.name
                if state in ("allocated", "acquired") and res.allocations.get("main"):
                    name = res.allocations["main"][0]
                    self.call(self._rpc("AcquirePlace", pb.AcquirePlaceRequest(placename=name)))
                    acquired = name
                    self.call(self._sync())
                    view = self.call(self._place_view(name))
                    with self.lock:
                        lease = self._lease(device, name, token, view["tags"] if view else {}, ours=True)
                    return lease
                if state not in ("waiting",):
                    raise TransportError(f"{device}: the labgrid reservation for {what} became {state}")
                if on_wait is not None:
                    on_wait(f"waiting up to {wait_s:g} s for {what}, {self._holders(place, tags)}")
                    on_wait = None
                if cancelled.is_set():
                    raise TransportError(f"{device}: interrupted while waiting for {what}")
                if time.monotonic() - begin >= wait_s:
                    raise TransportError(f"{device}: {what} is {self._holders(place, tags)}; gave up after waiting "
                                         f"{wait_s:g} s (raise [labgrid] wait_s to wait longer)")
                cancelled.wait(POLL_S)
        except BaseException:
            lease_now = self.leases.get(acquired) if acquired else None
            if lease_now is not None and lease_now.token == token:  # acquired just before the failure
                self.release(lease_now)
            elif acquired and acquired not in self.leases:
                try:  # labgrid keeps a place acquired after its client goes: never leave one behind
                    self._release_place(acquired)
                except TransportError:
                    pass
            self._cancel_reservation(token)
            raise

    def _lease(self, device: str, name: str, token: str | None, tags: dict[str, str], ours: bool) -> Lease:
        services = self.call(self._network_services(name, acquired_only=ours))
        if not services:
            if ours:
                self._release_place(name)
                self._cancel_reservation(token)
            raise TransportError(f"{device}: labgrid place '{name}' has no NetworkService resource (the board's "
                                 "address, port and user for SSH)")
        exporter, group, resource, params = services[0]
        lease = Lease(self.address, device, name, token, tags, exporter, f"{exporter}/{group}/NetworkService/{resource}",
                      str(params.get("address", "")), int(params.get("port") or 22),
                      str(params.get("username") or ""), ours=ours)
        if ours:
            self.leases[name] = lease
        return lease

    def _holders(self, place: str, tags: dict[str, str]) -> str:
        if place:
            view = self.call(self._place_view(place))
            holder = view and view["acquired"]
            return f"held by {holder}" if holder else "reserved by someone else"
        held = [f"{p['name']} by {p['acquired']}" for p in self.call(self._places_with(tags)) if p["acquired"]]
        return "taken (" + ", ".join(held) + ")" if held else "taken (all matching places are reserved)"

    def _cancel_reservation(self, token: str | None) -> None:
        if token is None:
            return
        try:
            self.call(self._rpc("CancelReservation", self._pb().CancelReservationRequest(token=token)))
        except (TransportError, OSError, RuntimeError):
            pass  # an unknown token expires on the coordinator by itself

    def _release_place(self, name: str) -> None:
        pb = self._pb()
        # fromuser: the coordinator releases it only while benchbot's identity holds it
        self.call(self._rpc("ReleasePlace", pb.ReleasePlaceRequest(placename=name, fromuser=self.identity)))
        self.call(self._sync())

    def release(self, lease: Lease) -> None:
        """Release a place benchbot acquired (once); a place it found acquired stays acquired."""
        with self.lock:
            if lease.released or not lease.ours:
                lease.released = True
                return
            lease.released = True
            self.leases.pop(lease.place, None)
        try:
            self._release_place(lease.place)
        finally:
            self._cancel_reservation(lease.token)

    def release_all(self) -> None:
        """Last resort at exit: release every place this process still holds."""
        for lease in list(self.leases.values()):
            try:
                self.release(lease)
            except (TransportError, OSError, RuntimeError):
                pass

    def services_of(self, place: str, tags: dict[str, str]) -> list[tuple[str, str, int, str]]:
        """(place, address, port, user) of every NetworkService the place (or each place with tags) matches."""
        names = [place] if place else [p["name"] for p in self.call(self._places_with(tags))]
        out = []
        for name in names:
            for _exp, _grp, _res, params in self.call(self._network_services(name, acquired_only=False)):
                out.append((name, str(params.get("address", "")), int(params.get("port") or 22),
                            str(params.get("username") or "")))
        return out


def _tag_text(tags: dict[str, str]) -> str:
    return "tags " + ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))


class LabgridTransport(OverSSH):
    """Acquires the profile's place on open(), then is SSHTransport to its NetworkService; close() releases."""

    def __init__(self, profile: Any, ssh_factory: Callable[[Any], Any] | None = None) -> None:
        super().__init__()
        self.profile = profile
        self.lab = profile.labgrid
        self.not_connected = f"{profile.name}: the labgrid place is not acquired"
        self.lease: Lease | None = None
        self.hub: Hub | None = None
        self.cancelled = threading.Event()
        self._ssh_factory = ssh_factory

    def open(self) -> None:
        name = self.profile.name
        try:
            self.hub = Hub.get(self.lab.coordinator)
        except BenchbotError as exc:
            raise TransportError(f"{name}: {exc}") from None
        except TransportError as exc:
            raise TransportError(f"{name}: {exc}") from None
        self.lease = self.hub.acquire(name, self.lab.place, dict(self.lab.tags), self.lab.wait_s, self.cancelled,
                                      on_wait=lambda text: self.on_state("waiting", text))
        try:
            self.ssh = self._make_ssh(self.lease.address, self.lease.port, self.lease.username)
            self.ssh.open()
        except BaseException:
            self._release()
            raise

    def _make_ssh(self, address: str, port: int, username: str) -> Any:
        from benchbot.transport.ssh import SSHSettings, SSHTransport
        from benchbot.transport.ssh.config import ssh_settings

        base = ssh_settings(self.profile)
        assert isinstance(base, SSHSettings)
        # the place gives where the board is; the profile's [ssh] table how to log in (its user wins if set)
        settings = replace(base, host=address, port=port, user=self.profile.ssh.user or username or None)
        factory: Callable[[SSHSettings], Any] = self._ssh_factory or SSHTransport
        return factory(settings)

    def record(self) -> dict[str, Any]:
        """The place, its tags and exporter, for the run's device record."""
        return {"labgrid": self.lease.record()} if self.lease else {}

    def interrupt(self) -> None:
        self.cancelled.set()  # also ends a wait for the place
        super().interrupt()

    def _release(self) -> None:
        if self.lease is not None and self.hub is not None:
            try:
                self.hub.release(self.lease)
            except TransportError:
                pass  # the coordinator went away: it drops the place with the session

    def close(self) -> None:
        """Disconnect, then release the place (only if benchbot acquired it)."""
        try:
            if self.ssh is not None:
                self.ssh.close()
                self.ssh = None
        finally:
            self._release()


def trust_targets(profile: Any) -> list[tuple[str, Any]]:
    """(place, SSHTransport) for every board the profile may get, for `benchbot devices trust` (no acquire)."""
    lab = profile.labgrid
    try:
        hub = Hub.get(lab.coordinator)
    except TransportError as exc:
        raise BenchbotError(f"{profile.name}: {exc}") from None
    services = hub.services_of(lab.place, dict(lab.tags))
    if not services:
        what = f"place '{lab.place}'" if lab.place else _tag_text(dict(lab.tags))
        raise BenchbotError(f"{profile.name}: no NetworkService for {what} on the labgrid coordinator at "
                            f"{lab.coordinator}")
    transport = LabgridTransport(profile)
    return [(place, transport._make_ssh(address, port, user)) for place, address, port, user in services]
