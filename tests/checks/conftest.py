"""The checks run on a world: their tests use the world tests' fixtures (the cast of professionals, patients
and mailboxes), loaded from tests/world/conftest.py by path (two conftest modules cannot import each other by
name under pytest's default import mode)."""

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("tests_world_conftest",
                                               Path(__file__).resolve().parents[1] / "world" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_world = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _world   # its dataclasses look their module up
_spec.loader.exec_module(_world)

ids, now, clock, make_world, world, cast, new_cast, refused = (
    _world.ids, _world.now, _world.clock, _world.make_world, _world.world, _world.cast, _world.new_cast,
    _world.refused)
