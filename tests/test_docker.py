"""The Docker image and compose file, checked without a Docker engine.

docker/Dockerfile and docker/compose.yaml are parsed and compared with the real command-line parser, the
default configuration and the shipped scenario catalogue; then the image's command and its HEALTHCHECK are run
natively, so that what the container would run is known to start, answer its health check and stop on SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
import yaml

from mockbench.cli import build_parser
from mockbench.config import Config, load
from mockbench.scenarios.loader import Catalogue

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"
STATE_DIR = "/var/lib/mockbench"

START_TIMEOUT = 20.0  # seconds for the port file to appear
STOP_TIMEOUT = 10.0   # seconds for the bench to exit after SIGTERM


# Dockerfile parsing ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Instruction:
    line: int       # where the instruction starts (1-based)
    keyword: str    # upper case: FROM, RUN, CMD...
    args: str       # the rest, continuation lines joined


_CONTINUATION = re.compile(r"\\[ \t]*$")


def parse_dockerfile(text: str) -> list[Instruction]:
    """Logical instructions, as Docker reads them: `\\` at the end of a line continues it (the backslash and
    newline are removed), comment lines and empty lines inside a continuation are dropped."""
    instructions: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments (parser directives included) and blank lines, inside a continuation or not
        if not parts:
            start = number
        if _CONTINUATION.search(raw):
            parts.append(_CONTINUATION.sub("", raw))
            continue
        parts.append(raw)
        logical = "".join(parts).strip()
        keyword, *rest = logical.split(None, 1)
        instructions.append(Instruction(start, keyword.upper(), rest[0].strip() if rest else ""))
        parts = []
    if parts:
        raise ValueError(f"the Dockerfile ends inside a continuation started on line {start}")
    return instructions


def exec_form(args: str) -> list[str] | None:
    """The JSON array of an exec-form instruction, or None for shell form."""
    if not args.startswith("["):
        return None
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None  # Docker then treats it as shell form
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    starts = [i for i, ins in enumerate(instructions) if ins.keyword == "FROM"]
    assert starts, "the Dockerfile has no FROM"
    return instructions[starts[-1]:]


def _from_parts(args: str) -> tuple[str, str | None]:
    words = [w for w in args.split() if not w.startswith("--")]
    image = words[0]
    alias = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
    return image, alias


def base_image(instructions: list[Instruction]) -> str:
    """The image the final stage is built on, following references to earlier stages."""
    stages: dict[str, str] = {}
    image = ""
    for ins in instructions:
        if ins.keyword == "FROM":
            image, alias = _from_parts(ins.args)
            image = stages.get(image.lower(), image)
            if alias:
                stages[alias.lower()] = image
    return image


def one(stage: list[Instruction], keyword: str) -> Instruction | None:
    """The effective (last) instruction of that keyword in the stage."""
    found = [ins for ins in stage if ins.keyword == keyword]
    return found[-1] if found else None


def image_command(stage: list[Instruction]) -> list[str]:
    entrypoint, cmd = one(stage, "ENTRYPOINT"), one(stage, "CMD")
    assert entrypoint or cmd, "the image has no ENTRYPOINT nor CMD"
    command: list[str] = []
    for ins in (entrypoint, cmd):
        if ins is None:
            continue
        form = exec_form(ins.args)
        assert form is not None, f"line {ins.line}: {ins.keyword} must be in exec form (a JSON array) so that " \
                                 f"the bench is PID 1 and gets SIGTERM: {ins.args}"
        command += form
    return command


def healthcheck_command(stage: list[Instruction]) -> list[str]:
    ins = one(stage, "HEALTHCHECK")
    assert ins is not None, "the image has no HEALTHCHECK"
    match = re.fullmatch(r"((?:--\S+\s+)*)CMD\s+(.*)", ins.args, re.DOTALL | re.IGNORECASE)
    assert match, f"line {ins.line}: HEALTHCHECK without CMD: {ins.args}"
    form = exec_form(match.group(2).strip())
    return form if form is not None else ["/bin/sh", "-c", match.group(2).strip()]


def exposed_ports(stage: list[Instruction]) -> set[int]:
    ports: set[int] = set()
    for ins in stage:
        if ins.keyword == "EXPOSE":
            for word in ins.args.split():
                number, _, proto = word.partition("/")
                if proto.lower() in ("", "tcp"):
                    ports.add(int(number))
    return ports


def volumes(stage: list[Instruction]) -> set[str]:
    found: set[str] = set()
    for ins in stage:
        if ins.keyword == "VOLUME":
            form = exec_form(ins.args)
            found.update(p.rstrip("/") or "/" for p in (form if form is not None else ins.args.split()))
    return found


def option(command: list[str], name: str) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE` in a command (the last one wins, as with argparse)."""
    value = None
    for i, word in enumerate(command):
        if word == name and i + 1 < len(command):
            value = command[i + 1]
        elif word.startswith(name + "="):
            value = word.split("=", 1)[1]
    return value


