"""Install the peers into the checkout's ignored .bench/ folder, once; nothing global.

    .bench/node   npm install --prefix .bench/node wiremock mountebank maildev oidc-provider
    .bench/venv   python -m venv .bench/venv && .bench/venv/bin/pip install 'moto[server]'

A peer already there is reused (a second `make bench` installs nothing). A peer that fails to install is
reported, and its rows in the table say so; the rest of the run goes on.
"""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
import sys
from collections.abc import Callable

from .procs import NODE_DIR, NODE_MODULES, VENV_DIR

NODE_PEERS = ("wiremock", "mountebank", "maildev", "oidc-provider")
INSTALL_TIMEOUT = 900.0  # seconds for one npm or pip install


def _last_lines(text: str, n: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-n:])


def _npm_install(packages: list[str]) -> subprocess.CompletedProcess:
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["npm", "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund",
                           "--loglevel=error", *packages], capture_output=True, text=True,
                          timeout=INSTALL_TIMEOUT)


def ensure_peers(log: Callable[[str], None]) -> dict[str, str | None]:
    """Install what is missing; return {peer package: None if installed, else why not}."""
    status: dict[str, str | None] = {}
    missing = [p for p in NODE_PEERS if not (NODE_MODULES / p / "package.json").exists()]
    if missing and shutil.which("npm") is None:
        status.update({p: "npm is not on PATH" for p in missing})
        missing = []
    if missing:
        log(f"installing {', '.join(missing)} into {NODE_DIR} (npm)")
        try:
            result = _npm_install(missing)
            if result.returncode != 0:  # one at a time, to tell which one fails
                for p in missing:
                    one = _npm_install([p])
                    if one.returncode != 0:
                        status[p] = f"npm install failed: {_last_lines(one.stderr or one.stdout)}"
        except subprocess.TimeoutExpired:
            log(f"npm install did not finish within {INSTALL_TIMEOUT:.0f} s")
    for p in NODE_PEERS:
        if p not in status:
            status[p] = None if (NODE_MODULES / p / "package.json").exists() else "not installed"

    moto_server = VENV_DIR / "bin" / "moto_server"
    if not moto_server.exists():
        log(f"installing moto[server] into {VENV_DIR} (pip)")
        try:
            if not (VENV_DIR / "bin" / "python").exists():
                subprocess.run([sys.executable, "-m", "venv", str(VENV_DIR)], check=True, capture_output=True,
                               text=True, timeout=INSTALL_TIMEOUT)
            result = subprocess.run([str(VENV_DIR / "bin" / "python"), "-m", "pip", "install", "--quiet",
                                     "--disable-pip-version-check", "moto[server]"], capture_output=True,
                                    text=True, timeout=INSTALL_TIMEOUT)
            if result.returncode != 0:
                status["moto"] = f"pip install failed: {_last_lines(result.stderr or result.stdout)}"
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            status["moto"] = f"venv or pip failed: {exc}"
    status.setdefault("moto", None if moto_server.exists() else "not installed")
    return status


def versions() -> dict[str, str]:
    """The installed peers' versions, for the JSON (a later comparison must know what it compares)."""
    found: dict[str, str] = {}
    for p in NODE_PEERS:
        try:
            found[p] = json.loads((NODE_MODULES / p / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            pass
    dist = glob.glob(str(VENV_DIR / "lib" / "python*" / "site-packages" / "moto-*.dist-info"))
    if dist:
        found["moto"] = dist[0].rsplit("moto-", 1)[1].removesuffix(".dist-info")
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
        found["java"] = (java.stderr or java.stdout).splitlines()[0].strip()
    except (OSError, subprocess.TimeoutExpired, IndexError):
        pass
    try:
        found["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True,
                                       timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return found
