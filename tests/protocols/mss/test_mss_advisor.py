"""The conformance advisor's MSS/UX.12 rule through the SMTP and IMAP doors: the mss-ux-12 scenario played by
smtplib and imaplib, then GET /_bench/findings."""

from test_mss_scenarios import DPI, ERRORS, play_mss_ux_12  # the same directory, on sys.path under pytest


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
