"""formats/findings.py: the one shape of a finding, which the formats return and the world journals."""

from __future__ import annotations

import pytest

from mockbench.formats.findings import SEVERITIES, finding
from mockbench.world import journal


def test_the_journal_re_exports_the_formats_finding():
    assert journal.finding is finding and journal.SEVERITIES is SEVERITIES


def test_a_finding_is_plain_data():
    assert finding("XDM/HASH", "no hash", "error", fr="pas de hash") == {
        "rule": "XDM/HASH", "severity": "error", "message": "no hash", "message_fr": "pas de hash"}
    assert finding("XDM/HASH", "no hash") == {"rule": "XDM/HASH", "severity": "warning", "message": "no hash"}
    with pytest.raises(ValueError):
        finding("XDM/HASH", "no hash", "fatal")
