"""What every door is given and what every door is: the shape the door registry (registry.py) builds and the
bench runs.

A door is given a `DoorContext` (the world, the bench's URLs as clients reach them, the TLS files, the VIHF
trust anchors) and its own settings, read from the `Config` by its package's `door.py` (`build`); never the
whole Bench. It answers the `Door` protocol: the ports it wants (checked before anything starts), its routes
on the HTTP port, `start`/`stop`, and its section of `/_bench/endpoints`. Socket doors (MLLP, SMTP, IMAP)
share `loop.SocketDoor`; doors served on the HTTP port share `HttpDoor`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from flask import Blueprint

    from ..config import Config
    from ..pki import TlsFiles
    from ..world.world import World


class DoorConfigError(Exception):
    """A door's settings cannot be used; the message names the setting (`[doors.pfi] outbound_queue must be
    a positive number`) and the bench says it as its own start-up error."""


class ListenError(Exception):
    """A socket door cannot bind its port; the bench words it with the flag that changes the port."""

    def __init__(self, port_name: str, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot listen on {host}:{port} for {port_name}: {reason}")
        self.port_name, self.host, self.port, self.reason = port_name, host, port, reason


class Urls:
    """The bench's base URLs and ports as clients reach them, read from the configuration and the live map of
    bound ports (filled as the servers start), so that a door built before the start sees the real ports."""

    def __init__(self, config: Config, ports: Mapping[str, int], *, https: bool) -> None:
        self._config = config
        self._ports = ports
        self._https = https

    @property
    def url(self) -> str:
        return self._config.advertised_url(self._ports.get("http", self._config.http_port))

    @property
    def https_url(self) -> str | None:
        """The HTTPS port's advertised base URL (--public-https-url), None without TLS."""
        if not self._https:
            return None
        return self._config.advertised_https_url(self._ports.get("https", self._config.https_port))

    def backchannel_url(self, https: bool = False) -> str | None:
        """The base a server-side client calls (token, userinfo, JWKS, introspection, WSDL addresses):
        --backchannel-url / --backchannel-https-url, else the same as `url` / `https_url`."""
        front = self.https_url if https else self.url
        return None if front is None else self._config.backchannel(https, front)

    def socket_host(self) -> str:
        """The name a server-side client (a DPI's HL7 engine, mail client) uses: the back-channel URL's host."""
        return urlsplit(self.backchannel_url(False) or self.url).hostname or "127.0.0.1"

    def published_port(self, name: str) -> int | None:
        """A bound port as clients reach it (--public-ports), None when that port is not bound."""
        if name not in self._ports:
            return None
        return self._config.published_ports().get(name, self._ports[name])


def _no_anchors() -> bytes:
    return b""


@dataclass(frozen=True)
class DoorContext:
    """What a door needs from the bench that holds it."""

    world: World
    urls: Urls
    tls: TlsFiles | None = None
    # The CA certificates (PEM) a VIHF signature must chain to, read when first needed (the bench's PKI is
    # made lazily).
    trust_anchors: Callable[[], bytes] = field(default=_no_anchors)


class Door(Protocol):
    """One door as the bench runs it. `name` is the door's key in the registry, in health's `doors` and in
    `/_bench/endpoints` (MSSanté's SMTP and IMAP are one door, `mss`)."""

    name: str

    def wanted_ports(self) -> dict[str, int]: ...        # port name -> configured port, e.g. {"mllp": 2575}

    def http_routes(self) -> tuple[str, Blueprint] | None: ...  # (URL prefix, blueprint) on the HTTP port

    def start(self) -> dict[str, int]: ...               # the ports it bound, e.g. {"mllp": 2575}

    def stop(self) -> None: ...

    def endpoints(self) -> Any: ...                      # its section of /_bench/endpoints (JSON)


class HttpDoor:
    """A door served on the bench's HTTP (and HTTPS) port by a Flask blueprint: no port and no thread of its
    own, so starting and stopping it is the HTTP server's business."""

    name = ""
    prefix = ""

    def __init__(self, context: DoorContext) -> None:
        self.context = context
        self.world = context.world
        self.urls = context.urls

    def blueprint(self) -> Blueprint:
        raise NotImplementedError

    def wanted_ports(self) -> dict[str, int]:
        return {}

    def http_routes(self) -> tuple[str, Blueprint] | None:
        return self.prefix, self.blueprint()

    def start(self) -> dict[str, int]:
        return {}

    def stop(self) -> None:
        return None

    def endpoints(self) -> Any:
        return {}
