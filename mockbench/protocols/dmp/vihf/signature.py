"""Checking the VIHF's enveloped XML signature (XML-DSig, exclusive c14n) against explicit trust anchors, and
who signed it. cryptography is imported when a signature is checked: a tenth of the start-up otherwise."""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import hashlib
from typing import TYPE_CHECKING

from lxml import etree

from mockbench.formats.findings import finding

from .token import NS_DS, NS_EXC_C14N, Vihf, VihfError, _assertion

if TYPE_CHECKING:
    from cryptography import x509

_C14N_EXC = NS_EXC_C14N
_C14N_EXC_COMMENTS = NS_EXC_C14N + "WithComments"
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_DIGESTS = {
    "http://www.w3.org/2000/09/xmldsig#sha1": hashlib.sha1,
    "http://www.w3.org/2001/04/xmlenc#sha256": hashlib.sha256,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": hashlib.sha384,
    "http://www.w3.org/2001/04/xmlenc#sha512": hashlib.sha512,
}
_SIGNATURES = {
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1": ("rsa", "SHA1"),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": ("rsa", "SHA256"),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": ("rsa", "SHA384"),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": ("rsa", "SHA512"),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": ("ec", "SHA256"),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": ("ec", "SHA384"),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": ("ec", "SHA512"),
}
_MAX_CHAIN = 8


def _c14n(node: etree._Element, algorithm: str | None, prefixes: list[str]) -> bytes:
    if algorithm not in (_C14N_EXC, _C14N_EXC_COMMENTS):
        raise ValueError(f"canonicalization {algorithm} is not exclusive c14n ({_C14N_EXC})")
    return etree.tostring(node, method="c14n", exclusive=True, with_comments=algorithm == _C14N_EXC_COMMENTS,
                          inclusive_ns_prefixes=prefixes or None)


def _prefix_list(method: etree._Element) -> list[str]:
    inclusive = method.find(f"{{{NS_EXC_C14N}}}InclusiveNamespaces")
    return (inclusive.get("PrefixList") or "").split() if inclusive is not None else []


def _b64(text: str | None) -> bytes:
    return base64.b64decode("".join((text or "").split()), validate=True)


def _verify(key, kind: str, algorithm: str, signature: bytes, data: bytes) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    hash_type = getattr(hashes, algorithm)
    if kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), hash_type())
    elif kind == "ec" and isinstance(key, ec.EllipticCurvePublicKey):
        size = (key.curve.key_size + 7) // 8
        if len(signature) != 2 * size:
            raise InvalidSignature("an XML-DSig ECDSA value is r||s of the curve's size")
        r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hash_type()))
    else:
        raise InvalidSignature(f"the certificate's key does not fit a {kind} signature")


@functools.lru_cache(maxsize=8)
def _anchors(ca_pem: bytes) -> tuple[x509.Certificate, ...]:
    """The trust anchors of a PEM bundle, parsed once per bundle (the door passes the same bytes each time)."""
    from cryptography import x509

    return tuple(x509.load_pem_x509_certificates(ca_pem))


def _chain_problem(leaf: x509.Certificate, extra: list[x509.Certificate], ca_pem: bytes) -> str:
    from cryptography.exceptions import InvalidSignature

    try:
        anchors = _anchors(bytes(ca_pem))
    except ValueError as exc:
        return f"the CA certificates cannot be read: {exc}"
    current = leaf
    for _ in range(_MAX_CHAIN):
        if current in anchors:
            return ""
        for anchor in anchors:
            try:
                current.verify_directly_issued_by(anchor)
                return ""
            except (ValueError, TypeError, InvalidSignature):
                continue
        for candidate in extra:
            if candidate == current:
                continue
            try:
                current.verify_directly_issued_by(candidate)
            except (ValueError, TypeError, InvalidSignature):
                continue
            current = candidate
            break
        else:
            return f"the signing certificate ({leaf.subject.rfc4514_string()}) does not chain to the trusted CA"
    return "the certificate chain is too long"


