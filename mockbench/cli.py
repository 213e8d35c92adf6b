"""The `mockbench` command."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import re
import signal
import sys
import threading
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from . import __version__

DEFAULT_URL = "http://127.0.0.1:8080"


def _pki_error() -> tuple[type[Exception], ...]:
    """PkiError, when mockbench.pki was imported (only then can it have been raised): importing it for an
    `except` clause alone cost cryptography's import, a tenth of the start-up (issue 21, point 5)."""
    pki = sys.modules.get(f"{__package__}.pki")
    return (pki.PkiError,) if pki is not None else ()


def _up_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="start every door on localhost",
                       description="Start the bench: the HTTP port (control API, and the HTTP doors), the "
                                   "socket doors, and the loaded scenario. Prints one line when ready. Every "
                                   "option can also come from --config (TOML) or MOCKBENCH_<OPTION>.")
    p.add_argument("--config", type=Path, help="a TOML file with any of these settings")
    p.add_argument("--state", type=Path, help="folder holding the world (SQLite); resumed if it holds one. "
                                              "Default: a fresh temporary folder")
    p.add_argument("--reset", action="store_true", default=None, help="empty the world in --state first")
    p.add_argument("--scenario", help="catalogue id or YAML file to load (over an existing world: add --reset)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--tls-dir", type=Path, help="folder made by `mockbench pki init`: turns TLS on")
    for name, default in (("http", 8080), ("https", 8443), ("mllp", 2575), ("smtp", 2525), ("imap", 1143)):
        p.add_argument(f"--{name}-port", type=int, help=f"{name} port (default {default}; 0: any free port)")
    p.add_argument("--public-url", help="base URL that issuers, WSDLs and links advertise")
    p.add_argument("--public-ports", metavar="NAME=PORT,...",
                   help="the ports as clients reach them, when they differ from the bound ones (a container's "
                        "published ports), e.g. http=18080,mllp=12575; health reports them")
    p.add_argument("--public-https-url", help="the same for what is fetched over HTTPS (with --tls-dir); "
                                              "default https://HOST:HTTPS-PORT")
    p.add_argument("--backchannel-url", help="base URL of what servers call directly (OIDC token, userinfo, "
                                             "JWKS, introspection; WSDL addresses) when they reach the bench by "
                                             "another name than browsers, e.g. http://mockbench:8080 from a "
                                             "sibling container; default --public-url")
    p.add_argument("--backchannel-https-url", help="the same over HTTPS; default --public-https-url")
    p.add_argument("--port-file", type=Path, help="write the bound ports here as JSON once ready")
    p.add_argument("--dpi-mllp", help="HOST:PORT of the DPI's MLLP listener, for outbound HL7 (a scenario's "
                   "dpi.mllp or PUT /_bench/pfi/dpi replace it)")
    p.add_argument("--log-level", help="DEBUG, INFO (default), WARNING or ERROR")
    p.add_argument("--quiet", action="store_true", default=None, help="no line per exchange")
    p.add_argument("--control-token", help="token the control API and dashboard require (default: none on "
                                           "loopback, a new one printed at start on any other address)")
    p.add_argument("--allowed-hosts", help="extra Host names the control API and dashboard answer to, "
                                           "comma-separated (besides loopback names, addresses, --host and "
                                           "the public and back-channel URLs' hosts)")


