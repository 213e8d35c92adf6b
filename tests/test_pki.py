"""Tests for mockbench.pki: files written, certificate shapes, and real TLS handshakes on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store

from mockbench.pki import (
    TEST_FINESS,
    ClientSpec,
    PkiError,
    TlsFiles,
    client_context,
    describe_peer,
    finess_check_digit,
    init_pki,
    load_tls_files,
    server_context,
)

TIMEOUT = 2.0  # every socket operation and thread join is bounded by this


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return init_pki(tmp_path_factory.mktemp("pki"))


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _subject(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    attributes = cert.subject.get_attributes_for_oid(oid)
    return str(attributes[0].value) if attributes else None


# --------------------------------------------------------------------------- files


def test_init_writes_every_file_with_private_keys_0600(pki: TlsFiles) -> None:
    directory = pki.ca_cert.parent
    expected = {
        "ca.crt", "ca.key", "server.crt", "server.key", "README.txt",
        "clients/org-auth-cli.crt", "clients/org-auth-cli.key",
        "clients/app-mailbox.crt", "clients/app-mailbox.key",
        "signing/1010000024/org-sign.crt", "signing/1010000024/org-sign.key",   # the default structure's seal
        # PKCS#12 bundles beside the PEM files, for Java and .NET clients (issue 18 point 5)
        "clients/org-auth-cli.p12", "clients/app-mailbox.p12", "signing/1010000024/org-sign.p12",
    }
    written = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}
    assert written == expected
    assert pki.server_cert == directory / "server.crt"
    assert pki.server_key == directory / "server.key"
    assert pki.clients == {
        "org-auth-cli": (directory / "clients/org-auth-cli.crt", directory / "clients/org-auth-cli.key"),
        "app-mailbox": (directory / "clients/app-mailbox.crt", directory / "clients/app-mailbox.key"),
    }
    if os.name == "posix":
        for key in [*directory.rglob("*.key"), *directory.rglob("*.p12")]:
            assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    for key in directory.rglob("*.key"):
        serialization.load_pem_private_key(key.read_bytes(), password=None)


def test_readme_explains_files_and_curl(pki: TlsFiles) -> None:
    readme = (pki.ca_cert.parent / "README.txt").read_text(encoding="utf-8")
    for name in ("ca.crt", "ca.key", "server.crt", "server.key", "clients/app-mailbox.crt"):
        assert name in readme
    assert "--cacert ca.crt --cert clients/org-auth-cli.crt --key clients/org-auth-cli.key" in readme
    assert "--tls-dir" in readme


def test_refuses_to_overwrite_then_overwrites_on_request(tmp_path: Path) -> None:
    first = init_pki(tmp_path, clients=[ClientSpec("old", "Old client")])
    old_ca = first.ca_cert.read_bytes()
    with pytest.raises(PkiError, match="already holds a test PKI.*overwrite=True"):
        init_pki(tmp_path)
    assert first.ca_cert.read_bytes() == old_ca

    second = init_pki(tmp_path, overwrite=True)
    assert second.ca_cert.read_bytes() != old_ca
    # The client signed by the old CA is gone, so loading sees only the new ones.
    assert not (tmp_path / "clients/old.crt").exists()
    assert set(load_tls_files(tmp_path).clients) == {"org-auth-cli", "app-mailbox"}
    if os.name == "posix":
        assert stat.S_IMODE((tmp_path / "ca.key").stat().st_mode) == 0o600


def test_load_tls_files_round_trip(pki: TlsFiles) -> None:
    assert load_tls_files(pki.ca_cert.parent) == pki


def test_load_tls_files_on_empty_dir_names_the_missing_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(PkiError) as caught:
        load_tls_files(tmp_path)
    assert str(caught.value) == f"no ca.crt in {tmp_path}: run `mockbench pki init {tmp_path}`"
    (tmp_path / "ca.crt").write_text("x")
    with pytest.raises(PkiError, match=r"no server\.crt in .*mockbench pki init"):
        load_tls_files(tmp_path)


def test_rejects_bad_arguments_before_writing(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="file name"):
        ClientSpec("../evil", "x")
    with pytest.raises(PkiError, match="duplicate client names: a"):
        init_pki(tmp_path, clients=[ClientSpec("a", "A"), ClientSpec("a", "B")])
    with pytest.raises(PkiError, match="neither an IP address nor"):
        init_pki(tmp_path, hosts=["bad host"])
    with pytest.raises(PkiError, match="non-empty"):
        init_pki(tmp_path, hosts="localhost")
    with pytest.raises(PkiError, match="days"):
        init_pki(tmp_path, days=0)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- certificates


def _luhn_valid(number: str) -> bool:
    digits = [int(c) for c in reversed(number)]
    total = sum(digits[0::2]) + sum(sum(divmod(2 * d, 10)) for d in digits[1::2])
    return total % 10 == 0


def test_finess_is_luhn_valid() -> None:
    assert finess_check_digit("01000002") == "4"
    assert TEST_FINESS == "010000024" and _luhn_valid(TEST_FINESS)
    for prefix in ("75000000", "13078368", "99999999"):
        assert _luhn_valid(prefix + finess_check_digit(prefix))
    with pytest.raises(PkiError):
        finess_check_digit("123")


def test_chain_and_shapes(pki: TlsFiles) -> None:
    ca = _load(pki.ca_cert)
    server = _load(pki.server_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca.verify_directly_issued_by(ca)
    server.verify_directly_issued_by(ca)

    store = Store([ca])
    # cryptography's RFC 5280 / CABF path validation, for every server name the bench listens on.
    for name in (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                 x509.IPAddress(ipaddress.ip_address("::1"))):
        PolicyBuilder().store(store).build_server_verifier(name).verify(server, [])
    assert server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH]
    )
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")
    ]

    # Web PKI defaults demand a SAN on client certificates; IGC Santé ORG_AUTH_CLI ones have none.
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
    )
    client_verifier = (
        PolicyBuilder()
        .store(store)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy)
        .build_client_verifier()
    )
    for name, (cert_path, _) in pki.clients.items():
        cert = _load(cert_path)
        cert.verify_directly_issued_by(ca)
        client_verifier.verify(cert, [])
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH], name
        assert _subject(cert, NameOID.COUNTRY_NAME) == "FR"
        assert _subject(cert, NameOID.ORGANIZATION_NAME) == "CHU de Test"
        assert _subject(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) == "1010000024"

    org = _load(pki.clients["org-auth-cli"][0])
    assert _subject(org, NameOID.COMMON_NAME) == "DPI de test"
    with pytest.raises(x509.ExtensionNotFound):
        org.extensions.get_extension_for_class(x509.SubjectAlternativeName)

    mailbox = _load(pki.clients["app-mailbox"][0])
    assert _subject(mailbox, NameOID.COMMON_NAME) == "dpi@chu-test.mssante.fr"
    mailbox_san = mailbox.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert mailbox_san.get_values_for_type(x509.RFC822Name) == ["dpi@chu-test.mssante.fr"]


def test_custom_hosts_and_clients(tmp_path: Path) -> None:
    spec = ClientSpec("ght", "Passerelle GHT", organization="GHT Test", organizational_unit="1000000009")
    files = init_pki(tmp_path, hosts=["dmp.test", "10.0.0.5"], clients=[spec], days=1)
    server = _load(files.server_cert)
    assert _subject(server, NameOID.COMMON_NAME) == "dmp.test"
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["dmp.test"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5")]
    assert set(files.clients) == {"ght"}
    assert (server.not_valid_after_utc - server.not_valid_before_utc).days <= 1


# --------------------------------------------------------------------------- handshakes


@dataclass
class _ServerResult:
    peer: dict[str, Any] | None = None
    peer_der: bytes | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


def _serve_once(context: ssl.SSLContext) -> tuple[int, _ServerResult, threading.Thread, socket.socket]:
    """Accept one TLS connection on an ephemeral port, record the peer certificate, answer b"ok"."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    result = _ServerResult()

    def run() -> None:
        try:
            raw, _ = listener.accept()
            raw.settimeout(TIMEOUT)
            with context.wrap_socket(raw, server_side=True) as tls:
                result.peer = tls.getpeercert()
                result.peer_der = tls.getpeercert(binary_form=True)
                tls.sendall(b"ok")
        except BaseException as exc:  # recorded for the test to assert on
            result.error = exc
        finally:
            result.done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname()[1], result, thread, listener


