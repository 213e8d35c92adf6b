"""Sign a VIHF the way the DMP door checks it: the documented way for a vendor's tests (and ours) to send
a VIHF that the bench trusts.

    from mockbench.testing import sign_vihf
    security = sign_vihf(security, mockbench.bench)          # a wsse:Security or a saml2:Assertion
    security = sign_vihf(xml_bytes, Path("pki"), structure="1010000024")

The DMP requires the VIHF's enveloped XML-DSig by the structure's seal certificate
[specs/trans-cda-r2/mapping.md, "Mapping VIHF pour le DMP", //Assertion/ds:Signature and //Assertion/Issuer].
The signature made here: one ds:Signature placed after saml2:Issuer (SAML 2.0 Core 2.3.3 order), exclusive
c14n for SignedInfo and as the Reference's second transform after enveloped-signature, SHA-256 digest, ECDSA
or RSA PKCS#1 v1.5 with SHA-256 (the key's kind), the certificate in KeyInfo/X509Data; the Issuer is set
to the certificate's subject DN, as the table asks. Any XML-DSig library (xmlsec, Apache Santuario, .NET
SignedXml) makes the same shape from the same PEM files (``signing/<IDNST>/org-sign.crt`` and ``.key``).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from lxml import etree

from ..pki import SigningIdentity, signing_identity

__all__ = ["sign_vihf"]

NS_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
_STRUCTURE = "Identifiant_Structure"


def sign_vihf(vihf: etree._Element | bytes | str, signer: Any, *, structure: str | None = None,
              set_issuer: bool = True) -> Any:
    """Sign the VIHF's SAML Assertion (enveloped XML-DSig) and return the VIHF in the form it was given:
    an element is signed in place and returned, bytes or str come back serialized.

    `signer` is a `mockbench.pki.SigningIdentity`, a `(cert_pem, key_pem)` pair, the folder of a PKI made by
    `mockbench pki init` (a Path), a running bench (`Bench`, or the pytest plugin's `RunningBench`), whose
    own PKI signs, or a bench reached over the network (a `BenchClient`, or the plugin's `RemoteBench`): its
    seal certificate is fetched from `GET /_bench/pki/signing/{idnst}`. With a folder or a bench the seal certificate is the one of the structure `structure`
    (an IDNST), by default the VIHF's Identifiant_Structure, issued on first use. A signature already in
    the Assertion is replaced."""
    if isinstance(vihf, str | bytes):
        root = etree.fromstring(vihf.encode() if isinstance(vihf, str) else vihf,
                                etree.XMLParser(resolve_entities=False, no_network=True))
        sign_vihf(root, signer, structure=structure, set_issuer=set_issuer)
        out = etree.tostring(root, encoding="UTF-8")
        return out.decode() if isinstance(vihf, str) else out
    assertion = _assertion(vihf)
    cert_pem, key_pem = _material(signer, structure or _structure_of(assertion))
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    for old in assertion.findall(f"{{{NS_DS}}}Signature"):
        assertion.remove(old)
    if not assertion.get("ID"):
        assertion.set("ID", f"_{uuid.uuid4()}")
    issuer = assertion.find(f"{{{NS_SAML}}}Issuer")
    if set_issuer and issuer is not None:
        issuer.text = cert.subject.rfc4514_string()
    digest = hashlib.sha256(etree.tostring(assertion, method="c14n", exclusive=True)).digest()

    ds = f"{{{NS_DS}}}"
    signature = etree.Element(ds + "Signature", nsmap={"ds": NS_DS})
    signed_info = etree.SubElement(signature, ds + "SignedInfo")
    etree.SubElement(signed_info, ds + "CanonicalizationMethod", Algorithm=EXC_C14N)
    is_ec = isinstance(key, ec.EllipticCurvePrivateKey)
    if not is_ec and not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the seal key is neither EC nor RSA")
    etree.SubElement(signed_info, ds + "SignatureMethod", Algorithm=ECDSA_SHA256 if is_ec else RSA_SHA256)
    reference = etree.SubElement(signed_info, ds + "Reference", URI="#" + assertion.get("ID"))
    transforms = etree.SubElement(reference, ds + "Transforms")
    etree.SubElement(transforms, ds + "Transform", Algorithm=ENVELOPED)
    etree.SubElement(transforms, ds + "Transform", Algorithm=EXC_C14N)
    etree.SubElement(reference, ds + "DigestMethod", Algorithm=SHA256)
    etree.SubElement(reference, ds + "DigestValue").text = base64.b64encode(digest).decode()
    value = etree.SubElement(signature, ds + "SignatureValue")
    x509_data = etree.SubElement(etree.SubElement(signature, ds + "KeyInfo"), ds + "X509Data")
    etree.SubElement(x509_data, ds + "X509Certificate").text = base64.b64encode(
        cert.public_bytes(serialization.Encoding.DER)).decode()
    # in place before SignedInfo is canonicalized: exclusive c14n reads the namespaces in scope there
    assertion.insert(assertion.index(issuer) + 1 if issuer is not None else 0, signature)
    data = etree.tostring(signed_info, method="c14n", exclusive=True)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        size = (key.curve.key_size + 7) // 8
        raw = r.to_bytes(size, "big") + s.to_bytes(size, "big")   # XML-DSig ECDSA is r||s, not DER
    else:
        assert isinstance(key, rsa.RSAPrivateKey)   # checked above; narrows the key's type
        raw = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    value.text = base64.b64encode(raw).decode()
    return vihf


def _assertion(element: etree._Element) -> etree._Element:
    if element.tag == f"{{{NS_SAML}}}Assertion":
        return element
    found = element.find(f".//{{{NS_SAML}}}Assertion")
    if found is None:
        raise ValueError("no saml2:Assertion (the VIHF) in the element to sign")
    return found


def _structure_of(assertion: etree._Element) -> str:
    for attribute in assertion.iter(f"{{{NS_SAML}}}Attribute"):
        if attribute.get("Name") == _STRUCTURE:
            value = attribute.find(f"{{{NS_SAML}}}AttributeValue")
            if value is not None and (value.text or "").strip():
                return value.text.strip()
    return ""


def _material(signer: Any, structure: str) -> tuple[bytes, bytes]:
    if isinstance(signer, SigningIdentity):
        return signer.cert_pem(), signer.key_pem()
    if isinstance(signer, tuple) and len(signer) == 2:
        return bytes(signer[0]), bytes(signer[1])
    if not structure:
        raise ValueError("the VIHF has no Identifiant_Structure: say which structure signs (structure=IDNST)")
    if isinstance(signer, str | Path):
        identity = signing_identity(Path(signer), structure)
        return identity.cert_pem(), identity.key_pem()
    client = signer if hasattr(signer, "call") else getattr(signer, "client", None)
    bench = getattr(signer, "bench", signer) if not getattr(signer, "remote", False) else None  # RunningBench -> Bench
    if bench is not None and hasattr(bench, "vihf_signing_identity"):
        identity = bench.vihf_signing_identity(structure)
        return identity.cert_pem(), identity.key_pem()
    if client is not None:   # a bench reached over the network (a container, a CI service): its control API
        pem = client.call("GET", f"/pki/signing/{structure}")
        return pem["certificate"].encode("ascii"), pem["private_key"].encode("ascii")
    raise TypeError(f"cannot sign with {signer!r}: give a bench, a BenchClient, a PKI folder or a (cert, key) pair")