def _token_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--control-token", default=os.environ.get("MOCKBENCH_CONTROL_TOKEN") or None,
                   help="the bench's control token, when it requires one (default $MOCKBENCH_CONTROL_TOKEN)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mockbench",
        description="A test bench for French hospital software: the DMP, a PFI, MSSanté and Pro Santé "
                    "Connect, sharing one scripted world.")
    parser.add_argument("--version", action="version", version=f"mockbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _up_parser(sub)

    sc = sub.add_parser("scenario", help="list, show, validate or run scenarios").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    sc.add_parser("list", help="the scenario catalogue, grouped by requirement family")
    show = sc.add_parser("show", help="what a scenario seeds, scripts and checks")
    show.add_argument("id", help="catalogue id or YAML file")
    validate = sc.add_parser("validate", help="check scenario files; errors name the file, line and field")
    validate.add_argument("files", nargs="+", type=Path)
    run = sc.add_parser("run", help="play a scenario on a running bench, its steps shown live",
                        description="Load a scenario on a running bench and show its steps turning from "
                                    "pending to passed or failed as the software under test acts. In a "
                                    "terminal, type the number of a manual transition to fire it, +30s to "
                                    "advance the clock, q to finish. The run ends when every step is decided, "
                                    "at --timeout, or on Ctrl-C; it then finishes the steps (pending ones "
                                    "fail as not observed) and writes the evidence report. Exit status 0 "
                                    "when every step passed, 1 otherwise.")
    run.add_argument("id", help="catalogue id or YAML file")
    run.add_argument("--url", default=os.environ.get("MOCKBENCH_URL", DEFAULT_URL),
                     help=f"the bench's URL (default $MOCKBENCH_URL or {DEFAULT_URL})")
    run.add_argument("--attach", action="store_true",
                     help="watch the scenario already loaded instead of loading it anew (a reset)")
    run.add_argument("--timeout", type=float, help="finish after this many seconds")
    run.add_argument("--format", choices=("html", "json"), default="html", help="the report's format")
    run.add_argument("--out", type=Path, help="where to write the report (default: a file named after the "
                                              "scenario and the time, in the current folder)")
    run.add_argument("--no-report", action="store_true", help="write no report at the end")
    run.add_argument("--junit", type=Path, metavar="FILE",
                     help="also write the steps as JUnit XML (one testcase per step), for CI servers")
    _token_argument(run)

    for name, text in (("reset", "empty the running bench's world"),
                       ("status", "the running bench's doors, scenario and steps")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--url", default=os.environ.get("MOCKBENCH_URL", DEFAULT_URL),
                       help=f"the bench's URL (default $MOCKBENCH_URL or {DEFAULT_URL})")
        _token_argument(p)

    report = sub.add_parser("report", help="write the evidence report of the running bench (HTML or JSON)",
                            description="Fetch GET /_bench/report from the running bench and write it to a file: "
                                        "one self-contained HTML file (opens with no network) or JSON. Reading "
                                        "the report does not end the run: pending steps are shown as failed, not "
                                        "observed, but stay pending. Prints the path written.")
    report.add_argument("--url", default=os.environ.get("MOCKBENCH_URL", DEFAULT_URL),
                        help=f"the bench's URL (default $MOCKBENCH_URL or {DEFAULT_URL})")
    report.add_argument("--format", choices=("html", "json"), default="html", help="html (default) or json")
    report.add_argument("--out", type=Path,
                        help="file to write (default mockbench-report-<scenario>-<time>.html|json in the current "
                             "folder)")
    _token_argument(report)

    endpoints = sub.add_parser("endpoints", help="what to configure in your DPI for the running bench",
                               description="Every URL (DMP services and WSDLs, OIDC issuers and endpoints, the "
                                           "Annuaire, MLLP, SMTP, IMAP), the credentials, the certificates to use "
                                           "and the loaded world's identities (INS, IDNPS, FINESS, mailboxes), as "
                                           "the running bench publishes them (GET /_bench/endpoints).")
    endpoints.add_argument("--url", default=os.environ.get("MOCKBENCH_URL", DEFAULT_URL),
                           help=f"the bench's URL (default $MOCKBENCH_URL or {DEFAULT_URL})")
    endpoints.add_argument("--format", choices=("text", "json"), default="text",
                           help="text (default, French headings) or json (for scripts)")
    _token_argument(endpoints)

    pki = sub.add_parser("pki", help="test certificates").add_subparsers(dest="action", required=True,
                                                                         metavar="ACTION")
    init = pki.add_parser("init", help="a test CA, a server certificate and AUTH_CLI-style client certificates")
    init.add_argument("dir", type=Path)
    init.add_argument("--host", action="append", dest="hosts",
                      help="a name or address for the server certificate (repeatable; default localhost, "
                           "127.0.0.1, ::1)")
    init.add_argument("--force", action="store_true", help="replace an existing PKI in DIR")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "up":
            return cmd_up(args)
        if args.command == "scenario":
            return {"list": cmd_scenario_list, "show": cmd_scenario_show,
                    "validate": cmd_scenario_validate, "run": cmd_scenario_run}[args.action](args)
        if args.command in ("reset", "status"):
            return cmd_remote(args)
        if args.command == "pki":
            return cmd_pki_init(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "endpoints":
            return cmd_endpoints(args)
    except KeyboardInterrupt:
        return 130
    return 2


# up -----------------------------------------------------------------------------------------------
def cmd_up(args: argparse.Namespace) -> int:
    # Before the heavy imports: a SIGTERM during start-up still ends the process cleanly.
    stop = threading.Event()
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        # The first signal asks for the stop, the next ones are no-ops. Not stop.set() here: a handler runs in
        # the main thread, which may hold the event's lock at that moment (in stop.wait(), or in an earlier
        # handler's set()); a second signal then waited for its own thread's lock, and `mockbench up` never
        # ended (tests/cli/test_up_signals.py). A thread of its own takes the lock.
        if not stopping:
            stopping.append(signum)
            threading.Thread(target=stop.set, name="mockbench-stop", daemon=True).start()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)

    # No cyclic garbage collection until ready: start-up makes some 100,000 lasting objects (modules, classes,
    # Flask's rules, the seeded scenario) and little garbage (about 2,000 objects, 300 KB), yet the collector
    # walked them some 140 times, about a seventh of the CPU to ready (issue 21, point 5). Once ready they are
    # frozen (gc.freeze: the collections while serving no longer walk them, and that garbage stays); a failed
    # start only turns the collector back on.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _up(args, stop, stopping, collecting)
    finally:
        if collecting:
            gc.enable()


def _up(args: argparse.Namespace, stop: threading.Event, stopping: list[int], collecting: bool) -> int:
    from .bench import Bench, BenchError
    from .config import ConfigError, load
    from .scenarios.schema import ScenarioInvalid
    from .world.errors import WorldError

    flags = {k: getattr(args, k) for k in ("state", "reset", "scenario", "host", "tls_dir", "http_port",
                                           "https_port", "mllp_port", "smtp_port", "imap_port", "public_url",
                                           "public_ports", "public_https_url", "backchannel_url",
                                           "backchannel_https_url", "port_file", "dpi_mllp",
                                           "log_level", "quiet", "control_token", "allowed_hosts")}
    try:
        config = load(args.config, flags=flags)
    except ConfigError as exc:
        print(f"mockbench: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command at INFO
    if config.quiet:
        logging.getLogger("mockbench.exchange").setLevel(logging.WARNING)
    bench = None
    try:
        bench = Bench(config)
        bench.start()
    # _pki_error() read here, after the start (see its docstring); mypy does not type a starred call inside an
    # except tuple, though every item is an exception class
    except (BenchError, ConfigError, WorldError, ScenarioInvalid, *_pki_error()) as exc:  # type: ignore[misc]
        if bench is not None:
            bench.close()
        print(f"mockbench: {exc}", file=sys.stderr)
        return 1
    if stop.is_set():
        bench.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)   # as below: closed, more signals must not kill the exit
        return 0
    gc.freeze()
    if collecting:
        gc.enable()
    print(bench.ready_line(), flush=True)
    try:
        stop.wait()
    finally:
        bench.close()
        if stopping:
            # stopped by a signal and closed: more of them must not kill the exit (the interpreter's
            # finalization puts the default handlers back, which end the process with the signal's status)
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)
    return 0