def _connect(port: int, context: ssl.SSLContext, server_hostname: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname=server_hostname) as tls:
            return tls.recv(16)


def _finish(thread: threading.Thread, listener: socket.socket) -> None:
    thread.join(TIMEOUT + 1)
    listener.close()
    assert not thread.is_alive()


def test_mutual_tls_identifies_the_org_auth_cli_client(pki: TlsFiles) -> None:
    port, result, thread, listener = _serve_once(server_context(pki))
    try:
        assert _connect(port, client_context(pki, "org-auth-cli"), "127.0.0.1") == b"ok"
    finally:
        _finish(thread, listener)
    assert result.error is None
    peer = describe_peer(result.peer)
    expected_serial = format(_load(pki.clients["org-auth-cli"][0]).serial_number, "X")
    assert peer == {
        "common_name": "DPI de test",
        "organization": "CHU de Test",
        "organizational_unit": "1010000024",
        "email": None,
        "serial": peer["serial"],
    }
    assert peer["serial"].lstrip("0") == expected_serial
    assert describe_peer(result.peer_der) == peer


def test_mailbox_client_under_required_mode_exposes_its_address(pki: TlsFiles) -> None:
    port, result, thread, listener = _serve_once(server_context(pki, require_client_cert=True))
    try:
        assert _connect(port, client_context(pki, "app-mailbox"), "localhost") == b"ok"
    finally:
        _finish(thread, listener)
    assert result.error is None
    peer = describe_peer(result.peer)
    assert peer["email"] == "dpi@chu-test.mssante.fr"
    assert peer["common_name"] == "dpi@chu-test.mssante.fr"
    assert describe_peer(result.peer_der) == peer