@pytest.fixture(scope="module")
def stage() -> list[Instruction]:
    return final_stage(parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def command(stage) -> list[str]:
    return image_command(stage)


@pytest.fixture(scope="module")
def compose_service() -> dict:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert "mockbench" in data.get("services", {}), "compose.yaml has no `mockbench` service"
    return data["services"]["mockbench"]


def default_ports() -> set[int]:
    """Every port the bench opens by default: the config's ports, plus HTTPS when a TLS folder is given."""
    config = Config()
    return set(config.ports.values()) | {config.https_port}


# The parser itself ---------------------------------------------------------------------------------------
def test_parser_joins_continuations_and_skips_comments():
    text = (
        "# syntax=docker/dockerfile:1\n"
        "FROM python:3.11-slim AS base\n"
        "RUN a \\\n"
        "    # a comment inside the continuation\n"
        "    && b \\  \n"
        "\n"
        "    && c\n"
        'CMD ["x", \\\n "y"]\n'
    )
    ins = parse_dockerfile(text)
    assert [i.keyword for i in ins] == ["FROM", "RUN", "CMD"]
    assert ins[1].line == 3 and ins[1].args.split() == ["a", "&&", "b", "&&", "c"]
    assert exec_form(ins[2].args) == ["x", "y"]
    assert exec_form("x y") is None and exec_form("[not json") is None


# The Dockerfile ------------------------------------------------------------------------------------------
def test_base_image_is_slim_python_311_or_later():
    image = base_image(parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")))
    match = re.fullmatch(r"(?:docker\.io/)?(?:library/)?python:(\d+)\.(\d+)(?:\.\d+)?-slim(?:-[a-z]+)?"
                         r"(?:@sha256:[0-9a-f]{64})?", image)
    assert match, f"the base image {image!r} is not a slim Python image"
    assert (int(match.group(1)), int(match.group(2))) >= (3, 11), f"{image}: mockbench needs Python >= 3.11"


def test_runs_as_a_non_root_user_set_before_the_command(stage):
    users = [ins for ins in stage if ins.keyword == "USER"]
    assert users, "no USER: the bench would run as root"
    user = users[-1]
    name = user.args.split(":")[0].strip()
    assert name not in ("root", "0"), f"line {user.line}: USER {user.args} is root"
    starts = [ins.line for ins in stage if ins.keyword in ("CMD", "ENTRYPOINT")]
    assert user.line < min(starts), "USER must come before CMD/ENTRYPOINT"


def test_state_folder_is_a_volume_and_the_command_uses_it(stage, command):
    assert STATE_DIR in volumes(stage), f"VOLUME does not declare {STATE_DIR}"
    assert option(command, "--state") == STATE_DIR


def test_healthcheck_asks_the_control_api_with_python(stage):
    check = healthcheck_command(stage)
    assert Path(check[0]).name in ("python", "python3"), f"the slim image has no curl or wget: {check}"
    text = " ".join(check)
    assert re.search(r"http://(127\.0\.0\.1|localhost):\{port\}/_bench/health", text), text
    assert "os.environ.get('MOCKBENCH_HTTP_PORT', '8080')" in text, "the check must follow the configured port"


def test_command_is_mockbench_up_accepted_by_the_real_parser(command):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert command[0] in scripts, f"{command[0]} is not a console script of the package ({list(scripts)})"
    assert command[1] == "up", command
    try:
        args = build_parser().parse_args(command[1:])
    except SystemExit as exc:
        pytest.fail(f"`mockbench {' '.join(command[1:])}` is refused by the CLI parser (exit {exc.code})")
    assert args.command == "up"
    assert args.host == "0.0.0.0", "inside a container the bench must listen on every interface"
    assert args.state == Path(STATE_DIR)
    assert args.scenario in Catalogue().all(), f"scenario {args.scenario} is not in the shipped catalogue"
    assert args.reset, "--scenario over the persisted world in the volume needs --reset"


def test_expose_covers_every_default_port(stage):
    missing = default_ports() - exposed_ports(stage)
    assert not missing, f"EXPOSE misses {sorted(missing)}"


def test_copied_sources_exist_and_are_not_ignored(stage):
    ignored = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", ".git"} <= ignored, ".dockerignore must keep .venv and .git out of the build context"
    for ins in stage:
        if ins.keyword not in ("COPY", "ADD"):
            continue
        form = exec_form(ins.args)
        words = [w for w in (form if form is not None else shlex.split(ins.args)) if not w.startswith("--")]
        for source in words[:-1]:
            path = source.rstrip("/")
            assert (ROOT / path).exists(), f"line {ins.line}: {source} is not in the build context (repo root)"
            assert path not in ignored, f"line {ins.line}: {source} is excluded by .dockerignore"


# compose.yaml --------------------------------------------------------------------------------------------
def published(service: dict) -> set[tuple[str, int, int]]:
    """(host ip, host port, container port) for each published port, short or long syntax."""
    found = set()
    for item in service.get("ports", []):
        if isinstance(item, dict):
            found.add((str(item.get("host_ip", "")), int(item.get("published", 0)), int(item["target"])))
            continue
        spec = str(item).split("/")[0]
        parts = spec.rsplit(":", 2)
        ip = parts[0] if len(parts) == 3 else ""
        host = int(parts[-2]) if len(parts) >= 2 and parts[-2] else 0
        found.add((ip, host, int(parts[-1])))
    return found


def test_compose_builds_the_image_from_the_repository(compose_service):
    build = compose_service["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == ROOT, f"build context {context} is not the repository root"
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE


def test_compose_publishes_every_exposed_port_on_loopback(stage, compose_service):
    ports = published(compose_service)
    assert {target for _, _, target in ports} == exposed_ports(stage)
    for ip, host, target in ports:
        assert ip == "127.0.0.1", f"port {target} is published on {ip or 'every interface'}, not 127.0.0.1"
        assert host == target, f"container port {target} is published as {host}"


def test_compose_mounts_a_named_volume_on_the_state_folder(compose_service):
    declared = set(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")).get("volumes") or {})
    mounts = []
    for item in compose_service.get("volumes", []):
        if isinstance(item, dict):
            mounts.append((str(item.get("source", "")), str(item["target"])))
        else:
            source, _, rest = str(item).partition(":")
            mounts.append((source, rest.split(":")[0]))
    sources = [source for source, target in mounts if target.rstrip("/") == STATE_DIR]
    assert sources, f"no volume is mounted at {STATE_DIR}"
    assert sources[0] in declared, f"{sources[0]} is not a named volume declared under `volumes:`"


def test_compose_environment_names_real_settings(compose_service):
    env = compose_service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    settings = {f.name for f in fields(Config)}
    for key in env:
        if key.startswith("MOCKBENCH_"):
            assert key[len("MOCKBENCH_"):].lower() in settings, f"{key} is not a mockbench setting"
    assert env.get("MOCKBENCH_PUBLIC_URL") == "http://localhost:8080"
    load(env={k: str(v) for k, v in env.items()})  # raises ConfigError on a bad value


# The image's command, run natively -----------------------------------------------------------------------
def native_command(command: list[str], state: Path, port_file: Path) -> list[str]:
    """The image's command as this machine can run it: loopback, a temporary state folder, any free ports."""
    replace = {"--host": "127.0.0.1", "--state": str(state)}
    args: list[str] = []
    words = iter(command[1:])
    for word in words:
        name = word.split("=", 1)[0]
        if name in replace:
            if "=" not in word:
                next(words, None)
            args += [name, replace[name]]
        else:
            args.append(word)
    args += ["--http-port", "0", "--mllp-port", "0", "--smtp-port", "0", "--imap-port", "0",
             "--port-file", str(port_file)]
    return [sys.executable, "-m", "mockbench", *args]


def native_healthcheck(check: list[str], port: int) -> tuple[list[str], dict[str, str]]:
    """The HEALTHCHECK command and the environment that points it at `port`, as in a container whose
    MOCKBENCH_HTTP_PORT was set."""
    out = list(check)
    assert sum("/_bench/health" in w for w in out) == 1, f"expected one health URL in the HEALTHCHECK: {check}"
    if Path(out[0]).name in ("python", "python3"):
        out[0] = sys.executable
    return out, {**clean_env(), "MOCKBENCH_HTTP_PORT": str(port)}


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MOCKBENCH_")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_native_healthcheck_fails_when_nothing_listens(stage):
    check, env = native_healthcheck(healthcheck_command(stage), free_port())
    result = subprocess.run(check, capture_output=True, timeout=15, env=env)
    assert result.returncode != 0


def run_image_command(stage, command, workdir: Path, state: Path) -> None:
    """Start the image's command natively, wait for readiness, run the HEALTHCHECK, stop it with SIGTERM."""
    workdir.mkdir(parents=True, exist_ok=True)
    port_file = workdir / "ports.json"
    argv = native_command(command, state, port_file)
    with open(workdir / "stdout", "wb") as out, open(workdir / "stderr", "wb") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=workdir, env=clean_env())

    def output() -> str:
        return ((workdir / "stdout").read_text(errors="replace") + "\n"
                + (workdir / "stderr").read_text(errors="replace"))[-3000:]

    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not port_file.exists():
            if proc.poll() is not None:
                pytest.fail(f"{shlex.join(argv)} exited with {proc.returncode} before it was ready:\n{output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no port file after {START_TIMEOUT} s:\n{output()}")
            time.sleep(0.05)
        ports = json.loads(port_file.read_text(encoding="utf-8"))
        assert (state / "world.db").exists(), "the bench did not keep its world in --state"

        check, env = native_healthcheck(healthcheck_command(stage), ports["http"])
        result = subprocess.run(check, capture_output=True, text=True, timeout=15, env=env)
        assert result.returncode == 0, f"HEALTHCHECK failed ({result.returncode}): {result.stderr[-2000:]}"

        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the bench did not exit within {STOP_TIMEOUT} s of SIGTERM:\n{output()}")
        assert code == 0, f"the bench exited with {code} on SIGTERM:\n{output()}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_image_command_runs_natively_answers_its_healthcheck_and_stops_on_sigterm(stage, command, tmp_path):
    run_image_command(stage, command, tmp_path / "first", tmp_path / "state")


def test_image_command_restarts_on_its_own_volume(stage, command, tmp_path):
    """`docker restart` or `compose up` again: the same command over a state folder that holds a world."""
    run_image_command(stage, command, tmp_path / "first", tmp_path / "state")
    run_image_command(stage, command, tmp_path / "second", tmp_path / "state")
