"""A throwaway test PKI so every mockbench door can speak TLS, with client certificates.

``mockbench pki init DIR`` calls :func:`init_pki`; ``mockbench up --tls-dir DIR`` calls
:func:`load_tls_files` then :func:`server_context` for each door (HTTPS with mutual TLS for the DMP,
STARTTLS for SMTP and IMAP).

Layout written in DIR (all PEM)::

    ca.crt, ca.key            the test CA (trust anchor for both sides)
    server.crt, server.key    the certificate every door presents
    clients/<name>.crt/.key   one client-authentication certificate per ClientSpec
    signing/<IDNST>/org-sign.crt, org-sign.key
                              a structure's seal certificate (ORG_SIGN-like), which signs its VIHFs; issued
                              for the default structure by init_pki, for any other on first use by
                              :func:`signing_identity` (it needs ca.key)
    README.txt                what each file is, with curl examples

Certificate shapes, chosen to mimic the IGC Santé (ANS) software certificates without claiming to be
them:

* The CA is a single self-signed level (IGC Santé has a root plus "AC IGC-SANTE ELEMENTAIRE
  ORGANISATIONS"; one level is enough for a bench). Its subject says TEST ONLY so nobody mistakes it
  for the real one. basicConstraints CA:TRUE pathlen 0 (critical), keyUsage keyCertSign + cRLSign.
* The server certificate (like an IGC Santé "SSL_SERV") has CN = first host, SANs for every host
  (IP literals as iPAddress, the rest as dNSName), extendedKeyUsage serverAuth.
* Client certificates mimic "ORG_AUTH_CLI" (personne morale, authentication of a structure's
  software): subject C=FR, O=<structure name>, OU=<IDNST = "1" + FINESS>, CN=<software name or
  mailbox address>; extendedKeyUsage clientAuth. An MSSanté applicative mailbox certificate also
  carries the address as an rfc822Name SAN (not as a subject emailAddress, which RFC 5280 deprecates).
  Certificate policy OIDs of the real PKI are not reproduced.
* Keys are ECDSA P-256 (fast to generate), signatures ECDSA-SHA256. Certificates satisfy
  OpenSSL's VERIFY_X509_STRICT (the default for Python >= 3.13 clients).

* Seal certificates mimic "ORG_SIGN" (the structure's cachet, which signs the VIHF's XML-DSig
  [trans-cda-r2/mapping.md, "Mapping VIHF pour le DMP", //Assertion/ds:Signature]): subject C=FR,
  O=<structure name>, OU=<IDNST>, CN=<structure name>; keyUsage digitalSignature + contentCommitment, no
  extendedKeyUsage (a signing certificate is not a TLS one).

The default structure's FINESS is 010000024 (check digit computed with Luhn, as FINESS numbers
are); its IDNST is therefore "1010000024".
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import shutil
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "DEFAULT_CLIENTS",
    "TEST_FINESS",
    "ClientSpec",
    "PkiError",
    "SigningIdentity",
    "TlsFiles",
    "client_context",
    "describe_peer",
    "finess_check_digit",
    "init_pki",
    "ensure_pki",
    "load_tls_files",
    "server_context",
    "signing_identity",
]

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
CLIENTS_DIR = "clients"
SIGNING_DIR = "signing"
SIGNING_CERT = "org-sign.crt"
SIGNING_KEY = "org-sign.key"
SIGNING_P12 = "org-sign.p12"
README = "README.txt"
# Each certificate and its key also as a PKCS#12 bundle (`<name>.p12`, with the CA certificate) for Java and
# .NET clients (keytool, KeyStore.getInstance("PKCS12"), X509Certificate2), under this documented password.
P12_PASSWORD = "mockbench"

DEFAULT_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
DEFAULT_ORGANIZATION = "CHU de Test"

# An IDNST as a folder name: digits and letters (FINESS, SIRET, local ids), no path separator.
_IDNST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Safe as a file name on every OS and in a shell command line.
_CLIENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Certificates are back-dated so a bench container with a slightly late clock still accepts them.
_BACKDATE = datetime.timedelta(hours=1)


class PkiError(ValueError):
    """A test PKI cannot be created, found or used; the message says what to do."""


class PkiExists(PkiError):
    """The folder already holds a PKI; `present` names its files (the CLI says --force, Python overwrite=True)."""

    def __init__(self, directory: Path, present: list[str]) -> None:
        self.directory, self.present = directory, present
        super().__init__(f"{directory} already holds a test PKI ({', '.join(present)}); refusing to overwrite it "
                         "(pass overwrite=True to replace it)")


def finess_check_digit(first_eight: str) -> str:
    """Luhn check digit completing an 8-digit FINESS prefix."""
    if len(first_eight) != 8 or not first_eight.isdigit():
        raise PkiError(f"a FINESS prefix is 8 digits, got {first_eight!r}")
    total = 0
    # Luhn: from the right of the full number, every second digit is doubled; the check digit
    # is the rightmost, so here the rightmost prefix digit is the first one doubled.
    for i, char in enumerate(reversed(first_eight)):
        digit = int(char)
        if i % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


TEST_FINESS = "01000002" + finess_check_digit("01000002")
TEST_IDNST = "1" + TEST_FINESS  # IDNST type 1 = FINESS-based structure identifier


@dataclass(frozen=True)
class ClientSpec:
    """One client certificate to issue; ``name`` becomes ``clients/<name>.crt`` and ``.key``."""

    name: str
    common_name: str
    organization: str = DEFAULT_ORGANIZATION
    organizational_unit: str | None = None
    email: str | None = None

    def __post_init__(self) -> None:
        if not _CLIENT_NAME.fullmatch(self.name):
            raise PkiError(
                f"client name {self.name!r} must be 1-64 letters, digits, '.', '_' or '-' "
                "(it is used as a file name)"
            )
        for label, value in (("common_name", self.common_name), ("organization", self.organization),
                             ("organizational_unit", self.organizational_unit)):
            # X.520 upper bound for CN, O and OU.
            if value is not None and not 1 <= len(value) <= 64:
                raise PkiError(f"client {self.name!r}: {label} must be 1-64 characters, got {value!r}")
        if self.email is not None and (self.email.count("@") != 1 or not self.email.isascii()):
            raise PkiError(f"client {self.name!r}: {self.email!r} is not a plain ASCII mail address")


DEFAULT_CLIENTS: tuple[ClientSpec, ...] = (
    ClientSpec(
        name="org-auth-cli",
        common_name="DPI de test",
        organization=DEFAULT_ORGANIZATION,
        organizational_unit=TEST_IDNST,
    ),
    ClientSpec(
        name="app-mailbox",
        common_name="dpi@chu-test.mssante.fr",
        organization=DEFAULT_ORGANIZATION,
        organizational_unit=TEST_IDNST,
        email="dpi@chu-test.mssante.fr",
    ),
)


@dataclass(frozen=True)
class TlsFiles:
    """Paths of a test PKI; ``clients`` maps client name -> (cert, key)."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]]


