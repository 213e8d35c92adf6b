"""The reliability suite (issue 17): its helpers are in reliability_helpers.py; the PFI tests' MDM builder
(tests/protocols/pfi/pfi_messages.py) is imported by folder, as the dashboard's tests do."""

import sys
from pathlib import Path

PFI_TESTS = str(Path(__file__).parents[1] / "protocols" / "pfi")
if PFI_TESTS not in sys.path:
    sys.path.insert(0, PFI_TESTS)