def test_client_without_certificate_connects_under_optional_mode(pki: TlsFiles) -> None:
    context = server_context(pki)
    assert context.verify_mode == ssl.CERT_OPTIONAL
    port, result, thread, listener = _serve_once(context)
    try:
        assert _connect(port, client_context(pki), "localhost") == b"ok"
    finally:
        _finish(thread, listener)
    assert result.error is None
    assert result.peer is None
    assert describe_peer(result.peer) == dict.fromkeys(
        ("common_name", "organization", "organizational_unit", "email", "serial")
    )


def test_client_without_certificate_is_refused_under_required_mode(pki: TlsFiles) -> None:
    context = server_context(pki, require_client_cert=True)
    assert context.verify_mode == ssl.CERT_REQUIRED
    port, result, thread, listener = _serve_once(context)
    try:
        # Under TLS 1.3 the client finishes its side first and learns of the refusal on read.
        with pytest.raises((ssl.SSLError, ConnectionError)):
            data = _connect(port, client_context(pki), "localhost")
            assert data == b"", "server must not answer a client without certificate"
            raise ConnectionError("closed without answering")
    finally:
        _finish(thread, listener)
    assert isinstance(result.error, ssl.SSLError)
    assert result.peer is None


def test_client_rejects_a_server_it_does_not_trust(pki: TlsFiles, tmp_path: Path) -> None:
    other = init_pki(tmp_path, clients=[])
    port, result, thread, listener = _serve_once(server_context(other))
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            _connect(port, client_context(pki), "localhost")
    finally:
        _finish(thread, listener)
    assert isinstance(result.error, ssl.SSLError)


