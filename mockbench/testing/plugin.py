"""pytest plugin: an in-process bench on free ports, reset between tests.

    def test_my_dpi(mockbench):            # a running bench, world reset before the test
        mockbench.client.load("hidden-documents")
        my_dpi.configure(dmp_url=mockbench.url, mllp_port=mockbench.ports.get("mllp"))
        ...
        assert mockbench.client.finish()[0]["status"] == "passed"

    @pytest.mark.mockbench_scenario("consent-withdrawal")   # loaded before the test instead of a reset
    def test_withdrawal(mockbench): ...

One bench serves the whole session (starting one takes a fraction of a second; a reset takes about a
millisecond); `mockbench_factory` starts more, each with its own world and ports.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ..bench import Bench
from ..config import Config
from .client import BenchClient


@dataclass
class RunningBench:
    bench: Bench
    client: BenchClient

    @property
    def url(self) -> str:
        return self.bench.url

    @property
    def ports(self) -> dict[str, int]:
        return dict(self.bench.ports)

    @property
    def world(self):
        return self.bench.world


def start_bench(state_dir, **overrides) -> RunningBench:
    config = Config(http_port=0, https_port=0, mllp_port=0, smtp_port=0, imap_port=0, state=state_dir,
                    **overrides)
    bench = Bench(config)
    bench.start()
    return RunningBench(bench, BenchClient(bench.url, token=bench.control_token))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mockbench_scenario(id): load this scenario in the mockbench fixture")


@pytest.fixture(scope="session")
def mockbench_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBench]:
    running = start_bench(tmp_path_factory.mktemp("mockbench-state"))
    yield running
    running.bench.close()


@pytest.fixture
def mockbench(mockbench_session: RunningBench, request: pytest.FixtureRequest) -> RunningBench:
    marker = request.node.get_closest_marker("mockbench_scenario")
    if marker is not None:
        mockbench_session.bench.load_scenario(marker.args[0])
    else:
        mockbench_session.bench.reset()
    return mockbench_session


@pytest.fixture
def mockbench_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Start extra benches: `mockbench_factory(journal_max_entries=100)`; each is closed after the test."""
    started: list[RunningBench] = []

    def make(**overrides) -> RunningBench:
        running = start_bench(tmp_path_factory.mktemp("mockbench-extra"), **overrides)
        started.append(running)
        return running

    yield make
    for running in started:
        running.bench.close()