# scenario -----------------------------------------------------------------------------------------
FAMILIES = {"DMP": "DMP : dossier médical partagé", "CDA": "CDA : documents de santé",
            "MSS": "MSS : messagerie sécurisée de santé", "PSC": "PSC : Pro Santé Connect",
            "SSI": "SSI : sécurité et identités", "STAT": "STAT : statistiques"}


def _family(requirement: str) -> str:
    if not requirement:
        return "(aucune exigence)"
    prefix = requirement.split("/")[0].split(".")[0].upper()
    if prefix.startswith("TD") or prefix.startswith("EX_"):
        prefix = "DMP"  # DMP web-service transactions and their rules
    return FAMILIES.get(prefix, prefix)


def cmd_scenario_list(args: argparse.Namespace) -> int:
    from .scenarios.loader import Catalogue

    groups: dict[str, list] = defaultdict(list)
    scenarios = list(Catalogue().all().values())
    for s in scenarios:
        groups[_family(s.requirement)].append(s)
    id_width = max((len(s.id) for s in scenarios), default=0)
    req_width = max((len(s.requirement or "") for s in scenarios), default=0)
    for family in sorted(groups):
        print(family)
        for s in sorted(groups[family], key=lambda s: (s.requirement or "", s.id)):
            print(f"  {s.id:<{id_width}}  {s.requirement or '':<{req_width}}  {s.title}")
    return 0


