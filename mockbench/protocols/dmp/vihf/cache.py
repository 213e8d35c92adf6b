"""The VIHF tokens one DMP door has read and verified, as a real service keeps its tokens: a DPI sends the
same signed assertion with each request while it is valid, and parsing it, then checking its XML-DSig (a
deep copy, two exclusive c14n, the signature and the chain's signatures) was a quarter of a TD3.1 (issue 21).

Both are functions of the Assertion alone (and, for the signature, of the trust anchors): no clock is read
(validity dates are not checked, see `signature_problem`). So an answer is kept under a SHA-256 of
everything they read: the Assertion as lxml serializes it (elements, attributes, text, comments, namespace
declarations) and the namespaces in scope around it (a QName in a value, or an InclusiveNamespaces prefix,
may name an inherited one); the signature's also under the anchors' PEM. Only successes are kept: a token
refused is read and checked in full each time, so it fails as before with the same reason; an Assertion
altered in any character, or other anchors, make another key. Bounded: the oldest is forgotten past `size`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading

from lxml import etree

from .parse import parse_vihf
from .signature import _signer, _signer_findings, signature_problem, signer_findings
from .token import Vihf, VihfError, _assertion


class TokenCache:
    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._lock = threading.Lock()   # the door serves requests on several threads
        self._parsed: dict[bytes, Vihf] = {}
        self._verified: dict[bytes, tuple[list[str], str] | None] = {}   # key -> the signer (`_signer`)

    @staticmethod
    def key(security: etree._Element | None) -> bytes | None:
        """The SHA-256 of what reading the Assertion depends on; None without an Assertion."""
        try:
            assertion = _assertion(security)
        except VihfError:
            return None
        digest = hashlib.sha256(etree.tostring(assertion, with_tail=False))
        digest.update(b"\x00" + repr(sorted(assertion.nsmap.items(), key=lambda kv: kv[0] or "")).encode())
        return digest.digest()

    def _keep(self, table: dict, key: bytes, value: object) -> None:
        with self._lock:
            table[key] = value
            while len(table) > self.size:
                table.pop(next(iter(table)))

    def vihf(self, security: etree._Element | None, key: bytes | None) -> Vihf:
        """`parse_vihf(security)` (VihfError as it raises); `key` is `self.key(security)`."""
        kept = self._parsed.get(key) if key is not None else None
        if kept is None:
            kept = parse_vihf(security)
            if key is not None:
                self._keep(self._parsed, key, kept)
        # Each request gets its own findings: a door may add to one (the entry's findings are its own).
        return dataclasses.replace(kept, findings=tuple(dict(f) for f in kept.findings))

    def problem(self, security: etree._Element | None, ca_pem: bytes, key: bytes | None) -> tuple[str, bytes | None]:
        """`signature_problem(security, ca_pem)`, and the key under which its success is kept (None for a
        failure), for `signer_findings`."""
        if key is not None:
            key = hashlib.sha256(key + hashlib.sha256(bytes(ca_pem or b"")).digest()).digest()
            if key in self._verified:
                return "", key
        problem = signature_problem(security, ca_pem)
        if problem or key is None:
            return problem, None
        self._keep(self._verified, key, _signer(security))
        return "", key

    def signer_findings(self, security: etree._Element | None, vihf: Vihf, key: bytes | None) -> list[dict]:
        """`signer_findings(security, vihf)`, from the signer kept under `key` (as `problem` returned it)."""
        if key is None or key not in self._verified:
            return signer_findings(security, vihf)
        return _signer_findings(self._verified[key], vihf)
