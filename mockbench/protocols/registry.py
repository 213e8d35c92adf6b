"""The door registry: every door the bench runs, by name, in the order the bench builds them, checks their
ports, reports them (health, the port file, /_bench/endpoints) and serves their routes. A door package is
`protocols/<name>/` with its entry point `door.py`, whose `build(context, config)` makes the door from the
bench's configuration (raising `DoorConfigError`) and returns a `context.Door`.

The doors are imported when the bench is built, not when this module is: a command that runs no bench (the
CLI's client commands) does not pay for Flask, lxml or aiosmtpd."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config
    from .context import Door, DoorContext

# HTTP doors first, then the socket doors: health lists them in this order, and the socket doors' ports come
# after the HTTP port in the port file (mllp, smtp, imap).
DOORS = ("dmp", "oidc", "annuaire", "pfi", "mss")


def build_doors(context: DoorContext, config: Config) -> dict[str, Door]:
    """Every door of the registry, built from `config` (name -> door). A door whose settings are wrong raises
    `DoorConfigError` naming them."""
    doors: dict[str, Door] = {}
    for name in DOORS:
        module = importlib.import_module(f"{__package__}.{name}.door")
        door: Door = module.build(context, config)
        assert door.name == name, f"protocols/{name}/door.py built a door named {door.name}"
        doors[name] = door
    return doors
