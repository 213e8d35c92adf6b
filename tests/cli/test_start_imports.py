"""What `mockbench up` leaves for later (issue 21, point 5): the modules no door needs before its first request
are not imported at ready, and the door that needs them still answers its first request. A real `up` in a
child process (the CLI's own path: its garbage collector settings too), watched from a thread of that process."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import gc, json, os, signal, smtplib, sys, threading, time
from pathlib import Path

from mockbench.cli import main

port_file, out = Path(sys.argv[1]), Path(sys.argv[2])
WATCH = ("aiosmtpd", "attr", "cryptography", "faker.providers.person.fr_FR", "faker.providers.company.fr_FR",
         "tomllib", "urllib.request", "xml.sax")


def watch():
    deadline = time.monotonic() + 60
    while not (port_file.exists() and gc.isenabled()) and time.monotonic() < deadline:
        time.sleep(0.01)
    seen = {"ready": [m for m in WATCH if m in sys.modules], "frozen": gc.get_freeze_count()}
    smtp = smtplib.SMTP("127.0.0.1", json.loads(port_file.read_text())["smtp"], timeout=10)
    seen["ehlo"] = smtp.ehlo()[0]
    smtp.quit()
    seen["after_smtp"] = [m for m in WATCH if m in sys.modules]
    out.write_text(json.dumps(seen))
    os.kill(os.getpid(), signal.SIGINT)


threading.Thread(target=watch, daemon=True).start()
sys.exit(main(["up", "--host", "127.0.0.1", "--http-port", "0", "--mllp-port", "0", "--smtp-port", "0",
               "--imap-port", "0", "--state", sys.argv[3], "--port-file", str(port_file), "--quiet",
               "--scenario", "hidden-documents"]))
"""


def test_up_is_ready_before_what_its_doors_need_later(tmp_path: Path) -> None:
    out = tmp_path / "seen.json"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "ports.json"), str(out),
                           str(tmp_path / "state")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(out.read_text())
    # at ready: the seeded names' Faker provider, not the others; no SMTP engine, no cryptography (no TLS), no
    # TOML (no config file), no xml.sax (formats/xml.py escapes) nor the urllib.request it brought
    assert seen["ready"] == ["faker.providers.person.fr_FR"]
    # start-up's objects frozen out of the collector's walks, the collector back on (the thread waited for it)
    assert seen["frozen"] > 10_000
    # the first SMTP connection imports its engine and is answered
    assert seen["ehlo"] == 250
    assert seen["after_smtp"] == ["aiosmtpd", "attr", "faker.providers.person.fr_FR"]
