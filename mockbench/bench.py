"""The Bench: built from a Config, it owns the world, the scenario engine, the HTTP app and the doors, and
starts and stops them. Nothing here is module-level: two benches run side by side in one process."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import __version__
from .config import Config
from .http_server import HttpServer
from .protocols.context import Door, DoorConfigError, DoorContext, ListenError, Urls
from .protocols.registry import build_doors
from .scenarios.engine import ScenarioEngine
from .scenarios.loader import Catalogue, resolve
from .world import errors
from .world.journal import JournalLimits
from .world.store import UNAVAILABLE, StorageFull, Store, StoreError
from .world.world import World

if TYPE_CHECKING:
    from .protocols.annuaire.door import AnnuaireDoor
    from .protocols.dmp.door import DmpDoor
    from .protocols.mss.imap import ImapDoor
    from .protocols.mss.smtp import SmtpDoor
    from .protocols.oidc.door import OidcDoor
    from .protocols.pfi.door import PfiDoor

log = logging.getLogger("mockbench")
exchange_log = logging.getLogger("mockbench.exchange")

D = TypeVar("D")

DB_NAME = "world.db"
PID_NAME = "bench.pid"


class UnknownSnapshot(errors.NotFound):
    code = "SNAPSHOT_UNKNOWN"
    message = "no snapshot has that name"


class BenchError(RuntimeError):
    """Something that stops the bench from starting, said so that a user can act on it."""


class Bench:
    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self.config.check()
        self._own_state = self.config.state is None
        self.state_dir = Path(self.config.state or tempfile.mkdtemp(prefix="mockbench-")).resolve()
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BenchError(f"cannot create the state folder {self.state_dir}: {exc.strerror}") from None
        self._lock = StateLock(self.state_dir)
        try:
            self._build()
        except BaseException:
            self._lock.release()
            raise
        self._lock.record_pid()

    def _build(self) -> None:
        db = self.state_dir / DB_NAME
        self.resumed = db.exists()
        self.store = self._open_store(db)
        try:
            self.resumed = self.resumed and self.store.holds_world()
            self.world = World(self.store, journal_limits=JournalLimits(
                max_entries=self.config.journal_max_entries, max_bytes=self.config.journal_max_bytes,
                raw_bytes=self.config.journal_raw_bytes))
            self.catalogue = Catalogue()
            self.scenarios = ScenarioEngine(self.world, self.catalogue)
        except (sqlite3.Error, StorageFull) as exc:   # a file damaged beyond its first pages
            self.store.close()
            raise BenchError(str(exc) if isinstance(exc, StorageFull) else self.store.unusable(exc)) from None
        self.tls = None
        if self.config.tls_dir:
            from .pki import load_tls_files  # cryptography costs ~30 ms of start-up: only with TLS

            self.tls = load_tls_files(self.config.tls_dir)
        self.control_token = self._control_token()
        self.ports: dict[str, int] = {}     # what is bound, filled as the servers and doors start
        self.urls = Urls(self.config, self.ports, https=self.tls is not None)
        self.started_at: float | None = None
        self._servers: list[HttpServer] = []
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.world.journal.listeners.append(self._log_exchange)
        self._add_doors()
        from .control.app import create_app  # late: the app module imports the bench's types
        self.app = create_app(self)

    @staticmethod
    def _open_store(db: Path) -> Store:
        if db.exists() and not db.is_file():
            raise BenchError(f"{db} is not a file: move it away, or give another --state folder")
        try:
            return Store(db)
        except (StoreError, StorageFull) as exc:
            raise BenchError(str(exc)) from None

    def _control_token(self) -> str | None:
        """The token the control API and dashboard require (control/security.py): the one given, or a new one
        when the bench listens beyond loopback; kept in the state folder (0600) for local clients."""
        from .control.security import TOKEN_FILE, is_loopback, new_token

        token = self.config.control_token or (None if is_loopback(self.config.host) else new_token())
        path = self.state_dir / TOKEN_FILE
        if token is None:
            path.unlink(missing_ok=True)
            return None
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(token + "\n")
        return token

    def _add_doors(self) -> None:
        """Every door of the registry (protocols/registry.py), given the world, the URLs and the TLS files, not
        the bench."""
        dmp_settings = self.config.doors.get("dmp", {})
        self._extra_anchors = self._read_trust_anchors(dmp_settings.get("vihf_trust_anchors", []))
        self._anchors: bytes | None = None
        self._pki_lock = threading.Lock()
        self.context = DoorContext(world=self.world, urls=self.urls, tls=self.tls,
                                   trust_anchors=self.vihf_trust_anchors)
        try:
            self.doors: dict[str, Door] = build_doors(self.context, self.config)
        except DoorConfigError as exc:
            raise BenchError(str(exc)) from None

    # The doors by name, typed, for the control API and tests ------------------------------------
    def door(self, name: str, kind: type[D]) -> D:
        door = self.doors[name]
        assert isinstance(door, kind), f"the registry's {name} door is a {type(door).__name__}"
        return door

    @property
    def dmp(self) -> DmpDoor:
        from .protocols.dmp.door import DmpDoor

        return self.door("dmp", DmpDoor)

    @property
    def oidc(self) -> OidcDoor:
        from .protocols.oidc.door import OidcDoor

        return self.door("oidc", OidcDoor)

    @property
    def annuaire(self) -> AnnuaireDoor:
        from .protocols.annuaire.door import AnnuaireDoor

        return self.door("annuaire", AnnuaireDoor)

    @property
    def pfi(self) -> PfiDoor:
        from .protocols.pfi.door import PfiDoor

        return self.door("pfi", PfiDoor)

    @property
    def smtp(self) -> SmtpDoor:
        from .protocols.mss.door import MssDoor

        return self.door("mss", MssDoor).smtp

    @property
    def imap(self) -> ImapDoor:
        from .protocols.mss.door import MssDoor

        return self.door("mss", MssDoor).imap

    # VIHF signatures ----------------------------------------------------------------------------
    @property
    def pki_dir(self) -> Path:
        """The PKI whose CA the DMP door trusts for VIHF signatures and whose seal certificates sign them:
        --tls-dir when given, else `pki/` in the state folder, made on first use (issue 17 point 7: the
        trust anchors are always explicit; a bench without --tls-dir still has a CA of its own)."""
        return Path(self.config.tls_dir) if self.config.tls_dir else self.state_dir / "pki"

    def _read_trust_anchors(self, paths: Any) -> bytes:
        if isinstance(paths, str) or not isinstance(paths, list | tuple) or \
                not all(isinstance(p, str) for p in paths):
            raise BenchError("[doors.dmp] vihf_trust_anchors must be a list of PEM file paths")
        pems = []
        for name in paths:
            path = Path(name).expanduser()
            try:
                pem = path.read_bytes()
            except OSError as exc:
                raise BenchError(f"[doors.dmp] vihf_trust_anchors: cannot read {path}: {exc.strerror}") from None
            if b"-----BEGIN CERTIFICATE-----" not in pem:
                raise BenchError(f"[doors.dmp] vihf_trust_anchors: {path} holds no PEM certificate")
            pems.append(pem.rstrip() + b"\n")
        return b"".join(pems)

    def vihf_trust_anchors(self) -> bytes:
        """The CA certificates (PEM) a VIHF signature must chain to: the bench's PKI CA, then the configured
        [doors.dmp] vihf_trust_anchors."""
        if self._anchors is None:
            from .pki import ensure_pki  # cryptography: only once a VIHF arrives

            with self._pki_lock:
                if self._anchors is None:
                    ca = ensure_pki(self.pki_dir) if not self.tls else self.tls.ca_cert
                    log.info("VIHF signatures must chain to %s%s; seal certificates: %s", ca,
                             " and [doors.dmp] vihf_trust_anchors" if self._extra_anchors else "",
                             self.pki_dir / "signing")
                    self._anchors = ca.read_bytes().rstrip() + b"\n" + self._extra_anchors
        return self._anchors

    def vihf_signing_identity(self, idnst: str):
        """The seal certificate and key (`mockbench.pki.SigningIdentity`) with which the structure `idnst`
        signs VIHFs that this bench trusts; issued by the bench's PKI on first use."""
        from .pki import signing_identity

        self.vihf_trust_anchors()   # makes the PKI when the bench has none yet
        with self._pki_lock:
            return signing_identity(self.pki_dir, idnst)

    # Scenarios ----------------------------------------------------------------------------------
    def _check_prepare(self) -> None:
        if self.config.scenario and self.resumed and not self.config.reset:
            raise BenchError(
                f"the state folder {self.state_dir} already holds a world; `up` resumes it. To load "
                f"{self.config.scenario} over it, add --reset")

    def prepare(self) -> None:
        """Apply --reset and --scenario to the state folder, or resume the world it holds."""
        self._check_prepare()
        if self.config.scenario:
            self.load_scenario(self.config.scenario)
        elif self.config.reset:
            self.reset()

    def load_scenario(self, id_or_file: str) -> dict:
        return self.scenarios.load(resolve(self.catalogue, id_or_file))

    def reset(self) -> None:
        self.scenarios.reset()

    def snapshot(self, name: str) -> None:
        """Save the whole world (scenario, steps, clock, journal) under a name, to restore before each test."""
        self.store.snapshot(name)

    def restore(self, name: str) -> None:
        try:
            self.store.restore(name)
        except KeyError:
            raise UnknownSnapshot(f"no snapshot {name}; saved: {', '.join(self.store.snapshots()) or 'none'}") \
                from None
        with self.world.transaction() as tx:
            self.world.reload(tx)
            self.scenarios.reload(tx)

    # Running ------------------------------------------------------------------------------------
    def start(self) -> dict[str, int]:
        t0 = time.perf_counter()
        cfg = self.config
        # Every port is checked before --reset or --scenario touch the world, so that a start that cannot
        # listen changes nothing, and names all the busy ports at once.
        self._check_prepare()
        http_sockets = self._bind_ports()
        try:
            self.prepare()
            self._serve("http", http_sockets.pop("http"), None)
            if self.tls is not None:
                from .pki import server_context

                self._serve("https", http_sockets.pop("https"),
                            server_context(self.tls, require_client_cert=False))
            for door in self.doors.values():
                try:
                    self.ports.update(door.start())
                except ListenError as exc:
                    raise BenchError(f"{exc}; choose another port with --{exc.port_name}-port (0 takes any "
                                     "free port)") from None
        except BaseException:
            for sock in http_sockets.values():
                sock.close()
            self.stop()
            raise
        self._ticker = threading.Thread(target=self._tick, name="mockbench-ticker", daemon=True)
        self._ticker.start()
        self.started_at = time.time()
        if cfg.port_file:
            self._write_port_file(Path(cfg.port_file))
        log.debug("started in %.1f ms", (time.perf_counter() - t0) * 1000)
        return dict(self.ports)

    def _bind_ports(self) -> dict[str, socket.socket]:
        """Bind the HTTP (and HTTPS) sockets, which the servers then use, and try each socket door's port
        (bound again by the door a moment later): one message names every port that is taken."""
        cfg = self.config
        wanted = {"http": cfg.http_port}
        if self.tls is not None:
            wanted["https"] = cfg.https_port
        probes = {name: port for door in self.doors.values() for name, port in door.wanted_ports().items()}
        bound: dict[str, socket.socket] = {}
        busy: list[tuple[str, int, str]] = []
        for name, port in {**wanted, **{k: v for k, v in probes.items() if v}}.items():
            try:
                bound[name] = _bind(cfg.host, port)
            except OSError as exc:
                busy.append((name, port, exc.strerror or str(exc)))
        for name in probes:
            if name in bound:
                bound.pop(name).close()
        if busy:
            for sock in bound.values():
                sock.close()
            what = "; ".join(f"{port} for {name}: {reason}" for name, port, reason in busy)
            flags = " ".join(f"--{name}-port" for name, _, _ in busy)
            raise BenchError(f"cannot listen on {cfg.host} ({what}); stop what holds them or choose other "
                             f"ports with {flags} (0 takes any free port)")
        return bound

    def _serve(self, name: str, sock: socket.socket, ssl_context: Any) -> None:
        server = HttpServer(sock, self.app, ssl_context=ssl_context, name=name,
                            max_connections=self.config.http_max_connections)
        self._servers.append(server)   # before start: stop() closes the socket even if starting fails
        server.start()
        self.ports[name] = server.port

    def _write_port_file(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.ports) + "\n", encoding="utf-8")
        os.replace(tmp, path)  # atomic: a reader never sees half a file

    def _tick(self) -> None:
        while not self._stop.wait(0.2):
            # Another process sharing the world may have set a timer: a transaction re-reads them (Store._follow).
            if self.scenarios.tick_due() or self.world.mss.tick_due() or self.store.foreign_commits():
                try:
                    with self.world.transaction():
                        pass  # opening a transaction runs the tick hooks: due `at:` transitions, MSSanté answers
                except UNAVAILABLE:
                    pass      # tried again on the next tick; the store logged the full disk (or lock) once
                except Exception:
                    log.exception("a timed transition or answer failed")

    def stop(self) -> None:
        self._stop.set()
        events = self.app.extensions.get("mockbench.events")
        if events is not None:
            events.close()  # ends the live timeline streams, so that their threads end
        for door in reversed(self.doors.values()):
            try:
                door.stop()
            except Exception:
                log.exception("door %s did not stop cleanly", getattr(door, "name", door))
        for server in self._servers:
            server.stop()
        self._servers.clear()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
            self._ticker = None

    def close(self) -> None:
        self.stop()
        self.store.close()
        if self._own_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        self._lock.release()  # the state folder is free for the next bench

    def __enter__(self) -> Bench:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Facts about the running bench --------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.urls.url

    @property
    def https_url(self) -> str | None:
        """The HTTPS port's advertised base URL (--public-https-url), None without TLS."""
        return self.urls.https_url

    def backchannel_url(self, https: bool = False) -> str | None:
        """The base a server-side client calls (token, userinfo, JWKS, introspection, WSDL addresses):
        --backchannel-url / --backchannel-https-url, else the same as `url` / `https_url`."""
        return self.urls.backchannel_url(https)

    def health(self) -> dict:
        doors = {name: "up" for name in self.doors}
        with self.world.read() as tx:
            loaded = self.scenarios.loaded(tx)
            stats = self.world.journal.stats(tx)
        # `ports` as clients reach them (public_ports, e.g. a container's published ports); `bound_ports`
        # only when they differ.
        published = {**self.ports, **{k: v for k, v in self.config.published_ports().items() if k in self.ports}}
        extra = {"bound_ports": dict(self.ports)} if published != self.ports else {}
        return {"status": "ok", "doors": doors, "version": __version__, "ports": published, **extra,
                "state": str(self.state_dir), "scenario": loaded["id"] if loaded else None,
                "journal": stats, "uptime": round(time.time() - self.started_at, 3) if self.started_at else 0}

    def ready_line(self) -> str:
        ports = " ".join(f"{k}={v}" for k, v in self.ports.items())
        with self.world.transaction() as tx:
            loaded = self.scenarios.loaded(tx)
        what = f"scenario {loaded['id']}" if loaded else ("resumed world" if self.resumed else "empty world")
        line = f"mockbench ready at {self.url} ({ports}); state {self.state_dir}; {what}"
        if self.control_token:
            line += (f"; control token required (dashboard: {self.url}/?token={self.control_token}; clients: "
                     "--control-token or MOCKBENCH_CONTROL_TOKEN)")
        return line

    def _log_exchange(self, entry: dict) -> None:
        if not exchange_log.isEnabledFor(logging.INFO):
            return
        parts = [entry["channel"], entry["operation"], entry.get("patient") or "-", entry["verdict"]]
        if entry.get("code"):
            parts.append(entry["code"])
        if entry.get("actor"):
            parts.append(f"by {entry['actor']}")
        exchange_log.info(" ".join(parts))


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class StateLock:
    """The state folder held by one bench for its lifetime: an advisory lock on the folder itself (flock on
    its directory descriptor), which the kernel drops when the process ends, even by kill -9, and which
    leaves no file behind. A second bench on the same folder is refused before it opens, resets or loads
    anything, and is told which process holds it (`bench.pid`, written once the holder is built and removed
    when it closes; only a hint: the lock is the directory's)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.pid_file = state_dir / PID_NAME
        try:
            self._fd: int | None = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise BenchError(f"cannot open the state folder {state_dir}: {exc.strerror}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            self._fd = None
            try:
                holder = self.pid_file.read_text(encoding="utf-8").strip() or "unknown"
            except OSError:
                holder = "unknown"
            raise BenchError(
                f"the state folder {state_dir} is in use by another bench (pid {holder}); stop it first, or give "
                f"this bench a folder of its own (--state OTHER_DIR, or no --state for a temporary world)") from None
        self._wrote_pid = False

    def record_pid(self) -> None:
        try:
            self.pid_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
            self._wrote_pid = True
        except OSError:
            pass   # only a hint for the message above

    def release(self) -> None:
        if self._fd is None:
            return
        if self._wrote_pid:
            self.pid_file.unlink(missing_ok=True)
        os.close(self._fd)   # drops the lock
        self._fd = None
