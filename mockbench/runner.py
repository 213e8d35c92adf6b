"""`mockbench scenario run`: play one scenario against a running bench, its steps shown live in the terminal.

The runner only talks to the control API, like any vendor's script would: it loads the scenario, polls
`GET /_bench/scenario` (steps and transitions in one answer), and redraws. In a terminal it also reads
commands from the keyboard (fire a manual transition, advance the clock, finish); Ctrl-C or `q` finishes
the run (pending steps become `failed: not observed`) and leaves the evidence report.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

POLL_SECONDS = 0.5
HTTP_TIMEOUT = 10
MAX_INPUT_LINE = 200

MARKS = {"passed": "✔", "failed": "✘", "pending": "…"}
LABELS = {"passed": "réussie", "failed": "échouée", "pending": "en attente"}
COLOURS = {"passed": "\x1b[32m", "failed": "\x1b[31m", "pending": "\x1b[33m"}
RESET = "\x1b[0m"
BOLD = "\x1b[1m"
DIM = "\x1b[2m"

HELP = ("commandes : <n> ou t <id> déclenche une transition manuelle · +30s avance l'horloge · "
        "r écrit le rapport · f termine · q quitte (comme Ctrl-C)")


class RunError(Exception):
    """The bench could not be reached, or refused a call: the message says which and why."""


@dataclass
class Control:
    """The few control API calls the runner needs, over urllib (no dependency beyond the standard library)."""

    base: str
    token: str | None = None   # the bench's control token, when it requires one

    def call(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
             raw: bool = False) -> Any:
        data = None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        elif method == "POST":
            data = b""
            headers["Content-Type"] = "application/json"  # urllib's default is a form's, which is refused
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            text = exc.read()[:2000].decode("utf-8", "replace")
            try:
                text = json.loads(text).get("message", text)
            except (ValueError, AttributeError):
                pass
            raise RunError(f"{method} {path}: {exc.code} {text}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RunError(f"no bench answers at {self.base} ({reason}); start one with `mockbench up`") from None
        return payload if raw else json.loads(payload)


@dataclass
class Runner:
    control: Control
    scenario: str
    out: TextIO = sys.stdout
    interactive: bool = False
    colour: bool = False
    report_format: str = "html"
    report_out: Path | None = None
    write_report: Callable[[str, str, Path | None], Path] | None = None
    poll: float = POLL_SECONDS
    state: dict = field(default_factory=dict)
    _seen: dict = field(default_factory=dict)
    _commands: queue.Queue = field(default_factory=queue.Queue)
    _lines_drawn: int = 0

    # Loading ------------------------------------------------------------------------------------
    def load(self) -> dict:
        path = Path(self.scenario)
        if path.suffix in (".yaml", ".yml") and path.is_file():
            return self.control.call("POST", "/_bench/scenarios", path.read_bytes(), content_type="application/yaml")
        return self.control.call("POST", f"/_bench/scenarios/{urllib.parse.quote(self.scenario, safe='')}")

    def attach(self) -> None:
        loaded = self.control.call("GET", "/_bench/scenario")
        if not loaded.get("id"):
            raise RunError("no scenario is loaded on the bench; run without --attach to load one")
        if loaded["id"] != self.scenario and Path(self.scenario).stem != loaded["id"]:
            raise RunError(f"the bench plays {loaded['id']}, not {self.scenario}; run without --attach to load it")

    # The loop -----------------------------------------------------------------------------------
    def run(self, *, timeout: float | None = None) -> int:
        """Watch until every step is decided, the timeout passes, or the user quits; 0 when all passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.interactive:
            threading.Thread(target=self._read_keyboard, daemon=True).start()
        try:
            while True:
                self.refresh()
                if self._decided():
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    self._say(f"délai dépassé ({timeout:g} s) : fin du déroulé")
                    break
                if self._handle_commands():
                    break
                time.sleep(self.poll)
        except KeyboardInterrupt:
            self._say("interrompu : fin du déroulé")
        return self.finish()

    def refresh(self) -> None:
        state = self.control.call("GET", "/_bench/scenario")
        if not state.get("id"):
            raise RunError("the bench has no scenario loaded any more (reset or another load?)")
        self.state = state
        self.render()

    def finish(self) -> int:
        steps = self.control.call("POST", "/_bench/steps/finish")
        self.state["steps"] = steps
        self.render()
        passed = sum(s["status"] == "passed" for s in steps)
        self._say(f"{passed}/{len(steps)} étapes réussies")
        if self.write_report is not None:
            try:
                written = self.write_report(self.control.base, self.report_format, self.report_out)
            except RunError as exc:
                self._say(f"rapport non écrit : {exc}")
            else:
                self._say(f"rapport : {written}")
        return 0 if steps and passed == len(steps) else 1

    def _decided(self) -> bool:
        steps = self.state.get("steps") or []
        return bool(steps) and all(s["status"] != "pending" for s in steps)

    # Keyboard -----------------------------------------------------------------------------------
    def _read_keyboard(self) -> None:
        for line in sys.stdin:
            self._commands.put(line[:MAX_INPUT_LINE].strip())

    def command(self, text: str) -> bool:
        """Run one typed command; True when the run should end."""
        text = text.strip()
        if not text:
            return False
        if text in ("q", "f", "quit", "finish"):
            return True
        try:
            if text == "r":
                if self.write_report is not None:
                    self._say(f"rapport : {self.write_report(self.control.base, self.report_format, self.report_out)}")
            elif text[0] in "+" and len(text) > 1:
                clock = self.control.call("POST", "/_bench/clock", {"advance": text[1:]})
                self._say(f"horloge avancée de {text[1:]} : {clock.get('now')}")
            elif text.isdigit() or text.startswith("t "):
                manual = [t for t in self.state.get("transitions") or [] if t["when"].get("manual")]
                if text.isdigit():
                    n = int(text)
                    if not 1 <= n <= len(manual):
                        self._say(f"pas de transition manuelle n° {n} ({len(manual)} au total)")
                        return False
                    tid = manual[n - 1]["id"]
                else:
                    tid = text[2:].strip()
                fired = self.control.call("POST", f"/_bench/transitions/{urllib.parse.quote(tid, safe='')}")
                problem = (fired.get("error") or {}).get("message")
                self._say(f"transition {tid} déclenchée" + (f" : échec, {problem}" if problem else ""))
            else:
                self._say(f"commande inconnue « {text} » ; {HELP}")
        except RunError as exc:
            self._say(f"refusé : {exc}")
        return False

    def _handle_commands(self) -> bool:
        while True:
            try:
                text = self._commands.get_nowait()
            except queue.Empty:
                return False
            if self.command(text):
                return True

    # Drawing ------------------------------------------------------------------------------------
    def render(self) -> None:
        if self.interactive:
            self._redraw()
        else:
            self._log_changes()

    def _style(self, text: str, *codes: str) -> str:
        return "".join(codes) + text + RESET if self.colour else text

    def _step_line(self, i: int, step: dict, current: bool) -> str:
        status = step["status"]
        head = f"{MARKS[status]} {i}. {step['say']}"
        line = self._style(head, COLOURS[status], BOLD if current else "")
        line += self._style(f"  [{LABELS[status]}]", DIM)
        if step.get("reason"):
            line += "\n     " + self._style(step["reason"], COLOURS[status])
        return line

    def _lines(self) -> list[str]:
        s = self.state
        lines = [self._style(f"{s.get('id')} — {s.get('title') or ''}", BOLD)]
        if s.get("requirement"):
            lines.append(f"exigence : {s['requirement']}")
        lines.append("")
        steps = s.get("steps") or []
        current = next((i for i, st in enumerate(steps) if st["status"] == "pending"), None)
        for i, step in enumerate(steps):
            lines.extend(self._step_line(i + 1, step, i == current).split("\n"))
        manual = [t for t in s.get("transitions") or [] if t["when"].get("manual")]
        others = [t for t in s.get("transitions") or [] if not t["when"].get("manual")]
        if manual or others:
            lines.append("")
            lines.append("transitions :")
        for n, t in enumerate(manual, 1):
            done = "déclenchée" if t.get("fired") else "à déclencher"
            lines.append(f"  [{n}] {t['id']} ({done}) {t.get('say') or ''}".rstrip())
        for t in others:
            done = f"déclenchée {t.get('fired_at')}" if t.get("fired") else "en attente"
            lines.append(f"   ·  {t['id']} ({done}) {t.get('say') or ''}".rstrip())
        lines.append("")
        lines.append(self._style(HELP, DIM))
        return lines

    def _redraw(self) -> None:
        lines = self._lines()
        if self._lines_drawn:
            self.out.write(f"\x1b[{self._lines_drawn}F\x1b[J")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self._lines_drawn = len(lines)

    def _log_changes(self) -> None:
        s = self.state
        if not self._seen:
            self._say(f"{s.get('id')} — {s.get('title') or ''}" + (f" ({s['requirement']})" if s.get("requirement") else ""))
            for i, step in enumerate(s.get("steps") or [], 1):
                self._say(f"  {MARKS['pending']} {i}. {step['say']}")
        for i, step in enumerate(s.get("steps") or [], 1):
            key = ("step", step["id"])
            if step["status"] != "pending" and self._seen.get(key) != step["status"]:
                self._seen[key] = step["status"]
                self._say(f"  {MARKS[step['status']]} {i}. {step['say']} [{LABELS[step['status']]}]"
                          + (f" — {step['reason']}" if step.get("reason") else ""))
        for t in s.get("transitions") or []:
            key = ("transition", t["id"])
            if t.get("fired") and not self._seen.get(key):
                self._seen[key] = True
                self._say(f"  ↯ transition {t['id']} déclenchée {t.get('fired_at') or ''}".rstrip())
        self._seen.setdefault(("started",), True)

    def _say(self, text: str) -> None:
        if self.interactive and self._lines_drawn:
            # a message goes above the redrawn block, which is then drawn anew below it
            self.out.write(f"\x1b[{self._lines_drawn}F\x1b[J")
            self._lines_drawn = 0
            self.out.write(text + "\n")
            self._redraw()
            return
        self.out.write(text + "\n")
        self.out.flush()


def terminal(stream: TextIO) -> bool:
    return stream.isatty() and os.environ.get("TERM") != "dumb"


__all__ = ["Control", "RunError", "Runner", "terminal"]