# --------------------------------------------------------------------------- creation


def init_pki(
    directory: Path,
    *,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    clients: Sequence[ClientSpec] | None = None,
    days: int = 825,
    overwrite: bool = False,
) -> TlsFiles:
    """Create a CA, a server certificate for ``hosts`` and one certificate per client in ``directory``.

    Refuses to replace an existing PKI unless ``overwrite``; with ``overwrite`` the old client
    files are removed too, so none signed by the previous CA is left behind.
    """
    directory = Path(directory)
    specs = tuple(DEFAULT_CLIENTS if clients is None else clients)
    _check_arguments(directory, hosts, specs, days, overwrite)

    clients_dir = directory / CLIENTS_DIR
    clients_dir.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for stale in sorted(clients_dir.glob("*.crt")) + sorted(clients_dir.glob("*.key")) + \
                sorted(clients_dir.glob("*.p12")):
            stale.unlink()
        shutil.rmtree(directory / SIGNING_DIR, ignore_errors=True)   # seal certificates of the old CA

    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - _BACKDATE, now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _build_ca(ca_key, not_before, not_after)

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _build_server(server_key, ca_cert, ca_key, hosts, not_before, not_after)

    files = TlsFiles(
        ca_cert=directory / CA_CERT,
        server_cert=directory / SERVER_CERT,
        server_key=directory / SERVER_KEY,
        clients={},
    )
    _write_key(directory / CA_KEY, ca_key)
    _write_cert(files.ca_cert, ca_cert)
    _write_key(files.server_key, server_key)
    _write_cert(files.server_cert, server_cert)

    for spec in specs:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _build_client(key, ca_cert, ca_key, spec, not_before, not_after)
        cert_path, key_path = clients_dir / f"{spec.name}.crt", clients_dir / f"{spec.name}.key"
        _write_key(key_path, key)
        _write_cert(cert_path, cert)
        _write_p12(cert_path.with_suffix(".p12"), spec.name, key, cert, ca_cert)
        files.clients[spec.name] = (cert_path, key_path)

    _issue_signing(directory, ca_cert, ca_key, TEST_IDNST, DEFAULT_ORGANIZATION, not_before, not_after)
    (directory / README).write_text(_readme(directory, hosts, specs, days), encoding="utf-8")
    return files


