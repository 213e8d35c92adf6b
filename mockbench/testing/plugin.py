"""pytest plugin: a bench for each test session, reset between tests.

    def test_my_dpi(mockbench):            # a running bench, world reset before the test
        mockbench.client.load("hidden-documents")
        my_dpi.configure(dmp_url=mockbench.url, mllp_port=mockbench.ports["mllp"])
        ...
        mockbench.client.assert_steps_passed()   # fails with each failed step's reason and nearest miss

    @pytest.mark.mockbench_scenario("dmp-authorization-withdrawn")   # loaded before the test instead of a reset
    def test_withdrawal(mockbench): ...

By default the bench runs in the test process, on free ports (starting one takes a fraction of a second; a
reset about a millisecond). With `--mockbench-url URL` (or `MOCKBENCH_URL`) the same fixtures drive a bench
that runs elsewhere (a container, a CI service): `url`, `ports` (as the bench publishes them) and `client`
work the same; `world` and `bench`, which reach into the process, are not there. With `--mockbench-image NAME`
(or `MOCKBENCH_IMAGE`; needs `pip install 'mockbench[container]'` and a Docker engine) the plugin runs that
image once for the session, its doors published on free ports of 127.0.0.1, drives it as a remote bench,
attaches the container's output to each failing test's report and removes the container at the end.

When a test that uses `mockbench` fails, the evidence report of the bench as the test left it is written to
`--mockbench-reports DIR` (default: `mockbench-reports` under pytest's base temporary folder) and named in
the failure. `--mockbench-fail-on-findings`, or the `mockbench_strict` marker on a test, fails a test whose
exchanges drew error-severity conformance findings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .client import BenchClient

REPORTS = pytest.StashKey[Path]()
CONTAINER = pytest.StashKey[Any]()   # the session's BenchContainer, with --mockbench-image


@dataclass
class RunningBench:
    """A bench in this process (`bench` is the Bench itself)."""

    bench: Any
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

    @property
    def remote(self) -> bool:
        return False

    def load(self, scenario: str) -> None:
        self.bench.load_scenario(scenario)

    def reset(self) -> None:
        self.bench.reset()


@dataclass
class RemoteBench:
    """A bench that runs elsewhere, reached through its control API only."""

    client: BenchClient
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.client.url

    @property
    def bench(self):
        raise AttributeError("the bench runs elsewhere (--mockbench-url): use mockbench.client, not .bench")

    @property
    def world(self):
        raise AttributeError("the bench runs elsewhere (--mockbench-url): read the world through "
                             "mockbench.client (patients(), documents(), journal()...), not .world")

    @property
    def remote(self) -> bool:
        return True

    def load(self, scenario: str) -> None:
        self.client.load(scenario)

    def reset(self) -> None:
        self.client.reset()


def start_bench(state_dir, **overrides) -> RunningBench:
    from ..bench import Bench  # late: a remote session never imports the bench's doors
    from ..config import Config

    config = Config(http_port=0, https_port=0, mllp_port=0, smtp_port=0, imap_port=0, state=state_dir,
                    **overrides)
    bench = Bench(config)
    bench.start()
    return RunningBench(bench, BenchClient(bench.url, token=bench.control_token))


def connect(url: str, timeout: float = 30.0, token: str | None = None) -> RemoteBench:
    """A RemoteBench for the bench at `url`, once its health answers (waiting up to `timeout` seconds);
    `token`: its control token, when it requires one (a bench listening beyond loopback does)."""
    import time
    import urllib.error

    client = BenchClient(url, token=token)
    deadline = time.monotonic() + timeout
    while True:
        try:
            health = client.health()
            break
        except (OSError, urllib.error.URLError) as exc:
            if time.monotonic() > deadline:
                raise pytest.UsageError(f"--mockbench-url {url}: no bench answers ({exc}); start one with "
                                        f"`mockbench up` or check the URL") from None
            time.sleep(0.2)
    return RemoteBench(client, dict(health.get("ports") or {}))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mockbench")
    group.addoption("--mockbench-url", default=os.environ.get("MOCKBENCH_URL") or None,
                    help="drive the bench that runs at this URL instead of starting one in the test process "
                         "(default: $MOCKBENCH_URL)")
    group.addoption("--mockbench-token", default=os.environ.get("MOCKBENCH_CONTROL_TOKEN") or None,
                    help="the bench's control token: the one to send with --mockbench-url, the one to give the "
                         "container with --mockbench-image (default: $MOCKBENCH_CONTROL_TOKEN; a new one for an "
                         "image)")
    group.addoption("--mockbench-image", default=os.environ.get("MOCKBENCH_IMAGE") or None, metavar="NAME",
                    help="run this image of the bench in the Docker engine (DOCKER_HOST) for the session, on free "
                         "ports of 127.0.0.1, and drive it (default: $MOCKBENCH_IMAGE; needs mockbench[container])")
    group.addoption("--mockbench-wait", default=30.0, type=float, metavar="SECONDS",
                    help="with --mockbench-url or --mockbench-image: how long to wait for the bench's health to "
                         "answer (default 30)")
    group.addoption("--mockbench-reports", default=None, type=Path,
                    help="where the evidence report of each failed mockbench test is written "
                         "(default: mockbench-reports under pytest's base temporary folder)")
    group.addoption("--mockbench-fail-on-findings", action="store_true", default=False,
                    help="fail a test whose exchanges drew error-severity conformance findings")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mockbench_scenario(id): load this scenario in the mockbench fixture")
    config.addinivalue_line("markers", "mockbench_strict: fail this test if the bench found error-severity "
                                       "conformance findings in its exchanges")


@pytest.fixture(scope="session")
def mockbench_session(tmp_path_factory: pytest.TempPathFactory,
                      pytestconfig: pytest.Config) -> Iterator[RunningBench | RemoteBench]:
    """The session's bench: started in this process, or the one at --mockbench-url."""
    url = pytestconfig.getoption("mockbench_url")
    image = pytestconfig.getoption("mockbench_image")
    if url and image:
        raise pytest.UsageError("--mockbench-url and --mockbench-image: choose one (a bench that runs, or an "
                                "image to run)")
    if image:
        yield from _container_session(image, pytestconfig)
        return
    if url:
        yield connect(url, pytestconfig.getoption("mockbench_wait"), pytestconfig.getoption("mockbench_token"))
        return
    running = start_bench(tmp_path_factory.mktemp("mockbench-state"))
    yield running
    running.bench.close()


