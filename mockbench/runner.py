"""`mockbench scenario run`: play one scenario against a running bench, its steps shown live in the terminal.

The runner only talks to the control API, like any vendor's script would: it loads the scenario, polls
`GET /_bench/scenario` (steps and transitions in one answer), and redraws. In a terminal it also reads
commands from the keyboard (fire a manual transition, advance the clock, finish); Ctrl-C or `q` finishes
the run (pending steps become `failed: not observed`) and leaves the evidence report.
"""

from __future__ import annotations

import codecs
import json
import os
import queue
import shutil
import sys
import textwrap
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
    junit_out: Path | None = None
    poll: float = POLL_SECONDS
    state: dict = field(default_factory=dict)
    _seen: dict = field(default_factory=dict)
    _commands: queue.Queue = field(default_factory=queue.Queue)
    _view: TerminalView | None = None

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
        self._started = time.monotonic()
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.interactive:
            self._view = TerminalView(self.out, sys.stdin, self._commands)
            self._view.open()
        try:
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
        finally:
            self._close_view()

    def _close_view(self) -> None:
        """Back to the normal screen, the final state printed once so that it stays in the scrollback."""
        view, self._view = self._view, None
        if view is not None:
            messages = view.close()
            for text, style, _ in self._lines(prompt=False):
                self.out.write((style + text + RESET if style else text) + "\n")
            for text in messages:
                self.out.write(text + "\n")
            self.out.flush()

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
        self._close_view()
        passed = sum(s["status"] == "passed" for s in steps)
        self._say(f"{passed}/{len(steps)} étapes réussies")
        if self.junit_out is not None:
            elapsed = time.monotonic() - getattr(self, "_started", time.monotonic())
            try:
                self.junit_out.write_bytes(junit_xml(self.state, steps, elapsed))
            except OSError as exc:
                self._say(f"résultats JUnit non écrits : {exc.strerror or exc}")
            else:
                self._say(f"résultats JUnit : {self.junit_out}")
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
        if self._view is not None:
            self._view.draw(self._lines())
        else:
            self._log_changes()

    def _style(self, text: str, *codes: str) -> str:
        return "".join(codes) + text + RESET if self.colour else text

    def _step_lines(self, i: int, step: dict, current: bool) -> list[tuple[str, str, str]]:
        status = step["status"]
        head = f"{MARKS[status]} {i}. {step['say']}  [{LABELS[status]}]"
        lines = [(head, COLOURS[status] + (BOLD if current else ""), "  ")]
        reason = step.get("reason_fr") or step.get("reason")
        if reason:
            lines.append(("     " + reason, COLOURS[status], "     "))
        return lines

    def _lines(self, *, prompt: bool = True) -> list[tuple[str, str, str]]:
        """The block shown in a terminal, as (text, style, indent of its wrapped continuation) lines."""
        s = self.state
        lines = [(f"{s.get('id')} — {s.get('title') or ''}", BOLD, "")]
        if s.get("requirement"):
            lines.append((f"exigence : {s['requirement']}", "", ""))
        lines.append(("", "", ""))
        steps = s.get("steps") or []
        current = next((i for i, st in enumerate(steps) if st["status"] == "pending"), None)
        for i, step in enumerate(steps):
            lines.extend(self._step_lines(i + 1, step, i == current))
        manual = [t for t in s.get("transitions") or [] if t["when"].get("manual")]
        others = [t for t in s.get("transitions") or [] if not t["when"].get("manual")]
        if manual or others:
            lines.append(("", "", ""))
            lines.append(("transitions :", "", ""))
        for n, t in enumerate(manual, 1):
            done = "déclenchée" if t.get("fired") else "à déclencher"
            lines.append((f"  [{n}] {t['id']} ({done}) {t.get('say') or ''}".rstrip(), "", "      "))
        for t in others:
            done = f"déclenchée {t.get('fired_at')}" if t.get("fired") else "en attente"
            lines.append((f"   ·  {t['id']} ({done}) {t.get('say') or ''}".rstrip(), "", "      "))
        if prompt:
            lines.append(("", "", ""))
            lines.append((HELP, DIM, "  "))
        return [(text, style if self.colour else "", indent) for text, style, indent in lines]

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
                reason = step.get("reason_fr") or step.get("reason")
                self._say(f"  {MARKS[step['status']]} {i}. {step['say']} [{LABELS[step['status']]}]"
                          + (f" — {reason}" if reason else ""))
        for t in s.get("transitions") or []:
            key = ("transition", t["id"])
            if t.get("fired") and not self._seen.get(key):
                self._seen[key] = True
                self._say(f"  ↯ transition {t['id']} déclenchée {t.get('fired_at') or ''}".rstrip())
        self._seen.setdefault(("started",), True)

    def _say(self, text: str) -> None:
        if self._view is not None:
            self._view.say(text)
            self._view.draw(self._lines())
            return
        self.out.write(text + "\n")
        self.out.flush()


