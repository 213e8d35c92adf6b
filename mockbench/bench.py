"""The Bench: built from a Config, it owns the world, the scenario engine, the HTTP app and the doors, and
starts and stops them. Nothing here is module-level: two benches run side by side in one process."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from . import __version__
from .config import Config
from .http_server import HttpServer
from .scenarios.engine import ScenarioEngine
from .scenarios.loader import Catalogue, resolve
from .world import errors
from .world.journal import JournalLimits
from .world.store import Store
from .world.world import World

log = logging.getLogger("mockbench")
exchange_log = logging.getLogger("mockbench.exchange")

DB_NAME = "world.db"
LOCK_NAME = "bench.lock"


class UnknownSnapshot(errors.NotFound):
    code = "SNAPSHOT_UNKNOWN"
    message = "no snapshot has that name"


class BenchError(RuntimeError):
    """Something that stops the bench from starting, said so that a user can act on it."""


class Door(Protocol):
    """A protocol door that listens on its own port (MLLP, SMTP, IMAP). Doors served on the HTTP port
    register Flask blueprints instead (see control.app.create_app)."""

    name: str

    def start(self) -> dict[str, int]: ...   # the ports it bound, e.g. {"mllp": 2575}

    def stop(self) -> None: ...


class Bench:
    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self._own_state = self.config.state is None
        self.state_dir = Path(self.config.state or tempfile.mkdtemp(prefix="mockbench-")).resolve()
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BenchError(f"cannot create the state folder {self.state_dir}: {exc.strerror}") from None
        self._lock = lock_state(self.state_dir)
        db = self.state_dir / DB_NAME
        self.resumed = db.exists()
        self.store = Store(db)
        self.resumed = self.resumed and self.store.holds_world()
        self.world = World(self.store, journal_limits=JournalLimits(
            max_entries=self.config.journal_max_entries, max_bytes=self.config.journal_max_bytes,
            raw_bytes=self.config.journal_raw_bytes))
        self.catalogue = Catalogue()
        self.scenarios = ScenarioEngine(self.world, self.catalogue)
        self.tls = None
        if self.config.tls_dir:
            from .pki import load_tls_files  # cryptography costs ~30 ms of start-up: only with TLS

            self.tls = load_tls_files(self.config.tls_dir)
        self.doors: list[Door] = []          # doors with ports of their own
        self.http_doors: dict[str, tuple[str, Any]] = {}  # name -> (URL prefix, Flask blueprint)
        self.ports: dict[str, int] = {}
        self.started_at: float | None = None
        self._servers: list[HttpServer] = []
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.world.journal.listeners.append(self._log_exchange)
        self._add_doors()
        from .control.app import create_app  # late: the app module imports the bench's types
        self.app = create_app(self)

    def _add_doors(self) -> None:
        from .protocols.pfi.door import PfiDoor, PfiSettings, parse_endpoint

        cfg = self.config
        try:
            dpi = parse_endpoint(cfg.dpi_mllp)
        except ValueError as exc:
            raise BenchError(str(exc)) from None
        self.doors.append(PfiDoor(self, PfiSettings(host=cfg.host, port=cfg.mllp_port, dpi=dpi)))
        from .protocols.mss.smtp import MssSettings, SmtpDoor

        try:
            mss_settings = MssSettings.from_config(cfg.host, cfg.smtp_port, cfg.doors.get("mss", {}))
        except ValueError as exc:
            raise BenchError(f"[doors.mss] {exc}") from None
        self.doors.append(SmtpDoor(self, mss_settings))
        from .protocols.mss.imap import ImapDoor, settings_from

        self.doors.append(ImapDoor(self, settings_from(self)))
        from .protocols.dmp.door import PREFIX, DmpDoor

        dmp_settings = cfg.doors.get("dmp", {})
        self.dmp = DmpDoor(self, accept_unknown_professionals=bool(dmp_settings.get("accept_unknown_professionals")),
                           check_signatures=bool(dmp_settings.get("check_signatures")),
                           signature_ca=self.tls.ca_cert.read_bytes() if self.tls else None)
        self.http_doors["dmp"] = (PREFIX, self.dmp.blueprint())
        from .protocols.oidc.flask import PREFIX as OIDC_PREFIX
        from .protocols.oidc.flask import OidcDoor

        try:
            self.oidc = OidcDoor(self, cfg.doors.get("oidc", {}))
        except ValueError as exc:
            raise BenchError(f"[doors.oidc] {exc}") from None
        self.http_doors["oidc"] = (OIDC_PREFIX, self.oidc.blueprint())
        from .protocols.annuaire.door import PREFIX as FHIR_PREFIX
        from .protocols.annuaire.door import AnnuaireDoor
        from .protocols.annuaire.door import settings as annuaire_settings

        try:
            keys = annuaire_settings(cfg.doors.get("annuaire", {}))
        except ValueError as exc:
            raise BenchError(f"[doors.annuaire] {exc}") from None
        self.annuaire = AnnuaireDoor(self, api_keys=keys)
        self.http_doors["annuaire"] = (FHIR_PREFIX, self.annuaire.blueprint())

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
            for door in self.doors:
                self.ports.update(door.start())
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
        probes = {"mllp": cfg.mllp_port, "smtp": cfg.smtp_port, "imap": cfg.imap_port}
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
        server = HttpServer(sock, self.app, ssl_context=ssl_context, name=name)
        self._servers.append(server)   # before start: stop() closes the socket even if starting fails
        server.start()
        self.ports[name] = server.port

    def _write_port_file(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.ports) + "\n", encoding="utf-8")
        os.replace(tmp, path)  # atomic: a reader never sees half a file

    def _tick(self) -> None:
        while not self._stop.wait(0.2):
            if self.scenarios.tick_due() or self.world.mss.tick_due():
                try:
                    with self.world.transaction():
                        pass  # opening a transaction runs the tick hooks: due `at:` transitions, MSSanté answers
                except Exception:
                    log.exception("a timed transition or answer failed")

    def stop(self) -> None:
        self._stop.set()
        events = self.app.extensions.get("mockbench.events")
        if events is not None:
            events.close()  # ends the live timeline streams, so that their threads end
        for door in reversed(self.doors):
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
        self._lock.close()  # releases the state folder for the next bench

    def __enter__(self) -> Bench:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Facts about the running bench --------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.config.advertised_url(self.ports.get("http", self.config.http_port))

    def health(self) -> dict:
        doors = {name: "up" for name in self.http_doors}
        doors.update({door.name: "up" for door in self.doors})
        with self.world.transaction() as tx:
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
        return f"mockbench ready at {self.url} ({ports}); state {self.state_dir}; {what}"

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


def lock_state(state_dir: Path):
    """Hold the state folder for this bench's lifetime (an advisory lock that the kernel drops when the
    process ends, even by kill -9): a second bench on the same folder is refused before it opens, resets
    or loads anything, and is told which process holds it."""
    path = state_dir / LOCK_NAME
    try:
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held until close())
    except OSError as exc:
        raise BenchError(f"cannot open {path}: {exc.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise BenchError(
            f"the state folder {state_dir} is in use by another bench (pid {holder}); stop it first, or give "
            f"this bench a folder of its own (--state OTHER_DIR, or no --state for a temporary world)") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
