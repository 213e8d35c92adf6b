"""The tests' shared kit (issue 20, point 5): what several test folders use, in one place. The builders that
vendors use too are in the package (`mockbench.testing.messages`); this kit holds the test-only helpers.

- `kit.wait`: polling until a condition holds (never a bare sleep before asserting that nothing happened:
  wait on an end marker instead, something that happens after what must not);
- `kit.pfi`: the PFI tests' MDM builders, the MLLP senders (python-hl7's client) and the strict ACK reader;
- `kit.strict_hl7`: hl7apy in strict mode over the ACKs and ZAMs the bench sends;
- `kit.dpi_listener`: a scripted DPI listening on MLLP (python-hl7's asyncio server);
- `kit.dmp`: the DMP door's request builders and the DMP tests' world.

tests/ is on sys.path (pytest puts tests/conftest.py's folder there), so any test imports `kit.*` without a
sys.path edit."""