class TerminalView:
    """The runner's screen in a terminal: drawn whole on the alternate screen at the terminal's current size
    (long lines wrapped here, so that the block's height is known), redrawn only when it changes, with the
    latest messages and the line being typed at the bottom. The keyboard is read key by key (no echo by the
    terminal), so typing never moves what is drawn; Ctrl-C still interrupts."""

    MESSAGES = 6

    def __init__(self, out: TextIO, keyboard: TextIO, commands: queue.Queue) -> None:
        self.out, self.keyboard, self.commands = out, keyboard, commands
        self.typed = ""
        self.messages: list[str] = []
        self._all_messages: list[str] = []
        self._block: list[tuple[str, str, str]] = []
        self._frame: list[str] | None = None
        self._lock = threading.RLock()
        self._saved_tty: Any = None
        self._stop = threading.Event()

    def open(self) -> None:
        try:
            import termios
            import tty

            fd = self.keyboard.fileno()
            self._saved_tty = termios.tcgetattr(fd)
            tty.setcbreak(fd)   # keys one by one, no echo; ISIG kept, so Ctrl-C is still SIGINT
        except (ImportError, OSError, ValueError, AttributeError):
            self._saved_tty = None
        self.out.write("\x1b[?1049h")   # the alternate screen: the shell's screen comes back at the end
        self.out.flush()
        threading.Thread(target=self._read_keys, name="runner-keyboard", daemon=True).start()

    def close(self) -> list[str]:
        """Leave the alternate screen and give the keyboard back; returns every message said meanwhile."""
        self._stop.set()
        with self._lock:
            self.out.write("\x1b[?1049l")
            self.out.flush()
            if self._saved_tty is not None:
                import termios

                try:
                    termios.tcsetattr(self.keyboard.fileno(), termios.TCSADRAIN, self._saved_tty)
                except (OSError, ValueError):
                    pass
            return list(self._all_messages)

    def say(self, text: str) -> None:
        with self._lock:
            self._all_messages.append(text)
            self.messages = self._all_messages[-self.MESSAGES:]

    def draw(self, block: list[tuple[str, str, str]] | None = None) -> None:
        with self._lock:
            if block is not None:
                self._block = block
            if self._stop.is_set():
                return
            size = shutil.get_terminal_size((100, 30))
            frame = self._compose(max(size.columns, 20), max(size.lines, 5))
            if frame == self._frame:
                return   # nothing changed: no flicker, and the typed line stays as it is
            self._frame = frame
            # home, each line erased to its end, the rest of the screen erased, the cursor after the prompt
            self.out.write("\x1b[H" + "\r\n".join(line + "\x1b[K" for line in frame) + "\x1b[J")
            self.out.flush()

    def _compose(self, width: int, height: int) -> list[str]:
        usable = width - 1   # never write in the last column: some terminals wrap there
        rows: list[str] = []
        for text, style, indent in self._block + [("", "", "")] + [(m, "", "  ") for m in self.messages]:
            pieces = textwrap.wrap(text, usable, subsequent_indent=indent, drop_whitespace=True,
                                   break_on_hyphens=False) if text else [""]
            rows.extend(style + piece + RESET if style else piece for piece in pieces)
        prompt = "> " + self.typed
        if len(prompt) > usable:
            prompt = "> …" + self.typed[-(usable - 3):]
        if len(rows) > height - 1:
            hidden = len(rows) - (height - 2)
            rows = rows[: height - 2] + [f"… ({hidden} lignes de plus : agrandir la fenêtre)"[:usable]]
        return rows + [prompt]

    def _read_keys(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        try:
            fd = self.keyboard.fileno()
        except (OSError, ValueError, AttributeError):
            return
        while not self._stop.is_set():
            try:
                data = os.read(fd, 64)
            except OSError:
                return
            if not data:
                return
            for char in decoder.decode(data):
                self._key(char)

    def _key(self, char: str) -> None:
        with self._lock:
            if char in "\r\n":
                line, self.typed = self.typed.strip(), ""
                if line:
                    self.commands.put(line)
            elif char in ("\x7f", "\b"):
                self.typed = self.typed[:-1]
            elif char == "\x15":   # Ctrl-U
                self.typed = ""
            elif char.isprintable() and len(self.typed) < MAX_INPUT_LINE:
                self.typed += char
            else:
                return
            self.draw()


def junit_xml(state: dict, steps: list[dict], elapsed: float) -> bytes:
    """The finished run as JUnit XML, one testcase per step (the format CI servers read: Jenkins, GitLab,
    GitHub Actions reporters): a failed step is a <failure> whose message is its reason."""
    from xml.etree import ElementTree as ET

    scenario = state.get("id") or "scenario"
    failures = sum(s["status"] != "passed" for s in steps)
    suites = ET.Element("testsuites", name="mockbench", tests=str(len(steps)), failures=str(failures),
                        errors="0", time=f"{elapsed:.3f}")
    suite = ET.SubElement(suites, "testsuite", name=scenario, tests=str(len(steps)), failures=str(failures),
                          errors="0", skipped="0", time=f"{elapsed:.3f}")
    properties = ET.SubElement(suite, "properties")
    for name in ("title", "requirement"):
        if state.get(name):
            ET.SubElement(properties, "property", name=name, value=str(state[name]))
    for step in steps:
        case = ET.SubElement(suite, "testcase", classname=f"mockbench.{scenario}",
                             name=f"{step['id']} — {step.get('say') or ''}".rstrip(" —"), time="0")
        if step["status"] != "passed":
            # type: the reason's stable code (scenarios/verdicts.py); message: its French text, as people read it
            reason = step.get("reason_fr") or step.get("reason") or "échouée"
            failure = ET.SubElement(case, "failure", message=reason[:1000], type=step.get("reason_code") or "FAILED")
            entries = step.get("entries") or []
            failure.text = "\n".join(filter(None, [
                reason, step.get("reason") if step.get("reason") != reason else None,
                f"journal entries: {', '.join(map(str, entries))}" if entries else None,
                f"nearest entry: {step['nearest_seq']}" if step.get("nearest_seq") else None]))
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n"


def terminal(stream: TextIO) -> bool:
    return stream.isatty() and os.environ.get("TERM") != "dumb"


__all__ = ["Control", "RunError", "Runner", "junit_xml", "terminal"]