@dataclass(frozen=True)
class SigningIdentity:
    """A structure's seal certificate and key (PEM files) under ``signing/<IDNST>/``."""

    idnst: str
    cert: Path
    key: Path

    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()

    def key_pem(self) -> bytes:
        return self.key.read_bytes()


def ensure_pki(directory: Path) -> Path:
    """The PKI in ``directory``, made by :func:`init_pki` (no client certificate) when it holds none: the
    bench's own trust anchor for VIHF signatures when it runs without ``--tls-dir``. Returns ca.crt."""
    directory = Path(directory)
    if not (directory / CA_CERT).is_file():
        try:
            init_pki(directory, clients=())
        except PkiError:
            if not (directory / CA_CERT).is_file():   # another process made it meanwhile: use theirs
                raise
    return directory / CA_CERT


def signing_identity(directory: Path, idnst: str, organization: str | None = None) -> SigningIdentity:
    """The seal certificate of the structure whose IDNST is ``idnst`` in the PKI at ``directory``, issued
    by its CA on first use (the CA key ``ca.key`` must be there then). ``organization`` is the structure's
    name for the certificate's O and CN (the IDNST when not given)."""
    directory = Path(directory)
    if not _IDNST.fullmatch(idnst or ""):
        raise PkiError(f"{idnst!r} is not an IDNST usable as a folder name (letters, digits, '.', '_', '-')")
    folder = directory / SIGNING_DIR / idnst
    identity = SigningIdentity(idnst, folder / SIGNING_CERT, folder / SIGNING_KEY)
    if identity.cert.is_file() and identity.key.is_file():
        return identity
    try:
        ca_cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
        ca_key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise PkiError(f"cannot issue a seal certificate for {idnst}: the CA of {directory} (ca.crt and ca.key) "
                       f"cannot be read ({exc}); run `mockbench pki init {directory}`") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{directory / CA_KEY} is not the EC key `mockbench pki init` makes")
    now = datetime.datetime.now(datetime.UTC)
    return _issue_signing(directory, ca_cert, ca_key, idnst, organization or idnst, now - _BACKDATE,
                          min(ca_cert.not_valid_after_utc, now + datetime.timedelta(days=825)))


