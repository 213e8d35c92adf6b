"""Where the DPI under test listens for what the PFI sends it (HL7 v2 over MLLP: ZAMs, the MDMs of mails
received), as a scenario (`dpi: {mllp: HOST:PORT}`) or the control API (`PUT /_bench/pfi/dpi`) sets it. The
world keeps it (meta `keep:dpi`, which a reset keeps), so that a scenario sets it and the PFI door reads it
without one importing the other; `--dpi-mllp` at start is the default when neither set one."""

from __future__ import annotations

from .store import Tx

DPI_META = "keep:dpi"       # {"mllp": "HOST:PORT" | None, "source": "scenario" | "control"}
SOURCES = ("scenario", "control")


def parse_endpoint(text: str | None) -> tuple[str, int] | None:
    """`HOST:PORT` (an IPv6 host in brackets) -> (host, port); None for nothing; ValueError otherwise."""
    if not text:
        return None
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--dpi-mllp {text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def check_endpoint(text: str) -> None:
    """For the scenario schema: ValueError with a plain message when `text` is not HOST:PORT."""
    if parse_endpoint(text) is None:
        raise ValueError("give the DPI's MLLP listener as HOST:PORT")


def set_dpi(tx: Tx, mllp: str | None, source: str) -> tuple[str, int] | None:
    """Record the DPI's MLLP listener (None: none, the PFI's queue waits); ValueError when not HOST:PORT."""
    endpoint = parse_endpoint(mllp)
    tx.meta_set(DPI_META, {"mllp": "{}:{}".format(*endpoint) if endpoint else None, "source": source})
    return endpoint


def clear_dpi(tx: Tx) -> None:
    """Forget what a scenario or the control API set: `--dpi-mllp` (or none) again."""
    tx.meta_set(DPI_META, None)


def dpi_endpoint(tx: Tx, default: tuple[str, int] | None) -> tuple[str, int] | None:
    """The DPI's MLLP listener: the one a scenario or the control API set last (None when turned off), else
    `default` (`--dpi-mllp`)."""
    record = tx.meta_get(DPI_META)
    if not record:
        return default
    try:
        return parse_endpoint(record.get("mllp"))
    except ValueError:
        return default


def dpi_source(tx: Tx) -> str | None:
    return (tx.meta_get(DPI_META) or {}).get("source")
