"""The DMP door: the DMP web services over SOAP 1.2 and WS-Addressing, MTOM where the real one uses it.

Wire formats live beside this file (soap.py: envelope, WS-A, MTOM, faults; vihf/: the security token;
actions.py: the WS-Addressing Actions; hl7v3.py: TD0.x and TD1.6 bodies) and in formats/ebrim/ (XDS
metadata); the rules are the world's. This module routes a request by its WS-Addressing Action, makes one world call in one transaction, journals the exchange in
that transaction and renders the answer after it committed.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request
from lxml import etree

from ...formats import ebrim
from ...formats.times import dtm
from ...world import errors
from ...world.faults import Fired
from ...world.journal import finding
from ...world.model import Actor, Document
from ...world.store import UNAVAILABLE, NeedsWrite, Tx
from ..context import DoorContext, HttpDoor
from ..faults import render as render_network
from . import actions as wsa
from . import hl7v3
from .errors import fault_code, registry_code, unavailable_fault
from .soap import (
    SoapFault,
    SoapLimits,
    SoapRequest,
    parse_request,
    render_fault,
    render_response,
    xop_include,
)
from .vihf import TokenCache, Vihf, VihfError, actor_for

if TYPE_CHECKING:
    from ...config import Config

log = logging.getLogger("mockbench.dmp")

PREFIX = "/si-dmp-server/v2/services"
SERVICES = ("patients", "habilitations", "patientsSpecific", "registry", "repository")
REPOSITORY_ID = "1.2.250.1.213.4.1.1.1.2"   # the DMP's test repository (DOMAIN.md)
RENDER_CACHE = 4096                         # rendered ExtrinsicObjects kept (a few KB each)
# Operations computed on a read snapshot, out of the write transaction, which then only checks that the world
# did not change meanwhile, writes what the handler left in `Call.later` and journals (issue 21, point 3). Only
# in a world shared by several processes (Store.shared), where a shorter transaction lets the other process
# work: one process gains nothing from it (its threads share one interpreter) and would pay the snapshot.
SNAPSHOT_OPERATIONS = frozenset({"TD3.1"})
STATUS_URNS = {
    "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved": "approved",
    "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated": "deprecated",
    "urn:asip:ci-sis:2010:StatusType:Archived": "archived",
    "urn:asip:ci-sis:2010:StatusType:Deleted": "deleted",
}


@dataclass
class Call:
    """What a handler gets: the open transaction, the request, who acts, on which patient."""

    tx: Tx
    request: SoapRequest
    vihf: Vihf
    actor: Actor
    patient: str                     # the patient's world id, from the VIHF resource-id ("" if unknown)
    findings: list[dict] = field(default_factory=list)
    world_findings: list[dict] = field(default_factory=list)   # the world operations', journaled after these
    # On a snapshot (SNAPSHOT_OPERATIONS): the writes the handler leaves to the write transaction, in order;
    # None in a write transaction, where the handler writes them itself.
    later: list[Callable[[Tx], None]] | None = None


@dataclass
class Early:
    """A request computed on a snapshot: what its write transaction journals if the world did not change."""

    call: Call
    outcome: Outcome
    answer: tuple[int, str, bytes]
    mark: tuple[str, int] | None


@dataclass
class Outcome:
    action: str                      # WS-A Action of the answer
    body: etree._Element | None
    operation: str
    verdict: str = "accepted"
    code: str | None = None
    document: str | None = None
    attachments: dict[str, bytes] = field(default_factory=dict)
    mtom: bool = False
    fault: SoapFault | None = None   # a refusal answered as a SOAP Fault (non-XDS services)
    # TD3.1's entries, already serialized, and the marker text of `body` they replace (see _splice_entries)
    entries: tuple[str, list[bytes]] | None = None


Handler = Callable[["DmpDoor", Call], Outcome]


def build(context: DoorContext, config: Config) -> DmpDoor:
    """The door from `[doors.dmp]`: accept_unknown_professionals, check_signatures, accept_plain_http (the
    bench reads vihf_trust_anchors into the context's trust anchors)."""
    settings = config.doors.get("dmp", {})
    return DmpDoor(context, accept_unknown_professionals=bool(settings.get("accept_unknown_professionals")),
                   check_signatures=bool(settings.get("check_signatures", True)),
                   accept_plain_http=bool(settings.get("accept_plain_http")))


class DmpDoor(HttpDoor):
    name = "dmp"
    prefix = PREFIX
    services = SERVICES

    def __init__(self, context: DoorContext, *, limits: SoapLimits | None = None,
                 accept_unknown_professionals: bool = False, trust_anchors: Callable[[], bytes] | None = None,
                 check_signatures: bool = True, accept_plain_http: bool = False) -> None:
        super().__init__(context)
        self.limits = limits or SoapLimits()
        self.accept_unknown = accept_unknown_professionals
        # The VIHF's signature by the structure's seal certificate is required [trans-cda-r2/mapping.md, VIHF
        # table, //Assertion/ds:Signature]: unsigned or not chaining to a trust anchor is DMPInvalidCertificate.
        # check_signatures = false (lenient, a DPI's first day) turns that refusal into a warning finding.
        # `trust_anchors` gives the anchors' PEM, read when first needed (the bench's PKI is made lazily).
        self.check_signatures = check_signatures
        self.trust_anchors = trust_anchors or context.trust_anchors
        # With TLS on, the plain-HTTP door is refused (the real DMP has none) unless accept_plain_http.
        self.accept_plain_http = accept_plain_http
        self._render_cache: OrderedDict[tuple, bytes] = OrderedDict()
        self._render_lock = threading.Lock()   # requests on snapshots render side by side
        self._tokens = TokenCache()   # a VIHF sent again is not parsed nor verified again (issue 21)
        # WS-A Action -> (service, operation as journaled, handler)
        self.routes: dict[str, tuple[str, str, Handler]] = {
            wsa.ACTION_TD02_REQUEST: ("patients", "TD0.2", DmpDoor.td02),
            wsa.ACTION_TD03_REQUEST: ("habilitations", "TD0.3", DmpDoor.td03),
            wsa.ACTION_TD16_REQUEST: ("habilitations", "TD1.6", DmpDoor.td16),
            wsa.ACTION_TD04_REQUEST: ("patientsSpecific", "TD0.4", DmpDoor.td04),
            # the Actions of the ANS C# kit's WSDL, which some DPI send
            wsa.ACTION_TD03_KIT: ("habilitations", "TD0.3", DmpDoor.td03),
            wsa.ACTION_TD16_KIT: ("habilitations", "TD1.6", DmpDoor.td16),
            wsa.ACTION_TD21_REQUEST: ("repository", "TD2.1", DmpDoor.td21),
            wsa.ACTION_TD31_REQUEST: ("registry", "TD3.1", DmpDoor.td31),
            wsa.ACTION_TD32_REQUEST: ("repository", "TD3.2", DmpDoor.td32),
            wsa.ACTION_TD33_REQUEST: ("registry", "TD3.3", DmpDoor.td33),
        }

    def endpoints(self) -> dict[str, Any]:
        """Its section of /_bench/endpoints: each service's address and WSDL, on the back-channel bases (a
        server calls them)."""
        urls = self.urls
        https = urls.https_url
        back, back_https = urls.backchannel_url(False), urls.backchannel_url(True)
        services = []
        for name in SERVICES:
            services.append({
                "service": name,
                "http": f"{back}{PREFIX}/{name}", "wsdl": f"{back}{PREFIX}/{name}?wsdl",
                "https": f"{back_https}{PREFIX}/{name}" if https else None,
                "wsdl_https": f"{back_https}{PREFIX}/{name}?wsdl" if https else None,
            })
        return {"services": services, "soap": "1.2", "ws_addressing": True, "vihf_signed": self.check_signatures,
                "plain_http_refused": self.context.tls is not None and not self.accept_plain_http}

    def blueprint(self) -> Blueprint:
        bp = Blueprint("dmp", __name__)
        bp.add_url_rule("/<service>", "service", self._http, methods=["POST", "GET"])
        return bp

    # HTTP ---------------------------------------------------------------------------------------
    def _http(self, service: str) -> Response:
        if request.method == "GET":
            return self._wsdl(service)
        body = request.get_data(cache=False)
        transport: list[dict] = []
        if request.environ.get("wsgi.url_scheme") != "https" and self.context.tls is not None:
            https = (self.urls.https_url or "") + PREFIX + "/" + service
            if not self.accept_plain_http:
                # The DMP is served over mutual TLS only (DOMAIN.md, "DMP": AUTH_CLI certificate); a plain-HTTP
                # door on a bench that has TLS would let a DPI skip the certificate it needs in production.
                fault = SoapFault("Sender", "DMPInvalidCertificate", "plain HTTP: the DMP is served over HTTPS "
                                  f"with a client certificate (mutual TLS) only; call {https}", status=403)
                self._journal_fault("UNKNOWN", fault, body, None)
                status, content_type, payload = render_fault(None, fault)
                return Response(payload, status=status, content_type=content_type)
            transport.append(finding("DMP/TLS", f"called over plain HTTP, which the real DMP does not serve "
                                     f"(accepted: accept_plain_http = true); use {https}", "warning",
                                     fr=f"appelé en HTTP simple, que le vrai DMP ne sert pas (accepté : accept_plain_http = true) ; utilisez {https}"))
        if request.environ.get("wsgi.url_scheme") == "https" and not request.environ.get("SSL_CLIENT_CERT"):
            # The real DMP takes only mutual TLS with an AUTH_CLI certificate; the TLS layer lets the handshake
            # through without one so that the refusal is a DMP fault, not a bare connection reset.
            fault = SoapFault("Sender", "DMPInvalidCertificate", "no client certificate: the DMP needs mutual TLS "
                              "with an AUTH_CLI certificate (mockbench pki init makes one)", status=403)
            self._journal_fault("UNKNOWN", fault, body, None)
            status, content_type, payload = render_fault(None, fault)
            return Response(payload, status=status, content_type=content_type)
        fired: list[Fired] = []
        status, content_type, payload = self.handle(service, request.headers.get("Content-Type", ""), body,
                                                    soap_action=request.headers.get("SOAPAction", "").strip('"'),
                                                    transport_findings=transport, faults=fired)
        response = Response(payload, status=status, content_type=content_type)
        if fired and fired[0].kind == "http_503" and fired[0].get("retry_after") is not None:
            response.headers["Retry-After"] = str(fired[0].get("retry_after"))
        return render_network(self.world.faults, fired[0] if fired else None, response, request.environ)

    def _wsdl(self, service: str) -> Response:
        from .wsdl import wsdl_for  # the WSDLs are read only when asked for

        if service not in SERVICES or "wsdl" not in {k.lower() for k in request.args}:
            return Response(f"unknown service {service}: POST SOAP 1.2 here, or GET ?wsdl\n", status=404,
                            content_type="text/plain")
        with self.world.transaction() as tx:
            self.world.journal.append(tx, "dmp", "WSDL", actor=request.remote_addr or "", raw=service)
        # The address of the port the WSDL was fetched on: fetched over HTTPS, a WSDL-driven client must call
        # over HTTPS (where the client certificate is checked), not the plain-HTTP port (issue 14 point 6).
        https = bool(request.environ.get("wsgi.url_scheme") == "https" and self.urls.https_url)
        base = self.urls.backchannel_url(https) or self.urls.url   # a server calls the services: the back-channel base
        return Response(wsdl_for(service, base + PREFIX + "/" + service), content_type="text/xml")

    # SOAP ---------------------------------------------------------------------------------------
    def handle(self, service: str, content_type: str, body: bytes, *, soap_action: str = "",
               transport_findings: list[dict] | None = None,
               faults: list[Fired] | None = None) -> tuple[int, str, bytes]:
        """One SOAP request -> (HTTP status, content type, body). A fault rule that applies (world/faults.py)
        is asked once the operation, the actor and the patient are known, before any change: a refusing one
        is answered here and nothing is applied; it is appended to `faults` for the HTTP layer to render."""
        soap: SoapRequest | None = None
        operation = "UNKNOWN"
        try:
            if service not in SERVICES:
                raise SoapFault("Sender", "DMPUnknownService", f"no DMP service {service}; services: "
                                f"{', '.join(SERVICES)}", status=404)
            soap = parse_request(content_type, body, self.limits, soap_action=soap_action)
            route = self.routes.get(soap.action)
            if route is None:
                raise SoapFault("Sender", "DMPUnknownAction", f"unknown WS-Addressing Action {soap.action!r} for "
                                f"the {service} service")
            expected, operation, handler = route
            if expected != service:
                raise SoapFault("Sender", "DMPWrongService", f"{soap.action} is served at {PREFIX}/{expected}, "
                                f"not {PREFIX}/{service}")
            found_before = [*(transport_findings or ()),
                            *(finding("DMP/WS-Addressing", note, "info",
                                      fr=f"WS-Addressing : {note}") for note in soap.notes)]
            try:
                token = self._tokens.key(soap.security)
                vihf = self._tokens.vihf(soap.security, token)
                problem, signed = self._tokens.problem(soap.security, self.trust_anchors(), token)
                if problem:
                    reason = (f"{problem}: the DMP requires the VIHF signed (XML-DSig) by the structure's seal "
                              "certificate, trusted by the DMP (trans-cda-r2/mapping.md, VIHF table, ds:Signature)")
                    if self.check_signatures:
                        raise VihfError("DMPInvalidCertificate", reason)
                    found_before.append(finding("VIHF/Signature", f"{reason}; accepted: check_signatures = false",
                                                "warning",
                                                fr=f"{problem} : le DMP exige le VIHF signé (XML-DSig) par le certificat cachet de la structure, reconnu par le DMP (trans-cda-r2/mapping.md, table du VIHF, ds:Signature) ; accepté : check_signatures = false"))
                else:
                    found_before.extend(self._tokens.signer_findings(soap.security, vihf, signed))
            except VihfError as exc:
                raise SoapFault("Sender", exc.subcode, exc.reason + (f" ({exc.attribute})" if exc.attribute and
                                                                     exc.attribute not in exc.reason else "")) from None
            early = (self._on_snapshot(soap, vihf, operation, handler, found_before)
                     if operation in SNAPSHOT_OPERATIONS and self.world.store.shared else None)
            with self.world.transaction() as tx:
                if early is not None and not self.world.store.unchanged(tx, early.mark):
                    early = None   # the world changed since the snapshot: computed again, here
                if early is None:
                    call = self._call(tx, soap, vihf, found_before)
                else:
                    call = early.call
                    call.tx = tx
                fired = self.world.faults.decide(tx, "dmp", operation, patient=call.patient or None,
                                                 patient_ins=vihf.patient_ins or None, actor=vihf.name_id)
                if fired is not None and faults is not None:
                    faults.append(fired)
                if fired is not None and fired.refusing:
                    return self._injected(tx, soap, operation, fired, call, body)
                if early is None:
                    outcome, answer = self._decide(call, soap, operation, handler)
                else:
                    outcome, answer = early.outcome, early.answer
                    for write in early.call.later or ():
                        write(tx)
                self.world.journal.append(
                    tx, "dmp", outcome.operation, actor=vihf.name_id, patient=call.patient or None,
                    patient_ins=None if call.patient else vihf.patient_ins or None, document=outcome.document,
                    verdict=outcome.verdict, code=outcome.code, findings=call.findings, raw=body,
                    ref=soap.message_id, fault=fired.rule if fired else None, response=answer[2])
            return answer
        except UNAVAILABLE as exc:   # SOAP 1.2 part 1 5.4.6: Receiver, the same message may succeed later
            return render_fault(soap, unavailable_fault(exc), version=soap.version if soap else "1.2",
                                mtom=operation == "TD3.2")
        except Exception as exc:  # the one place where an unexpected error becomes a Receiver fault
            if not isinstance(exc, SoapFault):
                log.exception("DMP door: unexpected error on %s", operation)
                exc = SoapFault("Receiver", "DMPInternalError", f"the bench failed on this request: "
                                f"{type(exc).__name__}: {exc}")
            fault = exc
            answer = render_fault(soap, fault, version=soap.version if soap else (fault.version or "1.2"),
                                  mtom=operation == "TD3.2")
            try:
                self._journal_fault(operation, fault, body, soap, response=answer[2])
            except UNAVAILABLE as full:   # not journaled, so not answered: the client sends it again later
                fault = unavailable_fault(full)
                answer = render_fault(soap, fault, version=soap.version if soap else (fault.version or "1.2"),
                                      mtom=operation == "TD3.2")
            return answer

    def _call(self, tx: Tx, soap: SoapRequest, vihf: Vihf, found_before: list[dict]) -> Call:
        """Who acts on which patient, with the findings so far; a minor's secret connection noted."""
        try:
            actor, found = actor_for(self.world, tx, vihf, accept_unknown=self.accept_unknown)
        except VihfError as exc:
            raise SoapFault("Sender", exc.subcode, exc.reason) from None
        call = Call(tx, soap, vihf, actor, self._patient_id(tx, vihf), [*found_before, *vihf.findings, *found])
        secret = vihf.confidentiality == "INVISIBLE_REPRESENTANTS_LEGAUX"
        if call.patient:    # a minor's secret connection is read from every request (EX_0.1-1100)
            call.world_findings.extend(self.world.dmp.note_connection(tx, actor, call.patient, secret=secret))
        elif secret:
            call.findings.append(finding("DMP/EX_0.1-1100", "a minor's secret connection", "info",
                                         fr="connexion secrète d'un mineur"))
        return call

    def _decide(self, call: Call, soap: SoapRequest, operation: str,
                handler: Handler) -> tuple[Outcome, tuple[int, str, bytes]]:
        """The handler's outcome and the answer rendered from it."""
        try:
            outcome = handler(self, call)
        except errors.WorldError as exc:
            outcome = self._world_fault(call, operation, exc)
        except hl7v3.Td0Error as exc:   # a malformed TD0.x / TD1.6 body: a Fault, not a 500
            outcome = Outcome("", None, operation, verdict="refused", code=exc.subcode,
                              fault=SoapFault("Sender", exc.subcode, exc.reason))
        call.findings.extend(call.world_findings)
        # The answer is rendered before it is journaled, so that the entry keeps it (issue 18 point 12).
        if outcome.fault is not None:
            return outcome, render_fault(soap, outcome.fault, version=soap.version, mtom=outcome.mtom)
        content_type_out, payload = render_response(soap, outcome.action, outcome.body,
                                                    attachments=outcome.attachments, mtom=outcome.mtom)
        if outcome.entries is not None:
            payload = _splice_entries(payload, *outcome.entries)
        return outcome, (200, content_type_out, payload)

    def _on_snapshot(self, soap: SoapRequest, vihf: Vihf, operation: str, handler: Handler,
                     found_before: list[dict]) -> Early | None:
        """The request computed on a read snapshot, out of the write transaction (issue 21, point 3): the same
        calls as in the write transaction, the handler leaving its writes in `Call.later`. None when it needs
        to write anything else (a secret connection that starts or ends, an actor unknown) or fails before
        its handler: then the write transaction computes it, as for any other operation. Rendering here is
        what the write transaction no longer holds."""
        try:
            with self.world.read_snapshot() as tx:
                try:
                    call = self._call(tx, soap, vihf, found_before)
                except SoapFault:
                    return None
                call.later = []
                outcome, answer = self._decide(call, soap, operation, handler)
                return Early(call, outcome, answer, tx.mark)
        except NeedsWrite:
            return None
        except Exception:   # computed (and logged) again in the write transaction, exactly as before
            return None

    def _injected(self, tx: Tx, soap: SoapRequest, operation: str, fired: Fired, call: Call,
                  body: bytes) -> tuple[int, str, bytes]:
        """A refusing fault rule: journaled in `tx` with nothing applied, answered as the DMP fails. A SOAP 1.2
        Receiver fault says the same message may succeed later (SOAP 1.2 part 1, 5.4.6); 503 is what a
        front-end in trouble answers before the service (RFC 9110, 15.6.4); reset and timeout get no answer
        (protocols/faults.py)."""
        code = f"FAULT_{fired.kind.upper()}"
        self.world.journal.append(
            tx, "dmp", operation, actor=call.vihf.name_id, patient=call.patient or None,
            patient_ins=None if call.patient else call.vihf.patient_ins or None, verdict="error", code=code,
            findings=[finding("FAULT", f"injected fault {fired.rule} ({fired.kind}): nothing was applied", "info",
                              fr=f"panne injectée {fired.rule} ({fired.kind}) : rien n'a été appliqué")],
            raw=body, ref=soap.message_id, fault=fired.rule)
        if fired.kind == "soap_fault":
            return render_fault(soap, SoapFault("Receiver", fired.params["subcode"], fired.params["reason"]),
                                version=soap.version, mtom=operation == "TD3.2")
        if fired.kind == "http_503":
            return 503, "text/plain; charset=utf-8", b"503 Service Unavailable: the DMP is temporarily unavailable\n"
        return 500, "text/plain", b""   # reset, timeout: never sent (protocols/faults.py drops the connection)

    def _world_fault(self, call: Call, operation: str, exc: errors.WorldError) -> Outcome:
        """A world refusal on a non-XDS service: a SOAP Fault (XDS handlers answer RegistryErrors themselves)."""
        return Outcome("", None, operation, verdict="refused", code=exc.code,
                       fault=SoapFault("Sender", fault_code(exc), exc.message))

    def routing_fault(self, status: int, message: str) -> Response:
        """A routing 404/405 under the DMP's prefix, answered on the SOAP wire."""
        subcodes = {404: "DMPNotFound", 405: "DMPMethodNotAllowed", 413: "DMPTooLarge"}
        fault = SoapFault("Sender", subcodes.get(status, "DMPInvalidRequest"), message, status=status)
        code, content_type, payload = render_fault(None, fault)
        self._journal_fault("UNKNOWN", fault, b"", None, response=payload)
        return Response(payload, status=code, content_type=content_type)

    def _journal_fault(self, operation: str, fault: SoapFault, body: bytes, soap: SoapRequest | None, *,
                       response: bytes | None = None) -> None:
        with self.world.transaction() as tx:
            self.world.journal.append(tx, "dmp", operation, actor=(request.remote_addr or "") if request else "",
                                      verdict="refused", code=fault.journal_code,
                                      findings=[finding("DMP/SOAP", fault.reason, "error",
                                                        fr=f"faute SOAP renvoyée : {fault.reason}")], raw=body,
                                      ref=soap.message_id if soap else None, response=response)

    def _patient_id(self, tx: Tx, vihf: Vihf) -> str:
        if not vihf.patient_ins:
            return ""
        try:
            return self.world.directory.patient(tx, vihf.patient_ins).id
        except errors.UnknownPatient:
            return ""

    def _require_patient(self, call: Call) -> str:
        if not call.patient:
            raise errors.UnknownPatient(f"no patient has the INS {call.vihf.patient_ins or '(none)'} of the VIHF "
                                        "resource-id")
        return call.patient

    # TD0.x, TD1.6 -------------------------------------------------------------------------------
    def td02(self, call: Call) -> Outcome:
        if hl7v3.reason_code(call.request.body) == "CNSLT_DATA":   # same Action as TD0.2 (DOMAIN.md section 1)
            return Outcome("", None, "TD1.3a", verdict="refused", code="DMPUnknownAction", fault=SoapFault(
                "Sender", "DMPUnknownAction", "PRPA_IN201307UV02 with reasonCode CNSLT_DATA is TD1.3a (read a "
                "DMP), which the bench does not serve: the patients service answers reasonCode TEST_EXST (TD0.2)"))
        req = hl7v3.parse_existence(call.request.body)
        tx, world = call.tx, self.world
        facts: dict[str, Any] = {"dmp_state": "absent", "closed_at": None, "close_reason": None,
                                 "authorization": "NON_EXISTE", "authorization_reason": None, "oppositions": [],
                                 "internet_account": False, "attached_ens": False, "patient": None}
        try:
            patient = world.directory.patient(tx, req.ins)
        except errors.UnknownPatient:
            patient = None
        if patient is not None:
            auth = world.dmp.authorization_status(tx, patient, call.actor)
            facts.update(dmp_state=patient.dmp, closed_at=patient.dmp_closed_at, close_reason=patient.dmp_close_reason,
                         authorization=auth.status, authorization_reason=auth.reason,
                         oppositions=list(patient.oppositions),
                         patient={"family": patient.family_name, "given": patient.given_name,
                                  "birth_date": patient.birth_date, "sex": patient.sex})
        body = hl7v3.render_existence(req, hl7v3.ExistenceFacts(**facts), message_id=str(uuid.uuid4()),
                                      now=_hl7_now(world))
        return Outcome(wsa.ACTION_TD02_RESPONSE, body, "TD0.2")

    def td03(self, call: Call) -> Outcome:
        req = hl7v3.parse_set_authorization(call.request.body)
        patient = self._require_patient(call)
        if req.action == "AJOUT":
            self.world.dmp.set_authorization(call.tx, call.actor, patient, status="VALIDE", professional=call.actor.id)
        else:
            self.world.dmp.set_authorization(call.tx, call.actor, patient, status="NON_EXISTE",
                                             professional=call.actor.id, reason="removed by the professional")
        return Outcome(wsa.ACTION_TD03_RESPONSE, hl7v3.render_status("DMPOk"), "TD0.3")

    def td04(self, call: Call) -> Outcome:
        req = hl7v3.parse_patient_list(call.request.body)
        tx, world, listed = call.tx, self.world, []
        for patient in world.directory.patients(tx):
            if patient.dmp != "active":
                continue
            auth = world.dmp.authorization_status(tx, patient, call.actor)
            if auth.status != "VALIDE":
                continue
            docs = world.dmp.documents(tx, patient.id)
            last_document = max((d.submission_time for d in docs), default=None)
            since = last_document if req.date_type == "LASTDOC" else auth.since
            if req.date_from and (since is None or since < req.date_from):
                continue
            listed.append(hl7v3.ListedPatient(
                ins=patient.ins, ins_oid=patient.ins_oid, family=patient.family_name, given=patient.given_name,
                birth_date=patient.birth_date, sex=patient.sex, last_authorization=auth.since,
                last_document=last_document))
        return Outcome(wsa.ACTION_TD04_RESPONSE, hl7v3.render_patient_list(listed), "TD0.4")

    def td16(self, call: Call) -> Outcome:
        req = hl7v3.parse_list_authorizations(call.request.body)
        patient = self._require_patient(call)
        tx, world, items = call.tx, self.world, []
        world.dmp.check_access(tx, call.actor, world.directory.patient(tx, patient))
        for auth in world.dmp.authorizations(tx, patient):
            if auth.status not in req.statuses:
                continue
            if auth.subject_kind == "professional":
                prof = world.directory.professional(tx, auth.subject)
                items.append(hl7v3.ListedAuthorization(
                    professional_idnps=prof.idnps, family=prof.family_name, given=prof.given_name, status=auth.status,
                    since=auth.since, until=auth.until, structure=prof.structure or None))
            else:
                structure = world.directory.structure(tx, auth.subject)
                items.append(hl7v3.ListedAuthorization(
                    professional_idnps="", family=structure.name, given="", status=auth.status, since=auth.since,
                    until=auth.until, structure=structure.idnst))
        return Outcome(wsa.ACTION_TD16_RESPONSE, hl7v3.render_authorization_list(items), "TD1.6")

    # XDS ----------------------------------------------------------------------------------------
    def _xds_failure(self, action: str, operation: str, exc: errors.WorldError | ebrim.RegistryErrors,
                     *, query: bool = False, retrieve: bool = False) -> Outcome:
        if isinstance(exc, ebrim.RegistryErrors):
            errs, code = exc.errors, exc.errors[0].error_code if exc.errors else "XDSRegistryError"
        else:
            # codeContext names the world's rule and says why, so that the refusal explains itself on the wire
            errs, code = [ebrim.RegistryError(registry_code(exc), exc.message,
                                              code_context=f"{exc.code}: {exc.message}")], exc.code
        if query:
            body = ebrim.render_query_response([], status="Failure", errors=errs)
        elif retrieve:
            body = ebrim.render_retrieve_response([], errs)
        else:
            body = ebrim.render_registry_response(errs)
        return Outcome(action, body, operation, verdict="refused", code=code, mtom=retrieve)

    def td21(self, call: Call) -> Outcome:
        action = wsa.ACTION_TD21_RESPONSE
        try:
            submission = ebrim.parse_provide_and_register(call.request.body)
        except ebrim.RegistryErrors as exc:
            call.findings.extend(exc.findings)
            return self._xds_failure(action, "TD2.1", exc)
        call.findings.extend(submission.findings)   # the quirks the reader accepted
        tx, dmp = call.tx, self.world.dmp
        replacements = dict(submission.replacements())
        signatures = set(submission.signatures())
        fed: list[Document] = []
        try:
            patient = self._require_patient(call)
            with tx.savepoint():  # XDS is all or nothing: one refused entry refuses the submission
                for entry in submission.documents:
                    if entry.symbolic_id in signatures:
                        continue
                    if entry.patient_ins and entry.patient_ins != call.vihf.patient_ins:
                        raise errors.PatientMismatch(f"the entry's patient {entry.patient_ins} is not the VIHF's "
                                                     f"{call.vihf.patient_ins}")
                    element = submission.document_elements.get(entry.document_ref or entry.symbolic_id)
                    content = call.request.binary(element) if element is not None else b""
                    meta = self._meta(call, entry, submission, signatures)
                    target = replacements.get(entry.symbolic_id)
                    if target:
                        fed.append(self._replace(call, patient, target, meta, content))
                    else:
                        fed.append(dmp.submit(tx, call.actor, patient, meta, content, cause=call.request.message_id,
                                              findings=call.world_findings))
        except (errors.WorldError, ebrim.RegistryErrors) as exc:
            return self._xds_failure(action, "TD2.1", exc)
        return Outcome(action, ebrim.render_registry_response([]), "TD2.1",
                       document=fed[0].unique_id if fed else None)

    def _replace(self, call: Call, patient: str, target: str, meta: dict, content: bytes) -> Document:
        """An RPLC association whose target the registry does not hold is refused with
        UnresolvedReferenceException: IHE ITI TF-3 4.2.4.1, Table 4.2.4.1-2 ("The recipient cannot resolve
        an entryUUID reference in the transaction"), the registry's answer when a Register's association
        (ITI TF-2 3.42.4.1.3.5, document replacement) names no entry it has. XDSDocumentUniqueIdError is the
        Retrieve Document Set's (ITI-43) error for a document it cannot return, not a registration's."""
        try:
            return self.world.dmp.replace(call.tx, call.actor, patient, target, meta, content,
                                          cause=call.request.message_id, findings=call.world_findings)
        except errors.UnknownDocument as exc:
            raise ebrim.RegistryErrors([ebrim.RegistryError(
                "UnresolvedReferenceException", f"the RPLC association targets {target}, which is no entry of "
                f"this DMP ({exc.message})", location=target)]) from None

    def _meta(self, call: Call, entry: ebrim.DocumentEntry, submission: ebrim.Submission,
              signatures: set[str]) -> dict:
        meta = {k: v for k, v in entry.meta.items() if v not in (None, "", [])}
        meta["unique_id"] = entry.unique_id
        meta.setdefault("content_type", submission.submission_set.get("content_type", ""))
        author = meta.pop("author", "")
        try:
            meta["author"] = self.world.directory.professional(call.tx, author).id if author else call.actor.id
        except errors.UnknownProfessional:
            meta["author"] = call.actor.id
            call.findings.append(finding("DMP/TD2.1", f"the author {author} is not a professional of the world: the "
                                         "document is recorded as the caller's",
                                         fr=f"l'auteur {author} n'est pas un professionnel du monde : le document est enregistré comme celui de l'appelant"))
        extra = dict(meta.get("extra") or {})
        signed_by = [e.unique_id for e in submission.documents if e.symbolic_id in signatures]
        if signed_by:
            extra["signature"] = signed_by
        meta["extra"] = extra
        known = set(Document.__dataclass_fields__)
        return {k: v for k, v in meta.items() if k in known}

    def td31(self, call: Call) -> Outcome:
        action = wsa.ACTION_TD31_RESPONSE
        try:
            query = ebrim.parse_stored_query(call.request.body)
        except ebrim.RegistryErrors as exc:
            call.findings.extend(exc.findings)
            return self._xds_failure(action, "TD3.1", exc, query=True)
        call.findings.extend(query.findings)
        operation = "TD3.1b" if query.kind == "GetDocuments" else "TD3.1"
        tx, dmp = call.tx, self.world.dmp
        try:
            patient = self._require_patient(call)
            if query.patient_ins and query.patient_ins != call.vihf.patient_ins:
                raise ebrim.RegistryErrors([ebrim.RegistryError(
                    "XDSPatientIdDoesNotMatch", f"the query's patient {query.patient_ins} is not the VIHF's "
                    f"{call.vihf.patient_ins}")])
            trace = call.later is None   # on a snapshot, the access trace is written by the write transaction
            if query.kind in ("GetDocuments", "GetDocumentsAndAssociations"):
                docs = dmp.get(tx, call.actor, patient, [*query.unique_ids, *query.entry_uuids], trace=trace,
                               findings=call.world_findings)
            elif query.kind == "FindDocuments":
                docs = dmp.find(tx, call.actor, patient, trace=trace, findings=call.world_findings,
                                **query.world_filters(professional_id=lambda idnps: self._professional_id(tx, idnps)))
            else:
                raise ebrim.RegistryErrors([ebrim.RegistryError("XDSUnknownStoredQuery",
                                                                f"the DMP does not serve the stored query {query.query_id}")])
        except (errors.WorldError, ebrim.RegistryErrors) as exc:
            return self._xds_failure(action, operation, exc, query=True)
        if call.later is not None:
            call.later.append(partial(dmp.consulted, actor=call.actor, patient_id=patient))
        if query.unsupported:
            call.findings.append(finding("DMP/TD3.1", "parameters the bench does not filter on: "
                                         + ", ".join(sorted(query.unsupported)), "info",
                                         fr="paramètres sur lesquels le banc ne filtre pas : " + ", ".join(sorted(query.unsupported))))
        patient_row = self.world.directory.patient(tx, patient)
        cx = f"{patient_row.ins}^^^&{patient_row.ins_oid}&ISO^NH"
        authors: dict[str, str] = {}   # author -> IDNPS, looked up once per request (most entries share a few)
        for d in docs:
            if d.author not in authors:
                authors[d.author] = self._idnps(tx, d.author)
        entries = [self._rendered(d, cx, query.return_type == "ObjectRef", authors[d.author]) for d in docs]
        if not entries:
            return Outcome(action, ebrim.render_query_response([]), operation)
        # The envelope is rendered around a marker, and the entries' bytes take its place: copying and
        # serializing the entries' trees was a third of a TD3.1's time. The bytes are the same.
        body = ebrim.render_query_response([])
        body.set("totalResultCount", str(len(entries)))
        marker = f"mockbench-entries-{uuid.uuid4().hex}"
        body.find(f"{{{ebrim.RIM}}}RegistryObjectList").text = marker
        return Outcome(action, body, operation, entries=(marker, entries))

    def _rendered(self, doc: Document, cx: str, object_ref: bool, idnps: str) -> bytes:
        """An entry's ExtrinsicObject as bytes, serialized as it appears in rim:RegistryObjectList, from a
        bounded cache keyed by everything the rendering reads (the whole record, so that a reset or a restored
        snapshot reusing an entryUUID cannot show a stale entry): rendering with lxml was half of a TD3.1's
        time."""
        key = (repr(doc), cx, object_ref, idnps)
        with self._render_lock:
            cached = self._render_cache.get(key)
            if cached is not None:
                self._render_cache.move_to_end(key)
                return cached
        cached = _entry_bytes(ebrim.render_extrinsic_object(doc, cx, author_idnps=idnps, object_ref=object_ref))
        with self._render_lock:
            self._render_cache[key] = cached
            if len(self._render_cache) > RENDER_CACHE:
                self._render_cache.popitem(last=False)
        return cached

    def _professional_id(self, tx: Tx, idnps: str) -> str | None:
        try:
            return self.world.directory.professional(tx, idnps).id
        except errors.UnknownProfessional:
            return None

    def _idnps(self, tx: Tx, author: str) -> str:
        try:
            return self.world.directory.professional(tx, author).idnps
        except errors.UnknownProfessional:
            return author

    def td32(self, call: Call) -> Outcome:
        action = wsa.ACTION_TD32_RESPONSE
        try:
            wanted = ebrim.parse_retrieve(call.request.body)
        except ebrim.RegistryErrors as exc:
            return self._xds_failure(action, "TD3.2", exc, retrieve=True)
        found, errs, attachments = [], [], {}
        patient = call.patient
        for repository, unique_id, _home in wanted:
            try:
                if repository and repository != REPOSITORY_ID:
                    raise ebrim.RegistryError("XDSUnknownRepositoryId", f"unknown repository {repository}")
                if unique_id.startswith("urn:uuid:"):
                    raise ebrim.RegistryError("XDSDocumentUniqueIdError",
                                              f"{unique_id} is an entryUUID: TD3.2 takes the document's uniqueId")
                doc, content = self.world.dmp.read(call.tx, call.actor, unique_id, patient_key=patient or None,
                                                   findings=call.world_findings)
            except ebrim.RegistryError as exc:
                errs.append(exc)
                continue
            except errors.WorldError as exc:
                errs.append(ebrim.RegistryError(registry_code(exc), exc.message,
                                                code_context=f"{exc.code}: {exc.message}",
                                                location=unique_id))
                continue
            found.append((repository or REPOSITORY_ID, unique_id, doc.mime_type))
            attachments[f"doc{len(found)}@mockbench"] = content
        body = ebrim.render_retrieve_response(found, errs)
        for cid, document in zip(attachments, body.iter(f"{{{ebrim.XDS_B}}}Document"), strict=False):
            xop_include(document, cid)
        verdict = "accepted" if not errs else ("refused" if not found else "accepted")
        return Outcome(action, body, "TD3.2", verdict=verdict, code=errs[0].error_code if errs else None,
                       document=found[0][1] if found else (wanted[0][1] if wanted else None),
                       attachments=attachments, mtom=True)

    def td33(self, call: Call) -> Outcome:
        action = wsa.ACTION_TD33_RESPONSE   # sic: the DMP's own answers have the hyphen
        try:
            update = ebrim.parse_update(call.request.body)
        except ebrim.RegistryErrors as exc:
            call.findings.extend(exc.findings)
            return self._xds_failure(action, "TD3.3", exc)
        call.findings.extend(update.findings)
        tx, dmp, actor = call.tx, self.world.dmp, call.actor
        operations, document = [], None
        # what the request asks for, to journal a refusal under its TD (a refused deletion is a TD3.3c)
        asked = {"TD3.3c" if STATUS_URNS.get(new) == "deleted" else "TD3.3d"
                 for _target, _original, new in update.status_changes
                 if STATUS_URNS.get(new) in ("deleted", "archived", "approved")}
        try:
            patient = self._require_patient(call)
            with tx.savepoint():
                for target, _original, new in update.status_changes:
                    status = STATUS_URNS.get(new)
                    doc = dmp.current(tx, target, self.world.directory.patient(tx, patient))
                    document = doc.unique_id
                    if status == "deleted":
                        dmp.delete(tx, actor, doc.unique_id, patient_key=patient, cause=call.request.message_id)
                        operations.append("TD3.3c")
                    elif status == "archived":
                        dmp.archive(tx, actor, doc.unique_id, patient_key=patient, cause=call.request.message_id)
                        operations.append("TD3.3d")
                    elif status == "approved" and doc.status == "archived":
                        dmp.unarchive(tx, actor, doc.unique_id, patient_key=patient, cause=call.request.message_id)
                        operations.append("TD3.3d")
                    else:
                        raise errors.InvalidStatusChange(f"the DMP does not change a document's status to {new}")
                for entry, previous in update.metadata_updates:
                    doc = dmp.current(tx, entry.unique_id, self.world.directory.patient(tx, patient))
                    document = doc.unique_id
                    if entry.lid and entry.lid != doc.lid:
                        raise errors.MetadataError(f"lid {entry.lid} is not the lid of {doc.unique_id} ({doc.lid})")
                    if previous and str(doc.version) != str(previous):
                        raise errors.NotCurrentVersion(f"PreviousVersion {previous} is not the current version "
                                                       f"{doc.version} of {doc.unique_id}")
                    operations.extend(self._confidentiality_change(call, patient, doc, entry))
        except errors.WorldError as exc:
            refused = operations[0] if operations else (asked.pop() if len(asked) == 1 and
                                                        not update.metadata_updates else "TD3.3")
            return self._xds_failure(action, refused, exc)
        operation = operations[0] if len(set(operations)) == 1 else ("TD3.3" if not operations else operations[0])
        return Outcome(action, ebrim.render_registry_response([]), operation, document=document)

    def _confidentiality_change(self, call: Call, patient: str, doc: Document, entry: ebrim.DocumentEntry) -> list[str]:
        dmp, tx, actor = self.world.dmp, call.tx, call.actor
        new = set(entry.meta.get("confidentiality") or ["N"])
        old = set(doc.confidentiality)
        done = []
        if ("MASQUE_PS" in new) != ("MASQUE_PS" in old):
            dmp.set_masked(tx, actor, doc.unique_id, "MASQUE_PS" in new, patient_key=patient,
                           cause=call.request.message_id)
            done.append("TD3.3a")
        for code, audience in (("INVISIBLE_PATIENT", "patient"),
                               ("INVISIBLE_REPRESENTANTS_LEGAUX", "legal_representatives")):
            if code in old and code not in new:
                dmp.make_visible(tx, actor, doc.unique_id, audience, patient_key=patient, cause=call.request.message_id)
                done.append("TD3.3b")
            elif code in new and code not in old:
                dmp.hide(tx, actor, doc.unique_id, audience)
        if not done:
            raise errors.NoChange(f"the new metadata of {doc.unique_id} change nothing the DMP updates "
                                  "(confidentiality codes)")
        return done


def _hl7_now(world) -> str:
    return dtm(world.clock.now())


def _entry_bytes(entry: etree._Element) -> bytes:
    """`entry` serialized as a child of rim:RegistryObjectList, whose rim namespace declaration it inherits
    (what etree.tostring(entry) alone would repeat on the entry)."""
    holder = etree.Element(f"{{{ebrim.RIM}}}RegistryObjectList", nsmap={"rim": ebrim.RIM})
    holder.append(entry)
    etree.cleanup_namespaces(holder)
    xml = etree.tostring(holder, encoding="UTF-8", xml_declaration=False)
    start = xml.index(b">") + 1
    end = xml.rindex(b"</")
    return xml[start:end]


def _splice_entries(payload: bytes, marker: str, entries: list[bytes]) -> bytes:
    """The answer with the entries in place of the marker. The marker is the last text of the envelope
    (rim:RegistryObjectList closes the body), so the last occurrence is the one: a request's MessageID
    repeated in RelatesTo comes before it."""
    head, found, tail = payload.rpartition(marker.encode("ascii"))
    if not found:
        raise RuntimeError("the TD3.1 answer lost its entries' marker")
    return b"".join([head, *entries, tail])
