"""The conformance advisor's MSS/UX.12 rule through the SMTP and IMAP doors: the mss-ux-12 scenario played by
smtplib and imaplib, then GET /_bench/findings."""

from test_mss_corpus import broken_package  # the same directory, on sys.path under pytest
from test_mss_scenarios import DPI, ERRORS, dpi_fetch_new, dpi_imap, dpi_smtp, play_mss_ux_12, send

from mockbench.formats.mime import header_summary
from mockbench.formats.xdm import ans_subject


def ux_12(bench) -> list[dict]:
    return [f for f in bench.client.call("GET", "/findings") if f["rule"] == "MSS/UX.12"]


def test_error_mdn_without_the_copy(mockbench):
    play_mss_ux_12(mockbench, copy_to_errors=False)
    (submit,) = mockbench.client.journal(channel="mss", operation="SUBMIT")
    (found,) = ux_12(mockbench)
    assert found["entries"] == [submit["seq"]] and found["severity"] == "error"
    assert found["message"].startswith(f"{DPI} sent an error MDN answering <")
    assert f"with no copy delivered to the error mailbox ({ERRORS})" in found["message"]


def test_error_mdn_with_the_copy(mockbench):
    play_mss_ux_12(mockbench, copy_to_errors=True)
    assert len(mockbench.client.journal(channel="mss", operation="SUBMIT")) == 2
    assert ux_12(mockbench) == []


def fetch_broken_package(bench) -> bytes:
    """The workshop host sends the broken package (no MDN asked); the DPI fetches it over IMAP."""
    bench.client.load("mss-ux-12")
    send(bench, broken_package(), ans_subject("Lettre", "PAT-TROIS", "DOMINIQUE", "19790328"))
    conn = dpi_imap(bench)
    (raw,) = dpi_fetch_new(conn)
    conn.logout()
    return raw


def test_integration_error_reported_nowhere(mockbench):
    raw = fetch_broken_package(mockbench)
    (fetch,) = mockbench.client.journal(channel="mss", operation="IMAP_FETCH")
    (found,) = ux_12(mockbench)
    message_id = header_summary(raw)["Message-ID"]
    assert found["entries"] == [fetch["seq"]] and found["severity"] == "error"
    assert found["message"].startswith(f"{DPI} fetched {message_id}, whose package cannot be integrated (")
    assert found["message"].endswith("and neither answered an error MDN nor wrote to an error mailbox")


def test_integration_error_mailed_to_the_error_mailbox(mockbench):
    raw = fetch_broken_package(mockbench)
    mail = (f"From: {DPI}\r\nTo: {ERRORS}\r\nSubject: [KO Intégration système !] {header_summary(raw)['Subject']}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nLe paquet IHE_XDM.ZIP est illisible.\r\n").encode()
    client = dpi_smtp(mockbench)
    client.sendmail(DPI, [ERRORS], mail)
    client.quit()
    assert ux_12(mockbench) == []
