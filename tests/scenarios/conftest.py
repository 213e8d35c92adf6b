import pytest

from mockbench.scenarios.engine import ScenarioEngine
from mockbench.world.clock import Clock
from mockbench.world.store import Store
from mockbench.world.world import World


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def world(tmp_path, fake_time) -> World:
    return World(Store(tmp_path / "w.db"), Clock(real=fake_time))


@pytest.fixture
def engine(world) -> ScenarioEngine:
    return ScenarioEngine(world)
