"""What to configure in a DPI for this bench (issue 18 point 4): every address, credential, certificate and
identity, built from the running bench's own configuration and doors (public and back-channel URLs,
published ports, TLS folder, door settings, the loaded world), never written out by hand. Each door writes
its own section (`endpoints()` of the doors in the registry, protocols/registry.py).

`describe(bench)` is what `GET /_bench/endpoints` answers (JSON, for scripts); `render_text(doc)` prints it
with French headings (`mockbench endpoints`, `GET /_bench/endpoints?format=text`); the dashboard's panel
"Configurer votre DPI" draws the same JSON. No Flask here: the command line renders the text too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..bench import Bench

MAX_IDENTITIES = 1000          # per list: a scenario world is small; a larger one says it was cut
MAX_SEALS = 50                 # seal certificates issued on demand for the world's structures


def describe(bench: Bench) -> dict[str, Any]:
    from .. import __version__

    https = bench.https_url
    back, back_https = bench.backchannel_url(False), bench.backchannel_url(True)
    with bench.world.read() as tx:
        loaded = bench.scenarios.loaded(tx)
        identities = _identities(bench, tx)
    return {
        "version": __version__,
        "scenario": loaded["id"] if loaded else None,
        "tls": bench.tls is not None,
        "urls": {"http": bench.url, "https": https, "backchannel": back, "backchannel_https": back_https,
                 "dashboard": bench.url + "/", "control": bench.url + "/_bench",
                 "control_token_required": bench.control_token is not None},
        # each door's own section, from the door registry (protocols/registry.py): dmp, oidc, annuaire, pfi, mss
        **{name: door.endpoints() for name, door in bench.doors.items()},
        "certificates": _certificates(bench, identities["structures"]),
        "identities": identities,
    }


def _certificates(bench: Bench, structures: list[dict]) -> dict:
    from ..pki import CA_CERT, CLIENTS_DIR, P12_PASSWORD, SIGNING_DIR, PkiError

    folder = bench.pki_dir
    seals: list[dict] = []
    problem = None
    for structure in structures[:MAX_SEALS]:   # each structure of the world signs its VIHFs with its seal
        try:
            bench.vihf_signing_identity(structure["idnst"])
        except PkiError as exc:   # a --tls-dir without ca.key: only the seals already there
            problem = str(exc)
            break
    if (folder / SIGNING_DIR).is_dir():
        for sub in sorted((folder / SIGNING_DIR).iterdir()):
            if sub.is_dir() and not sub.name.startswith(".") and (sub / "org-sign.crt").is_file():
                seals.append({"idnst": sub.name, **_files(sub / "org-sign.crt")})
    clients = []
    if bench.tls is not None:
        for name, (cert, _key) in sorted(bench.tls.clients.items()):
            clients.append({"name": name, **_files(cert), **_subject(cert)})
    return {
        "folder": str(folder), "ca": str(folder / CA_CERT) if (folder / CA_CERT).is_file() else None,
        "server": str(bench.tls.server_cert) if bench.tls else None,
        "clients_folder": str(folder / CLIENTS_DIR) if bench.tls else None,
        "clients": clients, "signing": seals, "p12_password": P12_PASSWORD,
        "vihf_trust_anchors": list(bench.config.doors.get("dmp", {}).get("vihf_trust_anchors", [])),
        "problem": problem,
    }


def _files(cert: Path) -> dict:
    p12 = cert.with_suffix(".p12")
    return {"cert": str(cert), "key": str(cert.with_suffix(".key")), "p12": str(p12) if p12.is_file() else None}


def _subject(cert: Path) -> dict:
    from ..pki import describe_peer

    peer = describe_peer(_der(cert))
    return {"subject": ", ".join(f"{k}={v}" for k, v in (("CN", peer.get("common_name")),
                                                          ("O", peer.get("organization")),
                                                          ("OU", peer.get("organizational_unit"))) if v),
            "email": peer.get("email")}


def _der(cert: Path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(serialization.Encoding.DER)


def _identities(bench: Bench, tx: Any) -> dict:
    d = bench.world.directory

    def cut(rows: list) -> tuple[list, bool]:
        return rows[:MAX_IDENTITIES], len(rows) > MAX_IDENTITIES

    patients, p_cut = cut(d.patients(tx))
    pros, pr_cut = cut(d.professionals(tx))
    structures, s_cut = cut(d.structures(tx))
    boxes, b_cut = cut(d.mailboxes(tx))
    return {
        "patients": [{"id": p.id, "ins": p.ins, "ins_oid": p.ins_oid, "family_name": p.family_name,
                      "given_name": p.given_name, "birth_date": p.birth_date, "sex": p.sex, "dmp": p.dmp}
                     for p in patients],
        "professionals": [{"id": p.id, "idnps": p.idnps, "rpps": p.rpps, "family_name": p.family_name,
                           "given_name": p.given_name, "profession": p.profession, "structure": p.structure,
                           "mssante": p.mssante or None} for p in pros if not p.directory_only],
        "structures": [{"id": s.id, "finess": s.finess, "finess_ej": s.finess_ej, "idnst": s.idnst, "name": s.name}
                       for s in structures],
        "mailboxes": [{"address": b.address, "type": b.type, "owner": b.owner, "role": b.role} for b in boxes],
        "truncated": p_cut or pr_cut or s_cut or b_cut,
    }


# Text ---------------------------------------------------------------------------------------------------
def render_text(doc: dict) -> str:
    """The JSON of `describe` as a French text for a terminal: one heading per thing to configure."""
    lines: list[str] = []
    add = lines.append

    def row(label: str, value: Any) -> None:
        if value not in (None, "", []):
            add(f"  {label:<28} {value}")

    urls = doc["urls"]
    add(f"Configurer votre DPI — banc mockbench {doc['version']}, scénario {doc['scenario'] or '(aucun)'}, "
        f"TLS {'activé' if doc['tls'] else 'désactivé'}")
    add("")
    add("Banc")
    row("Tableau de bord", urls["dashboard"])
    row("API de contrôle", urls["control"] + (" (jeton de contrôle exigé)" if urls["control_token_required"] else ""))
    row("URL publique (navigateur)", urls["http"])
    row("URL publique HTTPS", urls["https"])
    if urls["backchannel"] != urls["http"] or (urls["https"] and urls["backchannel_https"] != urls["https"]):
        row("Canal arrière (serveurs)", urls["backchannel"])
        row("Canal arrière HTTPS", urls["backchannel_https"] if urls["https"] else None)
    add("")
    dmp = doc["dmp"]
    add("DMP (SOAP 1.2, WS-Addressing, VIHF signé)" + (" — HTTP simple refusé : utiliser HTTPS avec un certificat "
                                                       "client" if dmp["plain_http_refused"] else ""))
    for s in dmp["services"]:
        row(s["service"], s["https"] or s["http"])
        row("  WSDL", s["wsdl_https"] or s["wsdl"])
        if s["https"] and not dmp["plain_http_refused"]:
            row("  en HTTP", s["http"])
    add("")
    for issuer in doc["oidc"]:
        add(f"{issuer['title']} (OIDC)")
        for side in ("https", "http"):
            u = issuer["urls"].get(side)
            if not u:
                continue
            suffix = " (HTTPS)" if side == "https" else (" (HTTP)" if "https" in issuer["urls"] else "")
            row("Émetteur (issuer)" + suffix, u["issuer"])
            row("Découverte" + suffix, u["discovery"])
            row("Autorisation (navigateur)" + suffix, u["authorization_endpoint"])
            row("Jeton" + suffix, u["token_endpoint"])
            row("Userinfo" + suffix, u["userinfo_endpoint"])
            row("JWKS" + suffix, u["jwks_uri"])
            row("Introspection" + suffix, u["introspection_endpoint"])
            row("CIBA" + suffix, u["backchannel_authentication_endpoint"])
        row("Portées (scopes)", " ".join(issuer["scopes"]))
        row("acr_values", issuer["acr"])
        for c in issuer["clients"]:
            row("Client", f"client_id={c['client_id']}" + (f" client_secret={c['client_secret']}"
                                                            if c["client_secret"] else "")
                + f" ({', '.join(c['auth_methods'])})")
            row("  redirect_uri", ", ".join(c["redirect_uris"]))
        add("")
    a = doc["annuaire"]
    add("Annuaire Santé (FHIR R4, API V2)")
    row("Base", a["base_https"] or a["base"])
    if a["base_https"]:
        row("Base en HTTP", a["base"])
    row("En-tête de clé d'API", f"{a['api_key_header']}: {' | '.join(a['api_keys'])}")
    add("")
    pfi = doc["pfi"]
    add("PFI (HL7 v2 sur MLLP)")
    row("Envoi des messages du DPI", f"{pfi['host']}:{pfi['port']}")
    row("Écoute MLLP du DPI (ZAM)", pfi["dpi_listener"] or "aucune (mockbench up --dpi-mllp HÔTE:PORT, ou "
        "PUT /_bench/pfi/dpi)")
    add("")
    mss = doc["mss"]
    add("MSSanté (SMTP, IMAP)")
    smtp, imap = mss["smtp"], mss["imap"]
    row("SMTP", f"{smtp['host']}:{smtp['port']}" + (" STARTTLS" + (" obligatoire" if smtp["starttls_required"]
                                                                    else "") if smtp["starttls"] else ""))
    row("IMAP", f"{imap['host']}:{imap['port']}" + (" STARTTLS" if imap["starttls"] else ""))
    if not smtp["auth_in_clear"]:
        row("Authentification", "jamais en clair : après STARTTLS seulement")
    for rule in mss["auth_rules"]:
        row("Règle", rule)
    add("")
    cert = doc["certificates"]
    add("Certificats")
    row("Dossier", cert["folder"])
    row("Autorité (ca.crt)", cert["ca"])
    row("Serveur", cert["server"])
    for c in cert["clients"]:
        row(f"Client {c['name']}", f"{c['cert']} + {c['key']}")
        row("  sujet", c["subject"] + (f", courriel {c['email']}" if c.get("email") else ""))
        row("  PKCS#12", c["p12"])
    for s in cert["signing"]:
        row(f"Cachet VIHF {s['idnst']}", f"{s['cert']} + {s['key']}")
        row("  PKCS#12", s["p12"])
    row("Mot de passe PKCS#12", cert["p12_password"])
    row("Autres ancres VIHF", ", ".join(cert["vihf_trust_anchors"]))
    row("Attention", cert["problem"])
    add("")
    ids = doc["identities"]
    add("Identités du monde chargé" + (" (listes coupées)" if ids["truncated"] else ""))
    if ids["patients"]:
        add("  Patients (INS, OID, traits)")
        for p in ids["patients"]:
            add(f"    {p['id']}: {p['ins']} ({p['ins_oid']}) {p['family_name']} {p['given_name']}, né(e) le "
                f"{p['birth_date']}, sexe {p['sex']}, DMP {p['dmp']}")
    if ids["professionals"]:
        add("  Professionnels (IDNPS, RPPS)")
        for p in ids["professionals"]:
            add(f"    {p['id']}: IDNPS {p['idnps']}" + (f", RPPS {p['rpps']}" if p["rpps"] else "")
                + f", {p['given_name']} {p['family_name']}, profession {p['profession']}"
                + (f", structure {p['structure']}" if p["structure"] else "")
                + (f", {p['mssante']}" if p["mssante"] else ""))
    if ids["structures"]:
        add("  Structures (FINESS, IDNST)")
        for s in ids["structures"]:
            add(f"    {s['id']}: FINESS {s['finess']}" + (f" (EJ {s['finess_ej']})" if s["finess_ej"] else "")
                + f", IDNST {s['idnst']}, {s['name']}")
    if ids["mailboxes"]:
        add("  Boîtes aux lettres MSSanté")
        for b in ids["mailboxes"]:
            add(f"    {b['address']} ({b['type']}, {b['owner'] or '-'}, {b['role']})")
    if not any(ids[k] for k in ("patients", "professionals", "structures", "mailboxes")):
        add("  (monde vide : chargez un scénario)")
    return "\n".join(lines) + "\n"