def cmd_scenario_show(args: argparse.Namespace) -> int:
    from .scenarios.loader import Catalogue, resolve
    from .scenarios.schema import ScenarioInvalid
    from .world.errors import WorldError

    try:
        s = resolve(Catalogue(), args.id)
    except (ScenarioInvalid, WorldError) as exc:
        print(f"mockbench: {exc}", file=sys.stderr)
        return 1
    spec = s.spec
    print(f"{s.id}: {s.title}")
    if s.requirement:
        print(f"exigence: {s.requirement}")
    if spec.get("description"):
        print(spec["description"].strip())
    world = spec.get("world", {})
    print("\nmonde:")
    for st in world.get("structures", []):
        print(f"  structure {st['id']}: {st.get('name') or '(nom généré)'}")
    for p in world.get("professionals", []):
        print(f"  professionnel {p['id']}: {p.get('given_name', '')} {p.get('family_name', '')} "
              f"({p.get('structure') or 'sans structure'})")
    for p in world.get("patients", []):
        auths = ", ".join(f"{a.get('structure') or a.get('professional')} {a['status']}"
                          for a in p.get("authorizations", []))
        print(f"  patient {p['id']}: DMP {p.get('dmp', 'active')}" + (f"; autorisations: {auths}" if auths else ""))
        for d in p.get("documents", []):
            extra = [d.get("status", "approved")] + [c for c in d.get("confidentiality", []) if c != "N"]
            if d.get("replaces"):
                extra.append(f"remplace {d['replaces']}")
            print(f"    document {d['id']} ({d.get('type')}): {', '.join(extra)}")
    if spec.get("transitions"):
        print("\ntransitions:")
        for t in spec["transitions"]:
            when = t["when"]
            trigger = ("manuelle" if when.get("manual") else f"à {when['at']}" if when.get("at")
                       else f"après {when['after'].get('count', 1)} × {when['after'].get('operation') or when['after'].get('channel')}")
            print(f"  {t['id']} ({trigger}): {t.get('say', '')}")
    if spec.get("steps"):
        print("\nétapes:")
        for i, st in enumerate(spec["steps"], 1):
            print(f"  {i}. {st['id']}: {st['say']}")
    return 0


def cmd_scenario_validate(args: argparse.Namespace) -> int:
    from .scenarios.loader import load_file
    from .scenarios.schema import ScenarioInvalid

    failed = 0
    for path in args.files:
        try:
            s = load_file(path)
        except ScenarioInvalid as exc:
            failed += 1
            for problem in exc.problems:
                print(problem, file=sys.stderr)
        else:
            print(f"{path}: ok ({s.id})")
    return 1 if failed else 0


def cmd_scenario_run(args: argparse.Namespace) -> int:
    from .runner import Control, RunError, Runner, terminal

    interactive = terminal(sys.stdout) and sys.stdin.isatty()
    runner = Runner(Control(args.url.rstrip("/"), args.control_token), args.id, interactive=interactive,
                    colour=interactive, report_format=args.format, report_out=args.out, junit_out=args.junit,
                    write_report=None if args.no_report else _report_writer(args.control_token))
    try:
        if args.attach:
            runner.attach()
        else:
            runner.load()
        return runner.run(timeout=args.timeout)
    except RunError as exc:
        print(f"mockbench: {exc}", file=sys.stderr)
        return 1


def _report_writer(token: str | None = None):
    """write_report for the runner: a failure to fetch or write becomes a RunError it can show."""
    import urllib.error  # the client commands' (not `up`'s: issue 21, point 5)

    from .runner import RunError

    def write(url: str, fmt: str, out: Path | None) -> Path:
        try:
            return write_report(url, fmt, out, token=token)
        except urllib.error.HTTPError as exc:
            raise RunError(f"{url} answered {exc.code} to the report") from None
        except (urllib.error.URLError, OSError) as exc:
            raise RunError(f"the report could not be fetched or written ({getattr(exc, 'reason', exc)})") from None

    return write


# remote commands ----------------------------------------------------------------------------------
def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _call(url: str, method: str = "GET", token: str | None = None) -> object:
    import urllib.request  # the client commands' (not `up`'s: issue 21, point 5)

    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None,
                                     headers={"Content-Type": "application/json", **_auth(token)})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def cmd_remote(args: argparse.Namespace) -> int:
    import urllib.error  # the client commands' (not `up`'s: issue 21, point 5)
    import urllib.request

    base = args.url.rstrip("/")
    try:
        if args.command == "reset":
            _call(f"{base}/_bench/reset", "POST", args.control_token)
            print(f"{base}: reset")
            return 0
        health = _call(f"{base}/_bench/health", token=args.control_token)
        steps = _call(f"{base}/_bench/steps", token=args.control_token)
    except urllib.error.HTTPError as exc:
        print(f"mockbench: {base} answered {exc.code}: {exc.read()[:500].decode('utf-8', 'replace')}",
              file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"mockbench: no bench answers at {base} ({reason}); start one with `mockbench up`", file=sys.stderr)
        return 1
    assert isinstance(health, dict) and isinstance(steps, list)
    doors = ", ".join(f"{k} {v}" for k, v in health["doors"].items()) or "none yet"
    print(f"{base}: {health['status']}, version {health['version']}; doors: {doors}")
    print(f"ports: {json.dumps(health['ports'])}; state: {health['state']}")
    print(f"scenario: {health['scenario'] or '(none)'}; journal: {health['journal']['count']} entries"
          f" ({health['journal']['dropped']} dropped)")
    for step in steps:
        mark = {"passed": "✔", "failed": "✘"}.get(step["status"], "…")
        print(f"  {mark} {step['id']}: {step['say']}" + (f" — {step['reason']}" if step.get("reason") else ""))
    return 0


