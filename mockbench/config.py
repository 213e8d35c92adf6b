"""One typed configuration, from defaults, a TOML file, MOCKBENCH_<OPTION> environment variables and
command-line flags (each overriding the one before)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class ConfigError(ValueError):
    pass


@dataclass
class Config:
    host: str = "127.0.0.1"
    http_port: int = 8080
    https_port: int = 8443
    mllp_port: int = 2575
    smtp_port: int = 2525
    imap_port: int = 1143
    state: Path | None = None
    reset: bool = False
    scenario: str | None = None
    tls_dir: Path | None = None
    public_url: str | None = None
    # The ports as clients reach them when they differ from the bound ones (a container's published ports):
    # "http=18080,mllp=12575". Health reports them; the bench still binds the *_port settings.
    public_ports: str | None = None
    public_https_url: str | None = None
    # Back-channel bases (issue 18 point 5, as Keycloak's hostname-backchannel): what a server calls directly
    # (OIDC token, userinfo, introspection, revocation, JWKS, CIBA; the DMP WSDLs' soap address), when it
    # reaches the bench by another name than the browser (a DPI in a sibling container). The issuer and the
    # authorization endpoint stay on public_url. None: the same as public_url / public_https_url.
    backchannel_url: str | None = None
    backchannel_https_url: str | None = None
    port_file: Path | None = None
    dpi_mllp: str | None = None
    log_level: str = "INFO"
    quiet: bool = False
    journal_max_entries: int = 100_000
    journal_max_bytes: int = 256 * 1024 * 1024
    journal_raw_bytes: int = 64 * 1024
    # The control API and dashboard's guard (control/security.py): a token (required when given, generated
    # when the host is not loopback) and the extra Host names served (comma-separated).
    control_token: str | None = None
    allowed_hosts: str | None = None
    # Connections each port serves at once; beyond, refused on the port's own wire (README, Security).
    http_max_connections: int = 1000
    mllp_max_connections: int = 128
    smtp_max_connections: int = 128
    imap_max_connections: int = 128
    # Settings the door issues read; kept here so that one file configures the whole bench.
    doors: dict[str, Any] = field(default_factory=dict)

    @property
    def ports(self) -> dict[str, int]:
        return {"http": self.http_port, "mllp": self.mllp_port, "smtp": self.smtp_port, "imap": self.imap_port}

    def published_ports(self) -> dict[str, int]:
        """`public_ports` as a dict; ConfigError names what is wrong."""
        out: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in (self.public_ports or "").split(","))):
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep or name not in ("http", "https", "mllp", "smtp", "imap"):
                raise ConfigError(f"public_ports: {part!r} is not NAME=PORT with NAME one of http, https, mllp, "
                                  f"smtp, imap")
            try:
                port = int(value)
            except ValueError:
                port = -1
            if not 1 <= port <= 65535:
                raise ConfigError(f"public_ports: {value.strip()!r} is not a port number (1-65535) for {name}")
            out[name] = port
        return out
    def check(self) -> None:
        """Refuse, in one line, settings the bench cannot run with (issue 17, point 4)."""
        for name in ("journal_max_entries", "journal_max_bytes"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: {getattr(self, name)} must be at least 1")
        if self.journal_raw_bytes < 0:
            raise ConfigError(f"journal_raw_bytes: {self.journal_raw_bytes} must be 0 or more")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"log_level: {self.log_level!r} is not one of DEBUG, INFO, WARNING, ERROR")
        for name in ("public_url", "public_https_url", "backchannel_url", "backchannel_https_url"):
            if getattr(self, name) is not None:
                check_public_url(getattr(self, name), name)

    def advertised_url(self, http_port: int) -> str:
        return (self.public_url or f"http://{_url_host(self.host)}:{http_port}").rstrip("/")

    def advertised_https_url(self, https_port: int) -> str:
        """What is fetched over HTTPS advertises this base (WSDL addresses, OIDC discovery)."""
        return (self.public_https_url or f"https://{_url_host(self.host)}:{https_port}").rstrip("/")

    def backchannel(self, https: bool, front: str) -> str:
        """The base of back-channel addresses: backchannel_(https_)url, else the front-channel base."""
        return ((self.backchannel_https_url if https else self.backchannel_url) or front).rstrip("/")


def check_public_url(url: str, name: str = "public_url") -> None:
    """An absolute http(s) URL with a host, an optional valid port and path, nothing else: what issuers,
    WSDLs and links are built on."""
    problem = None
    try:
        parts = urlsplit(url)
        port = parts.port   # ValueError when not a number in 0-65535
    except ValueError:
        parts, port, problem = None, None, "its port is not a number from 1 to 65535"
    if problem is None and parts is not None:
        if parts.scheme not in ("http", "https"):
            problem = "it does not start with http:// or https://"
        elif not parts.hostname:
            problem = "it names no host"
        elif port == 0:
            problem = "its port is not a number from 1 to 65535"
        elif parts.query or parts.fragment or parts.username or parts.password:
            problem = "it carries a query, a fragment or credentials"
        elif any(c.isspace() for c in url):
            problem = "it contains white space"
    if problem:
        raise ConfigError(f"{name}: {url!r} is not a base URL such as https://bench.example:8443 ({problem})")


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


_TYPES = {f.name: f.type for f in fields(Config)}


def _coerce(name: str, value: Any) -> Any:
    kind = str(_TYPES[name])
    if value is None:
        return None
    try:
        if "bool" in kind:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError
        if "int" in kind:
            number = int(value)
            if name.endswith("_port") and not 0 <= number <= 65535:
                raise ValueError
            return number
        if "Path" in kind:
            return Path(value).expanduser()
        if "dict" in kind:
            if not isinstance(value, dict):
                raise ValueError
            return value
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: {value!r} is not a valid {kind.replace(' | None', '')}") from None
    return str(value)


def load(file: Path | None = None, env: Mapping[str, str] | None = None, flags: dict[str, Any] | None = None
         ) -> Config:
    values: dict[str, Any] = {}
    if file is not None:
        import tomllib  # only with a config file: 1.5 ms of every start otherwise (issue 21, point 5)

        try:
            data = tomllib.loads(Path(file).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read the config file {file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        for key, value in data.items():
            name = key.replace("-", "_")
            if name not in _TYPES:
                raise ConfigError(f"{file}: unknown setting {key}; settings: {', '.join(_TYPES)}")
            values[name] = _coerce(name, value)
    environ: Mapping[str, str] = os.environ if env is None else env
    for name in _TYPES:
        key = f"MOCKBENCH_{name.upper()}"
        if key in environ and name != "doors":
            values[name] = _coerce(name, environ[key])
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = _coerce(name, value)
    config = Config(**values)
    config.check()
    config.published_ports()   # raises ConfigError on a malformed value
    for name in ("http_max_connections", "mllp_max_connections", "smtp_max_connections", "imap_max_connections"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{name}: {getattr(config, name)} is not a positive number of connections")
    return config