def test_contexts_require_tls12_and_know_their_clients(pki: TlsFiles) -> None:
    assert server_context(pki).minimum_version == ssl.TLSVersion.TLSv1_2
    client = client_context(pki)
    assert client.minimum_version == ssl.TLSVersion.TLSv1_2
    assert client.check_hostname and client.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(PkiError, match="no client certificate named 'nobody'.*app-mailbox, org-auth-cli"):
        client_context(pki, "nobody")


def test_describe_peer_accepts_empty_and_rejects_garbage() -> None:
    assert describe_peer({})["common_name"] is None
    with pytest.raises(PkiError):
        describe_peer(b"not a certificate")


# --------------------------------------------------------------------------- PKCS#12 (issue 18 point 5)


def _p12_files(pki: TlsFiles) -> list[Path]:
    directory = pki.ca_cert.parent
    return sorted(directory.rglob("*.p12"))


def test_each_p12_holds_the_pem_key_and_certificate_and_the_ca(pki: TlsFiles) -> None:
    from cryptography.hazmat.primitives.serialization import pkcs12

    from mockbench.pki import P12_PASSWORD

    assert P12_PASSWORD == "mockbench"   # the password the README and the PKI's README.txt give
    for p12 in _p12_files(pki):
        key, cert, extra = pkcs12.load_key_and_certificates(p12.read_bytes(), P12_PASSWORD.encode())
        pem_cert = _load(p12.with_suffix(".crt"))
        pem_key = serialization.load_pem_private_key(p12.with_suffix(".key").read_bytes(), password=None)
        assert cert == pem_cert, p12
        assert key.private_numbers() == pem_key.private_numbers(), p12
        assert extra == [_load(pki.ca_cert)], p12
        with pytest.raises(ValueError):
            pkcs12.load_key_and_certificates(p12.read_bytes(), b"wrong")


@pytest.mark.skipif(not __import__("shutil").which("keytool"), reason="keytool (a Java runtime) is not installed")
def test_keytool_reads_the_p12_as_a_java_keystore(pki: TlsFiles) -> None:
    import subprocess

    p12 = pki.ca_cert.parent / "clients" / "org-auth-cli.p12"
    out = subprocess.run(["keytool", "-list", "-v", "-keystore", str(p12), "-storetype", "PKCS12",
                          "-storepass", "mockbench"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "PrivateKeyEntry" in out.stdout and "Certificate chain length: 2" in out.stdout
    assert "CN=DPI de test" in out.stdout


@pytest.mark.skipif(not __import__("shutil").which("openssl"), reason="openssl is not installed")
def test_openssl_reads_the_p12(pki: TlsFiles) -> None:
    import subprocess

    p12 = pki.ca_cert.parent / "signing" / "1010000024" / "org-sign.p12"
    out = subprocess.run(["openssl", "pkcs12", "-in", str(p12), "-passin", "pass:mockbench", "-nokeys",
                          "-clcerts"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert _load(p12.with_suffix(".crt")).public_bytes(serialization.Encoding.PEM).decode().strip() in out.stdout


def test_a_p12_client_certificate_opens_a_mutual_tls_session(pki: TlsFiles, tmp_path: Path) -> None:
    """What a Java or .NET DPI does with the bundle: its key and certificate, nothing else, authenticate."""
    from cryptography.hazmat.primitives.serialization import pkcs12

    key, cert, _ = pkcs12.load_key_and_certificates(
        (pki.ca_cert.parent / "clients" / "org-auth-cli.p12").read_bytes(), b"mockbench")
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    port, result, thread, listener = _serve_once(server_context(pki, require_client_cert=True))
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(tmp_path / "c.pem"))
    try:
        assert _connect(port, context, "localhost") == b"ok"
    finally:
        _finish(thread, listener)
    assert result.error is None and describe_peer(result.peer)["common_name"] == "DPI de test"
