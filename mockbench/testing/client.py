"""A small client for the control API, with no dependency beyond the standard library."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any


class BenchHTTPError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        self.code = body.get("error") if isinstance(body, dict) else None
        super().__init__(f"{status}: {body}")


class StepsNotPassed(AssertionError):
    """Steps of the loaded scenario that did not pass, each with its reason (and the nearest miss for a step
    that was never observed). `steps` holds their records as the control API gives them."""

    def __init__(self, steps: list[dict], scenario: str | None, total: int) -> None:
        self.steps = steps
        lines = [f"{len(steps)} of {total} steps of {scenario or 'the loaded scenario'} did not pass:"]
        for step in steps:
            code = f" {step['reason_code']}" if step.get("reason_code") else ""
            lines.append(f"  - {step['id']} [{step['status']}{code}] {step.get('say') or ''}".rstrip())
            for reason in dict.fromkeys(filter(None, (step.get("reason_fr"), step.get("reason")))):
                lines.append(f"      {reason}")
        super().__init__("\n".join(lines))


class StepTimeout(AssertionError):
    """A step still pending when the wait ended; the message says what the bench saw instead."""

    def __init__(self, step: dict, timeout: float, reason: str | None) -> None:
        self.step = step
        super().__init__(f"step {step['id']} ({step.get('say') or ''}) still pending after {timeout:g} s"
                         + (f": {reason}" if reason else ""))


class BenchClient:
    def __init__(self, url: str, timeout: float = 10.0, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.token = token   # the bench's control token, when it requires one

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
             content_type: str = "application/json", **query: Any) -> Any:
        params = {k: v for k, v in query.items() if v is not None}
        url = f"{self.url}/_bench{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is None and method in ("POST", "PUT"):
            data = b""
        headers = {"Content-Type": content_type}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
                kind = response.headers.get_content_type()
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            try:
                parsed = json.loads(payload)
            except ValueError:
                parsed = payload.decode("utf-8", "replace")
            raise BenchHTTPError(exc.code, parsed) from None
        return json.loads(payload) if kind == "application/json" else payload

    # The calls a test makes most ------------------------------------------------------------------
    def health(self) -> dict:
        return self.call("GET", "/health")

    def reset(self) -> None:
        self.call("POST", "/reset")

    def load(self, scenario: str) -> dict:
        return self.call("POST", f"/scenarios/{urllib.parse.quote(scenario)}")

    def load_yaml(self, text: str) -> dict:
        return self.call("POST", "/scenarios", raw=text.encode("utf-8"), content_type="application/yaml")

    def patients(self) -> list[dict]:
        """Every patient (one call: for a large world, `page` or `each`)."""
        return self.call("GET", "/patients")

    def page(self, path: str, *, offset: int = 0, limit: int = 100, **params: Any) -> dict:
        """One page of a list route (`/patients`, `/professionals`, `/structures`, `/mss/mailboxes`,
        `/patients/KEY/documents`...): `{"total", "offset", "limit", "items"}`."""
        return self.call("GET", path, offset=str(offset), limit=str(limit), **params)

    def each(self, path: str, *, page_size: int = 1000, **params: Any) -> Iterator[dict]:
        """Every item of a list route, page by page."""
        offset = 0
        while True:
            page = self.page(path, offset=offset, limit=page_size, **params)
            yield from page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return

    def patient(self, key: str) -> dict:
        return self.call("GET", f"/patients/{urllib.parse.quote(key)}")

    def documents(self, patient: str, history: bool = False) -> list[dict]:
        return self.call("GET", f"/patients/{urllib.parse.quote(patient)}/documents",
                         history="1" if history else None)

    def traces(self, patient: str) -> list[dict]:
        return self.call("GET", f"/patients/{urllib.parse.quote(patient)}/traces")

    def journal(self, **filters: Any) -> list[dict]:
        return self.call("GET", "/journal", **filters)

    def steps(self) -> list[dict]:
        return self.call("GET", "/steps")

    def pfi_outbox(self, state: str | None = None) -> list[dict]:
        """The PFI's messages waiting for the DPI (`pending`) or given up (`dead`, with their reason)."""
        return self.call("GET", "/pfi/outbox", state=state)

    def set_dpi(self, mllp: str | None) -> dict:
        """Where the PFI sends ZAMs and the MDMs of mails received: the DPI's MLLP listener `HOST:PORT` (None:
        none); kept across resets until set again. `{"mllp", "source"}`."""
        return self.call("PUT", "/pfi/dpi", {"mllp": mllp})

    def finish(self) -> list[dict]:
        return self.call("POST", "/steps/finish")

    def endpoints(self) -> dict:
        """What a DPI must be configured with for this bench (GET /_bench/endpoints): URLs, credentials,
        certificates, the loaded world's identities."""
        return self.call("GET", "/endpoints")

    def report(self, fmt: str = "json") -> Any:
        """The evidence report: a dict (json), or the HTML document's bytes (html). Read-only."""
        return self.call("GET", "/report", format=fmt)

    def fire(self, transition: str) -> dict:
        return self.call("POST", f"/transitions/{urllib.parse.quote(transition)}")

    def advance(self, duration: str) -> dict:
        return self.call("POST", "/clock", {"advance": duration})

    def actions(self, *actions: dict) -> dict:
        return self.call("POST", "/world/actions", {"actions": list(actions)})

    def set_fault(self, **rule: Any) -> dict:
        """Add (or replace, same id) a fault rule: `set_fault(door="pfi", kind="ack_ar", times=1)` (README,
        "Faults"); `from_` for the `from` field."""
        if "from_" in rule:
            rule["from"] = rule.pop("from_")
        return self.call("POST", "/faults", rule)

    def faults(self) -> list[dict]:
        return self.call("GET", "/faults")

    def fired_faults(self) -> list[dict]:
        return self.call("GET", "/faults/fired")

    def snapshot(self, name: str) -> None:
        self.call("POST", f"/snapshots/{urllib.parse.quote(name)}")

    def restore(self, name: str) -> None:
        self.call("POST", f"/snapshots/{urllib.parse.quote(name)}/restore")

    def findings(self) -> list[dict]:
        """The conformance findings: `{"rule", "severity", "message", "message_fr", "entries"}` each."""
        return self.call("GET", "/findings")

    def assert_steps_passed(self, *, finish: bool = True) -> list[dict]:
        """Fail, with each failed step's reason and nearest miss, unless every step passed. With `finish`
        (the default) the run ends first, as `POST /_bench/steps/finish` does: pending steps fail as not
        observed. Without it nothing changes on the bench: the report's read-only view is used. Returns the
        steps."""
        if finish:
            steps = self.finish()
        else:
            steps = self.report()["steps"]
        scenario = (self.health() or {}).get("scenario")
        bad = [s for s in steps if s["status"] != "passed"]
        if bad:
            raise StepsNotPassed(bad, scenario, len(steps))
        return steps

    def wait_for_step(self, step_id: str, timeout: float = 10.0) -> dict:
        """Wait until a step is decided (passed or failed) and return it. Still pending after `timeout`
        seconds: raise StepTimeout, saying what the bench saw nearest to what the step expects."""
        deadline = time.monotonic() + timeout
        while True:
            step = next((s for s in self.steps() if s["id"] == step_id), None)
            if step is None:
                raise KeyError(f"the loaded scenario has no step {step_id}")
            if step["status"] != "pending":
                return step
            if time.monotonic() > deadline:
                seen: dict = next((s for s in self.report()["steps"] if s["id"] == step_id), {})
                raise StepTimeout(step, timeout, seen.get("reason_fr") or seen.get("reason"))
            time.sleep(0.05)