def _issue_signing(directory: Path, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, idnst: str,
                   organization: str, not_before: datetime.datetime, not_after: datetime.datetime
                   ) -> SigningIdentity:
    """Write signing/<idnst>/ at once: the pair is made in a fresh folder renamed into place, so that two
    writers never leave one's key beside the other's certificate (the loser keeps the winner's pair)."""
    signing = directory / SIGNING_DIR
    signing.mkdir(parents=True, exist_ok=True)
    final = signing / idnst
    name = organization[:64] or idnst
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name((NameOID.COUNTRY_NAME, "FR"), (NameOID.ORGANIZATION_NAME, name),
                    (NameOID.ORGANIZATIONAL_UNIT_NAME, idnst), (NameOID.COMMON_NAME, name))
    cert = (
        _builder(subject, ca_cert.subject, key.public_key(), not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    staging = Path(tempfile.mkdtemp(prefix=f".{idnst}-", dir=signing))
    try:
        _write_key(staging / SIGNING_KEY, key)
        _write_cert(staging / SIGNING_CERT, cert)
        _write_p12(staging / SIGNING_P12, f"org-sign-{idnst}", key, cert, ca_cert)
        try:
            os.rename(staging, final)
        except OSError:
            if not (final / SIGNING_CERT).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return SigningIdentity(idnst, final / SIGNING_CERT, final / SIGNING_KEY)


def _check_arguments(
    directory: Path, hosts: Sequence[str], specs: tuple[ClientSpec, ...], days: int, overwrite: bool
) -> None:
    if directory.exists() and not directory.is_dir():
        raise PkiError(f"{directory} exists and is not a directory")
    if not overwrite:
        present = [name for name in (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY) if (directory / name).exists()]
        if present:
            raise PkiExists(directory, present)
    if isinstance(hosts, str) or not hosts:
        raise PkiError("hosts must be a non-empty sequence of host names or IP addresses")
    for host in hosts:
        _host_san(host)  # validates early, before any file is touched
    if days < 1:
        raise PkiError(f"days must be at least 1, got {days}")
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise PkiError(f"duplicate client names: {', '.join(duplicates)}")


def _host_san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not host or not host.isascii() or any(c.isspace() for c in host):
        raise PkiError(f"{host!r} is neither an IP address nor an ASCII host name")
    return x509.DNSName(host.lower())


def _name(*parts: tuple[x509.ObjectIdentifier, str | None]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in parts if value is not None])


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _build_ca(
    key: ec.EllipticCurvePrivateKey, not_before: datetime.datetime, not_after: datetime.datetime
) -> x509.Certificate:
    subject = _name(
        (NameOID.COUNTRY_NAME, "FR"),
        (NameOID.ORGANIZATION_NAME, "mockbench"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "TEST ONLY - not IGC Sante"),
        (NameOID.COMMON_NAME, "AC MOCKBENCH TEST ORGANISATIONS"),
    )
    return (
        _builder(subject, subject, key.public_key(), not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )


def _build_leaf(
    key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    eku: x509.ObjectIdentifier,
    sans: list[x509.GeneralName],
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.Certificate:
    builder = (
        _builder(subject, ca_cert.subject, key.public_key(), not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _build_server(
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    hosts: Sequence[str],
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.Certificate:
    common_name = hosts[0] if len(hosts[0]) <= 64 else "mockbench server"
    subject = _name(
        (NameOID.COUNTRY_NAME, "FR"),
        (NameOID.ORGANIZATION_NAME, "mockbench"),
        (NameOID.COMMON_NAME, common_name),
    )
    sans = list(dict.fromkeys(_host_san(host) for host in hosts))  # de-duplicated, order kept
    return _build_leaf(
        key, subject, ca_cert, ca_key, ExtendedKeyUsageOID.SERVER_AUTH, sans, not_before, not_after
    )


def _build_client(
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    spec: ClientSpec,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.Certificate:
    subject = _name(
        (NameOID.COUNTRY_NAME, "FR"),
        (NameOID.ORGANIZATION_NAME, spec.organization),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, spec.organizational_unit),
        (NameOID.COMMON_NAME, spec.common_name),
    )
    sans: list[x509.GeneralName] = [x509.RFC822Name(spec.email)] if spec.email else []
    return _build_leaf(
        key, subject, ca_cert, ca_key, ExtendedKeyUsageOID.CLIENT_AUTH, sans, not_before, not_after
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Created 0600 so the key is never readable by others, even for an instant; chmod covers a
    # pre-existing file whose mode O_CREAT would not change.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.chmod(path, 0o600)


def _write_p12(path: Path, name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate,
               ca_cert: x509.Certificate) -> None:
    """The key, its certificate and the CA's as PKCS#12 under P12_PASSWORD: PBES2 with AES-256-CBC and an
    HMAC-SHA256 MAC (RFC 8018, RFC 7292), which Java 11+, .NET and OpenSSL 3 read; 0600 like the key."""
    encryption = (serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(10000)
                  .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC).hmac_hash(hashes.SHA256())
                  .build(P12_PASSWORD.encode()))
    data = pkcs12.serialize_key_and_certificates(name.encode(), key, cert, [ca_cert], encryption)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.chmod(path, 0o644)


def _readme(directory: Path, hosts: Sequence[str], specs: tuple[ClientSpec, ...], days: int) -> str:
    entries: list[tuple[str, str]] = [
        ("ca.crt", "test CA certificate: the trust anchor for servers and clients"),
        ("ca.key", "test CA private key (only needed to issue more certificates)"),
        ("server.crt", f"certificate every mockbench door presents (serverAuth) for {', '.join(hosts)}"),
        ("server.key", "its private key"),
    ]
    for spec in specs:
        parts = (("C", "FR"), ("O", spec.organization), ("OU", spec.organizational_unit),
                 ("CN", spec.common_name))
        subject = ", ".join(f"{label}={value}" for label, value in parts if value is not None)
        about = f"client certificate (clientAuth): {subject}"
        if spec.email:
            about += f"; mail address (rfc822Name SAN) {spec.email}"
        entries += [(f"clients/{spec.name}.crt", about), (f"clients/{spec.name}.key", "its private key"),
                    (f"clients/{spec.name}.p12", f"both and ca.crt as PKCS#12, password {P12_PASSWORD}")]
    entries += [(f"signing/{TEST_IDNST}/org-sign.crt", f"seal certificate (ORG_SIGN-like) of structure {TEST_IDNST}: "
                 "signs its VIHFs"), (f"signing/{TEST_IDNST}/org-sign.key", "its private key"),
                (f"signing/{TEST_IDNST}/org-sign.p12", f"both and ca.crt as PKCS#12, password {P12_PASSWORD}")]
    width = max(len(name) for name, _ in entries)

    example = specs[0].name if specs else "NAME"
    cert_opts = f"--cacert ca.crt --cert clients/{example}.crt --key clients/{example}.key"
    lines = [
        "mockbench test PKI - FOR TESTS ONLY",
        "===================================",
        "",
        f"Made by `mockbench pki init {directory}`; valid {days} days. Never add ca.crt to a",
        "system or browser trust store: anyone with ca.key can impersonate any site to you.",
        "",
        "Files (PEM):",
        *(f"  {name.ljust(width)}  {about}" for name, about in entries),
        "",
        f"Start the bench with TLS on every door:  mockbench up --tls-dir {directory}",
        "",
        "From inside this directory, call an HTTPS door with a client certificate (mutual TLS):",
        f"  curl {cert_opts} https://localhost:PORT/",
        "Without --cert/--key the door sees no client certificate and refuses where one is required.",
        "",
        "SMTP / IMAP with STARTTLS:",
        "  openssl s_client -starttls smtp -connect localhost:PORT -CAfile ca.crt "
        f"-cert clients/{example}.crt -key clients/{example}.key",
        f"  curl --ssl-reqd {cert_opts} imap://localhost:PORT/",
        "",
        "VIHF signatures (the DMP door trusts ca.crt): sign the VIHF's SAML Assertion (enveloped XML-DSig,",
        "exclusive c14n) with signing/<IDNST>/org-sign.key and put org-sign.crt in its KeyInfo; from Python:",
        "  mockbench.testing.sign_vihf(security, mockbench.pki.signing_identity(DIR, IDNST)).",
        "A structure other than the default one gets its folder on first use (needs ca.key).",
        "",
        f"Java / .NET: the .p12 files are PKCS#12 keystores (password {P12_PASSWORD}), e.g.",
        f"  keytool -list -keystore clients/{example}.p12 -storetype PKCS12 -storepass {P12_PASSWORD}",
        "  and ca.crt as the trust store: keytool -importcert -file ca.crt -keystore trust.p12 -storepass ...",
        "",
        "A bench reached by a container name: list the name when making the PKI, so that the server certificate",
        "names it:  mockbench pki init DIR --host mockbench --host localhost --host 127.0.0.1",
        "",
        "Python: ssl.create_default_context(cafile='ca.crt') then",
        f"        context.load_cert_chain('clients/{example}.crt', 'clients/{example}.key')",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- use


def load_tls_files(directory: Path) -> TlsFiles:
    """Find the files :func:`init_pki` wrote; ``ca.key`` is not needed to run and not required."""
    directory = Path(directory)
    for name in (CA_CERT, SERVER_CERT, SERVER_KEY):
        if not (directory / name).is_file():
            raise PkiError(f"no {name} in {directory}: run `mockbench pki init {directory}`")
    clients: dict[str, tuple[Path, Path]] = {}
    clients_dir = directory / CLIENTS_DIR
    if clients_dir.is_dir():
        for cert_path in sorted(clients_dir.glob("*.crt")):
            key_path = cert_path.with_suffix(".key")
            if not key_path.is_file():
                raise PkiError(
                    f"no {CLIENTS_DIR}/{key_path.name} in {directory} for {CLIENTS_DIR}/{cert_path.name}: "
                    f"run `mockbench pki init {directory}` again"
                )
            clients[cert_path.stem] = (cert_path, key_path)
    return TlsFiles(
        ca_cert=directory / CA_CERT,
        server_cert=directory / SERVER_CERT,
        server_key=directory / SERVER_KEY,
        clients=clients,
    )


def _harden(context: ssl.SSLContext) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # Same strictness Python >= 3.13 applies by default, so certificates that pass here pass there.
    context.verify_flags |= ssl.VERIFY_X509_STRICT


def server_context(files: TlsFiles, *, require_client_cert: bool = False) -> ssl.SSLContext:
    """TLS context for a door: presents server.crt, accepts client certificates issued by the CA.

    With ``require_client_cert`` False the mode is CERT_OPTIONAL: a client without a certificate
    still connects (``getpeercert()`` is None) so the door can refuse with its own protocol error;
    a client presenting a certificate the CA did not issue fails the handshake either way.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(context)
    try:
        context.load_cert_chain(files.server_cert, files.server_key)
        context.load_verify_locations(cafile=files.ca_cert)
    except (OSError, ssl.SSLError) as exc:
        raise PkiError(f"cannot load the server certificate, key or CA: {exc}") from exc
    context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return context


def client_context(files: TlsFiles, client: str | None = None) -> ssl.SSLContext:
    """TLS context for a test client trusting only the test CA, presenting ``client``'s certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname
    _harden(context)
    try:
        context.load_verify_locations(cafile=files.ca_cert)
    except (OSError, ssl.SSLError) as exc:
        raise PkiError(f"cannot load the CA certificate {files.ca_cert}: {exc}") from exc
    if client is not None:
        if client not in files.clients:
            known = ", ".join(sorted(files.clients)) or "none"
            raise PkiError(f"no client certificate named {client!r} (known: {known})")
        cert_path, key_path = files.clients[client]
        try:
            context.load_cert_chain(cert_path, key_path)
        except (OSError, ssl.SSLError) as exc:
            raise PkiError(f"cannot load client certificate {client!r}: {exc}") from exc
    return context


def describe_peer(cert_dict_or_der: Mapping[str, Any] | bytes | None) -> dict[str, str | None]:
    """Who presented a certificate: common_name, organization, organizational_unit, email, serial.

    Accepts ``getpeercert()`` (dict) or ``getpeercert(binary_form=True)`` (DER bytes). Every value
    is None when there was no certificate (None or the empty dict ``getpeercert()`` gives when the
    certificate was not verified). ``serial`` is uppercase hex, as in the dict form.
    """
    if isinstance(cert_dict_or_der, bytes | bytearray | memoryview):
        return _describe_der(bytes(cert_dict_or_der))
    if not cert_dict_or_der:
        return _peer(None, None, None, None, None)
    subject: dict[str, str] = {}
    for rdn in cert_dict_or_der.get("subject", ()):
        for key, value in rdn:
            subject.setdefault(key, value)  # first occurrence wins, as for the DER form
    email = next(
        (value for kind, value in cert_dict_or_der.get("subjectAltName", ()) if kind == "email"),
        subject.get("emailAddress"),
    )
    return _peer(
        subject.get("commonName"),
        subject.get("organizationName"),
        subject.get("organizationalUnitName"),
        email,
        cert_dict_or_der.get("serialNumber"),
    )


def _describe_der(der: bytes) -> dict[str, str | None]:
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise PkiError(f"not a DER certificate: {exc}") from exc

    def first(oid: x509.ObjectIdentifier) -> str | None:
        attributes = cert.subject.get_attributes_for_oid(oid)
        return str(attributes[0].value) if attributes else None

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        emails = san.get_values_for_type(x509.RFC822Name)
    except x509.ExtensionNotFound:
        emails = []
    serial = cert.serial_number
    # OpenSSL's dict form prints the serial's bytes in uppercase hex; match it.
    serial_hex = serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big").hex().upper()
    return _peer(
        first(NameOID.COMMON_NAME),
        first(NameOID.ORGANIZATION_NAME),
        first(NameOID.ORGANIZATIONAL_UNIT_NAME),
        emails[0] if emails else first(NameOID.EMAIL_ADDRESS),
        serial_hex,
    )


def _peer(
    common_name: str | None,
    organization: str | None,
    organizational_unit: str | None,
    email: str | None,
    serial: str | None,
) -> dict[str, str | None]:
    return {
        "common_name": common_name,
        "organization": organization,
        "organizational_unit": organizational_unit,
        "email": email,
        "serial": serial,
    }