def _container_session(image: str, config: pytest.Config) -> Iterator[RemoteBench]:
    import secrets

    from .container import BenchContainer, ContainerError

    # Bound to 0.0.0.0 in its container, the bench requires a control token: the session gives it one.
    token = config.getoption("mockbench_token") or secrets.token_urlsafe(24)
    try:
        running = BenchContainer.start(image, token=token)
    except ContainerError as exc:
        raise pytest.UsageError(f"--mockbench-image {image}: {exc}") from None
    config.stash[CONTAINER] = running
    try:
        try:
            running.wait_answering(config.getoption("mockbench_wait"))
        except ContainerError as exc:
            raise pytest.UsageError(f"--mockbench-image {image}: {exc}") from None
        yield connect(running.url, config.getoption("mockbench_wait"), token)
    finally:
        del config.stash[CONTAINER]
        running.remove()


@pytest.fixture
def mockbench(mockbench_session: RunningBench | RemoteBench, request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> RunningBench | RemoteBench:
    """The session's bench with a fresh world: reset, or loaded with the test's `mockbench_scenario`."""
    if REPORTS not in request.config.stash:
        chosen = request.config.getoption("mockbench_reports")
        request.config.stash[REPORTS] = Path(chosen or tmp_path_factory.getbasetemp() / "mockbench-reports")
    marker = request.node.get_closest_marker("mockbench_scenario")
    if marker is not None:
        mockbench_session.load(marker.args[0])
    else:
        mockbench_session.reset()
    return mockbench_session


@pytest.fixture
def mockbench_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Start extra benches in this process: `mockbench_factory(journal_max_entries=100)`; each is closed
    after the test."""
    started: list[RunningBench] = []

    def make(**overrides) -> RunningBench:
        running = start_bench(tmp_path_factory.mktemp("mockbench-extra"), **overrides)
        started.append(running)
        return running

    yield make
    for running in started:
        running.bench.close()


# Failures ---------------------------------------------------------------------------------------------
def _bench_of(item: pytest.Item) -> RunningBench | RemoteBench | None:
    funcargs = getattr(item, "funcargs", None) or {}
    return funcargs.get("mockbench")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    result = yield
    strict = item.config.getoption("mockbench_fail_on_findings") or item.get_closest_marker("mockbench_strict")
    running = _bench_of(item)
    if strict and running is not None:
        errors = [f for f in running.client.findings() if f.get("severity") == "error"]
        if errors:
            lines = [f"{len(errors)} error-severity conformance finding(s) on the bench:"]
            lines += [f"  - {f['rule']}: {f['message']} (journal entries {f.get('entries')})" for f in errors]
            raise AssertionError("\n".join(lines))
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                               call: pytest.CallInfo) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed:
        running = _bench_of(item)
        if running is not None:
            try:
                path = _write_evidence(item, running)
            except Exception as exc:   # the test's own failure matters more than the report's
                report.sections.append(("mockbench evidence", f"the evidence report could not be written: {exc}"))
            else:
                report.sections.append(("mockbench evidence", f"evidence report of this test: {path}"))
            container = item.config.stash.get(CONTAINER, None)
            if container is not None:
                report.sections.append((f"mockbench container {container.name} (last 200 lines)",
                                        container.logs(tail=200)))
    return report


def _write_evidence(item: pytest.Item, running: RunningBench | RemoteBench) -> Path:
    folder = item.config.stash[REPORTS].resolve()   # set by the mockbench fixture
    folder.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid).strip("_")[:150] or "test"
    path = folder / f"{name}.html"
    path.write_bytes(running.client.report("html"))
    return path
