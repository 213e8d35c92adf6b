"""The reliability suite (issue 17): its helpers are in reliability_helpers.py; the PFI's MDM builder is the
shared kit's (tests/kit/pfi.py)."""