def signature_problem(assertion_or_security: etree._Element | None, ca_pem: bytes) -> str:
    """Why the VIHF's enveloped XML signature does not verify, or "" when it does.

    Checked: one ds:Signature child of the Assertion, one Reference whose URI is "#" + the Assertion's ID,
    the transforms enveloped-signature and exclusive c14n (InclusiveNamespaces honoured), the digest
    (SHA-1/256/384/512), the SignatureValue over the exclusive-c14n SignedInfo (RSA PKCS#1 v1.5 or ECDSA)
    with the first X509Certificate of the KeyInfo, and that this certificate is, or chains through the other
    KeyInfo certificates to, one of the CA certificates in `ca_pem` (the trust anchors, PEM, always explicit:
    with none, nothing is trusted; issue 17 point 7). Certificate validity dates and revocation are not
    checked: the bench's clock is virtual and its PKI a test one."""
    try:
        assertion = _assertion(assertion_or_security)
    except VihfError as exc:
        return exc.reason
    signatures = assertion.findall(f"{{{NS_DS}}}Signature")
    if not signatures:
        return "the VIHF is not signed"
    if len(signatures) > 1:
        return "the VIHF holds several signatures"
    sig = signatures[0]
    signed_info = sig.find(f"{{{NS_DS}}}SignedInfo")
    if signed_info is None:
        return "the signature has no SignedInfo"
    references = signed_info.findall(f"{{{NS_DS}}}Reference")
    assertion_id = assertion.get("ID") or ""
    if len(references) != 1:
        return f"the signature has {len(references)} references, one (to the Assertion) is expected"
    reference = references[0]
    if not assertion_id or reference.get("URI") != "#" + assertion_id:
        return f"the signature's reference {reference.get('URI')!r} is not the Assertion (#{assertion_id})"
    transforms = reference.findall(f"{{{NS_DS}}}Transforms/{{{NS_DS}}}Transform")
    algorithms = [t.get("Algorithm") for t in transforms]
    if _ENVELOPED not in algorithms:
        return "the reference lacks the enveloped-signature transform"
    c14n_transforms = [t for t in transforms if t.get("Algorithm") != _ENVELOPED]
    if len(c14n_transforms) > 1:
        return f"unexpected transforms: {', '.join(a or '?' for a in algorithms)}"
    c14n_algorithm = c14n_transforms[0].get("Algorithm") if c14n_transforms else _C14N_EXC
    prefixes = _prefix_list(c14n_transforms[0]) if c14n_transforms else []
    digest_method = reference.find(f"{{{NS_DS}}}DigestMethod")
    digest = _DIGESTS.get(digest_method.get("Algorithm") if digest_method is not None else "")
    if digest is None:
        return "the reference's digest method is missing or not supported"
    method = signed_info.find(f"{{{NS_DS}}}SignatureMethod")
    kind_alg = _SIGNATURES.get(method.get("Algorithm") if method is not None else "")
    if kind_alg is None:
        return "the signature method is missing or not supported"
    canon = signed_info.find(f"{{{NS_DS}}}CanonicalizationMethod")
    if canon is None:
        return "the SignedInfo has no CanonicalizationMethod"

    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    try:
        # Enveloped transform: the Assertion without its Signature, canonicalized on its own.
        body = copy.deepcopy(assertion)
        body.remove(body.find(f"{{{NS_DS}}}Signature"))
        expected_digest = _b64(reference.findtext(f"{{{NS_DS}}}DigestValue"))
        if digest(_c14n(body, c14n_algorithm, prefixes)).digest() != expected_digest:
            return "the Assertion's digest does not match the signature's reference (the token was altered)"
        signed_bytes = _c14n(signed_info, canon.get("Algorithm"), _prefix_list(canon))
        value = _b64(sig.findtext(f"{{{NS_DS}}}SignatureValue"))
        certificates = [x509.load_der_x509_certificate(_b64(el.text))
                        for el in sig.iterfind(f"{{{NS_DS}}}KeyInfo/{{{NS_DS}}}X509Data/{{{NS_DS}}}X509Certificate")]
    except (ValueError, binascii.Error) as exc:
        return f"the signature cannot be read: {exc}"
    if not certificates:
        return "the signature's KeyInfo carries no X509Certificate"
    try:
        _verify(certificates[0].public_key(), kind_alg[0], kind_alg[1], value, signed_bytes)
    except InvalidSignature:
        return "the SignatureValue does not verify with the signing certificate"
    if not ca_pem or not ca_pem.strip():
        return "no trust anchor is configured: no VIHF signature can be trusted"
    return _chain_problem(certificates[0], certificates[1:], ca_pem)


def check_signature(assertion_or_security: etree._Element | None, ca_pem: bytes) -> bool:
    """Whether the VIHF's enveloped XML signature verifies (see `signature_problem` for what is checked and
    for the reason when it does not). The door answers DMPInvalidCertificate when this is False."""
    return not signature_problem(assertion_or_security, ca_pem)


def signer_findings(assertion_or_security: etree._Element | None, vihf: Vihf) -> list[dict]:
    """Findings on who signed a VIHF whose signature verified: the VIHF table has it signed with "le certificat
    de cachet de la structure de soins" and its Issuer be "DN du certificat de cachet"
    [trans-cda-r2/mapping.md, rows //Assertion/ds:Signature and //Assertion/Issuer]. A seal certificate whose
    OU (the IDNST, as in the ANS example VIHF_INDIRECTE_signed.xml and in IGC Santé ORG certificates) is not
    the Identifiant_Structure is a warning; an Issuer that is not the certificate's DN an info."""
    from cryptography import x509

    try:
        assertion = _assertion(assertion_or_security)
        element = assertion.find(f"{{{NS_DS}}}Signature/{{{NS_DS}}}KeyInfo/{{{NS_DS}}}X509Data/"
                                 f"{{{NS_DS}}}X509Certificate")
        cert = x509.load_der_x509_certificate(_b64(element.text)) if element is not None else None
    except (VihfError, ValueError, binascii.Error):
        return []
    if cert is None:
        return []
    out: list[dict] = []
    units = [str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)]
    if units and vihf.structure_id and vihf.structure_id not in units:
        out.append(finding("VIHF/Signature", f"signed by the seal certificate of OU={', '.join(units)}, not of the "
                           f"VIHF's Identifiant_Structure {vihf.structure_id} (mapping.md: the structure's seal "
                           "certificate signs)",
                           fr=f"signé par le certificat cachet de OU={', '.join(units)}, et non de l'Identifiant_Structure {vihf.structure_id} du VIHF (mapping.md : c'est le certificat cachet de la structure qui signe)"))

    def norm(dn: str) -> str:
        return ",".join(part.strip().lower() for part in dn.split(","))

    if norm(vihf.issuer) != norm(cert.subject.rfc4514_string()):
        out.append(finding("VIHF/Issuer", f"Issuer {vihf.issuer!r} is not the seal certificate's DN "
                           f"{cert.subject.rfc4514_string()!r} (mapping.md, row //Assertion/Issuer)", "info",
                           fr=f"l'Issuer {vihf.issuer!r} n'est pas le DN du certificat cachet {cert.subject.rfc4514_string()!r} (mapping.md, ligne //Assertion/Issuer)"))
    return out