def cmd_endpoints(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    base = args.url.rstrip("/")
    request = urllib.request.Request(f"{base}/_bench/endpoints?format={args.format}", headers=_auth(args.control_token))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        print(f"mockbench: {base} answered {exc.code}: {exc.read()[:500].decode('utf-8', 'replace')}",
              file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"mockbench: no bench answers at {base} ({getattr(exc, 'reason', exc)}); start one with "
              "`mockbench up`", file=sys.stderr)
        return 1
    sys.stdout.write(body if body.endswith("\n") else body + "\n")
    return 0


# report -------------------------------------------------------------------------------------------
REPORT_TIMEOUT = 60  # seconds: the report reads the whole journal and prints up to 60 raw messages


def default_report_name(scenario: str | None, fmt: str, when: datetime | None = None) -> str:
    from .report.build import report_filename

    return report_filename(scenario, fmt, when)


def write_report(url: str, fmt: str = "html", out: Path | None = None, *, token: str | None = None) -> Path:
    """Fetch the running bench's evidence report and write it; the path written. Raises urllib.error.URLError
    (or HTTPError) when the bench does not answer or refuses. Without `out`, the file is
    mockbench-report-<scenario>-<time>.<fmt> in the current folder."""
    import urllib.error  # the client commands' (not `up`'s: issue 21, point 5)
    import urllib.request

    if fmt not in ("html", "json"):
        raise ValueError("fmt must be html or json")
    base = url.rstrip("/")
    request = urllib.request.Request(f"{base}/_bench/report?format={fmt}", headers=_auth(token))
    with urllib.request.urlopen(request, timeout=REPORT_TIMEOUT) as response:
        body = response.read()
    if out is None:
        if fmt == "json":
            scenario = (json.loads(body).get("scenario") or {}).get("id")
        else:
            match = re.search(rb'<meta name="mockbench-scenario" content="([^"]*)"', body)
            scenario = match.group(1).decode("utf-8", "replace") if match else None
        out = Path(default_report_name(scenario, fmt))
    out = Path(out)
    if out.parent != Path(""):
        out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(body)
    return out


def cmd_report(args: argparse.Namespace) -> int:
    import urllib.error  # the client commands' (not `up`'s: issue 21, point 5)
    import urllib.request

    base = args.url.rstrip("/")
    try:
        path = write_report(base, args.format, args.out, token=args.control_token)
    except urllib.error.HTTPError as exc:
        print(f"mockbench: {base} answered {exc.code}: {exc.read()[:500].decode('utf-8', 'replace')}",
              file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"mockbench: no bench answers at {base} ({exc.reason}); start one with `mockbench up`",
              file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"mockbench: the report was not written: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


# pki ----------------------------------------------------------------------------------------------
def cmd_pki_init(args: argparse.Namespace) -> int:
    from .pki import PkiError, PkiExists, init_pki

    kwargs = {"overwrite": args.force}
    if args.hosts:
        kwargs["hosts"] = tuple(args.hosts)
    try:
        files = init_pki(args.dir, **kwargs)
    except PkiExists as exc:
        print(f"mockbench: {exc.directory} already holds a test PKI ({', '.join(exc.present)}); refusing to "
              f"overwrite it: add --force to replace it (the certificates it issued stop being trusted)",
              file=sys.stderr)
        return 1
    except PkiError as exc:
        print(f"mockbench: {exc}", file=sys.stderr)
        return 1
    from .pki import P12_PASSWORD, TEST_IDNST

    print(f"test PKI written to {args.dir}: CA {files.ca_cert.name}, server {files.server_cert.name}, "
          f"clients {', '.join(sorted(files.clients))}, VIHF seal certificate signing/{TEST_IDNST}/ (others "
          f"issued on first use), each also as PKCS#12 (.p12, password {P12_PASSWORD}); use it with "
          f"`mockbench up --tls-dir {args.dir}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
