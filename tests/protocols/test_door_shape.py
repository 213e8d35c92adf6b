"""One shape for every door (issue 20 point 3): each package under protocols/ is a door of the registry, with
`door.py` (its entry point, `build(context, config)`) and `errors.py` (its errors on its wire); the bench
builds, starts, reports and serves exactly the registry's doors, and none is given the Bench."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from mockbench.config import Config
from mockbench.protocols import registry
from mockbench.protocols.context import DoorConfigError, HttpDoor, ListenError
from mockbench.protocols.loop import SocketDoor

PROTOCOLS = Path(registry.__file__).parent
PACKAGES = sorted(p.name for p in PROTOCOLS.iterdir() if (p / "__init__.py").is_file())


def test_every_door_package_is_in_the_registry():
    assert sorted(registry.DOORS) == PACKAGES


@pytest.mark.parametrize("name", PACKAGES)
def test_every_door_has_an_entry_point_and_an_error_table(name):
    assert (PROTOCOLS / name / "door.py").is_file(), f"protocols/{name}/ has no door.py"
    assert (PROTOCOLS / name / "errors.py").is_file(), f"protocols/{name}/ has no errors.py"
    build = importlib.import_module(f"mockbench.protocols.{name}.door").build
    assert list(inspect.signature(build).parameters) == ["context", "config"]


def test_the_bench_runs_the_registry(mockbench):
    doors = mockbench.bench.doors
    assert list(doors) == list(registry.DOORS)
    health = mockbench.client.health()
    assert list(health["doors"]) == list(registry.DOORS)
    assert all(state == "up" for state in health["doors"].values())
    # each socket door's ports are bound and reported; the HTTP doors have none of their own
    wanted = [port for door in doors.values() for port in door.wanted_ports()]
    assert wanted == ["mllp", "smtp", "imap"]
    assert set(wanted) <= set(health["ports"])
    # /_bench/endpoints has one section per door, each written by the door
    described = mockbench.client.endpoints()
    for name, door in doors.items():
        assert described[name] == door.endpoints()


def test_the_doors_are_given_a_context_not_the_bench(mockbench):
    for door in mockbench.bench.doors.values():
        assert door.context is mockbench.bench.context
        assert not any(value is mockbench.bench for value in vars(door).values())
    assert isinstance(mockbench.bench.dmp, HttpDoor) and isinstance(mockbench.bench.pfi, SocketDoor)
    assert isinstance(mockbench.bench.smtp, SocketDoor) and isinstance(mockbench.bench.imap, SocketDoor)


def test_a_door_setting_error_is_a_door_config_error(mockbench):
    build = importlib.import_module("mockbench.protocols.pfi.door").build
    with pytest.raises(DoorConfigError, match=r"\[doors.pfi\] unknown settings nope"):
        build(mockbench.bench.context, Config(doors={"pfi": {"nope": 1}}))


def test_a_port_that_cannot_be_bound_is_a_listen_error(mockbench):
    taken = mockbench.bench.ports["mllp"]
    from mockbench.protocols.pfi.door import PfiDoor, PfiSettings

    door = PfiDoor(mockbench.bench.context, PfiSettings(port=taken))
    try:
        with pytest.raises(ListenError) as caught:
            door.start()
        assert caught.value.port_name == "mllp" and caught.value.port == taken
    finally:
        door.stop()
