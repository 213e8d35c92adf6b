"""The OpenAPI 3.1 description of the control API. Tests check every route against it, and every
response against its schema."""

from __future__ import annotations

from typing import Any

from ..scenarios.verdicts import CODES as VERDICT_CODES


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _arr(schema: dict) -> dict:
    return {"type": "array", "items": schema}


S = {"type": "string"}
NS = {"type": ["string", "null"]}
I = {"type": "integer"}  # noqa: E741
B = {"type": "boolean"}


def _obj(props: dict[str, Any], required: list[str] | None = None, extra: bool = True) -> dict:
    schema: dict[str, Any] = {"type": "object", "properties": props,
                              "required": list(props) if required is None else required}
    if not extra:
        schema["additionalProperties"] = False
    return schema


SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": S, "message": S}),
    "Health": _obj({
        "status": {"const": "ok"},
        "doors": {"type": "object", "additionalProperties": {"enum": ["up", "down"]}},
        "version": S, "ports": {"type": "object", "additionalProperties": I},
        "bound_ports": {"type": "object", "additionalProperties": I}, "state": S,
        "scenario": NS, "journal": _obj({"count": I, "bytes": I, "dropped": I}), "uptime": {"type": "number"},
    }, required=["status", "doors", "version", "ports", "state", "scenario", "journal", "uptime"]),
    "ScenarioSummary": _obj({"id": S, "title": S, "requirement": S}),
    "ScenarioDetail": _obj({"id": S, "title": S, "requirement": S, "spec": {"type": "object"}}),
    "Loaded": _obj({k: _arr(S) for k in ("structures", "professionals", "patients", "documents", "mailboxes",
                                          "transitions", "steps")} | {"scenario": NS}),
    "LoadedScenario": _obj({"id": NS, "title": S, "requirement": S, "description": NS, "source": S,
                            "transitions": _arr(_ref("Transition")), "steps": _arr(_ref("Step"))},
                           required=["id"]),
    "Patient": _obj({
        "id": S, "ins": {"type": "string", "pattern": "^[0-9]{5}([0-9]{2}|2[AB])[0-9]{8}$"}, "ins_oid": S,
        "family_name": S, "given_name": S, "birth_date": {"type": "string", "format": "date"},
        "sex": {"enum": ["M", "F"]}, "minor": B, "dmp": {"enum": ["active", "closed", "absent"]},
        "consent": _obj({"consultation": {"enum": ["IC", "INC", "NA"]},
                         "feeding_opposition": {"enum": ["INO", "IO", "NA"]}}),
        "secret_connection": B, "oppositions": _arr(S), "dmp_closed_at": NS, "dmp_close_reason": NS,
    }),
    "Document": _obj({
        "id": S, "unique_id": S, "entry_uuid": S, "lid": S, "patient": S, "version": I,
        "status": {"enum": ["approved", "deprecated", "archived", "deleted"]}, "title": S, "type_code": S,
        "class_code": S, "format_code": S, "practice_setting": S, "facility_type": S, "author": S,
        "author_structure": S, "creation_time": S, "submission_time": S,
        "confidentiality": _arr({"enum": ["N", "MASQUE_PS", "INVISIBLE_PATIENT",
                                          "INVISIBLE_REPRESENTANTS_LEGAUX"]}),
        "replaces": NS, "replaced_by": NS, "hash": {"type": "string", "pattern": "^[0-9A-F]{40}$"},
        "size": I, "mime_type": S, "repository_id": S,
    }),
    "Trace": _obj({
        "time": S, "actor": S, "structure": NS, "document": NS,
        "action": {"enum": ["alimentation", "remplacement", "suppression", "archivage", "desarchivage",
                            "masquage", "demasquage", "invisibilisation", "remise_en_visibilite",
                            "consultation", "telechargement", "autorisation", "retrait_autorisation",
                            "fermeture", "reouverture"]},
        "mode": {"enum": ["normal", "bris_de_glace", "centre_15"]},
    }),
    "Authorization": _obj({
        "patient": S, "subject_kind": {"enum": ["structure", "professional"]}, "subject": S,
        "status": {"enum": ["VALIDE", "INTERDIT", "EXPIRE", "NON_EXISTE"]}, "since": NS, "until": NS,
        "reason": NS,
    }),
    "Professional": _obj({
        "id": S, "rpps": S, "idnps": S, "family_name": S, "given_name": S, "profession": S, "specialty": S,
        "structure": S, "mssante": S,
    }),
    "Structure": _obj({
        "id": S, "finess": S, "finess_ej": S, "idnst": S, "name": S,
        "address": _obj({"line": S, "postal_code": S, "city": S}),
    }),
    "JournalEntry": _obj({
        "seq": I, "time": S, "channel": {"enum": ["dmp", "pfi", "mss", "oidc", "annuaire", "control"]},
        "operation": S, "direction": {"enum": ["in", "out"]}, "actor": S, "patient": NS, "patient_ins": NS,
        "document": NS, "verdict": {"enum": ["accepted", "refused", "error"]}, "code": NS,
        "findings": _arr(_ref("Finding")), "raw": S, "raw_truncated": B, "size": I, "ref": NS,
        "response": {"type": "string", "description": "what the bench answered on the door's wire (the ACK, the "
                     "SOAP response or fault, the SMTP reply, the HTTP answer), cut to journal_raw_bytes; absent "
                     "when the exchange has no answer of its own"},
        "response_truncated": B, "response_size": I,
    }, required=["seq", "time", "channel", "operation", "direction", "actor", "patient", "patient_ins", "document",
                 "verdict", "code", "findings", "raw", "raw_truncated", "size", "ref"]),
    "Endpoints": _obj({
        "version": S, "scenario": NS, "tls": B,
        "urls": _obj({"http": S, "https": NS, "backchannel": S, "backchannel_https": NS, "dashboard": S,
                      "control": S, "control_token_required": B}),
        "dmp": _obj({"services": _arr(_obj({"service": S, "http": S, "wsdl": S, "https": NS, "wsdl_https": NS})),
                     "soap": S, "ws_addressing": B, "vihf_signed": B, "plain_http_refused": B}),
        "oidc": _arr(_obj({"name": S, "title": S, "urls": {"type": "object", "additionalProperties": _obj({
            "issuer": S, "discovery": S, "authorization_endpoint": S, "token_endpoint": S, "userinfo_endpoint": S,
            "jwks_uri": S, "introspection_endpoint": S, "revocation_endpoint": S, "end_session_endpoint": S,
            "backchannel_authentication_endpoint": S})},
            "scopes": _arr(S), "acr": NS,
            "clients": _arr(_obj({"client_id": S, "client_secret": NS, "redirect_uris": _arr(S),
                                  "auth_methods": _arr(S)}))})),
        "annuaire": _obj({"base": S, "base_https": NS, "api_key_header": S, "api_keys": _arr(S)}),
        "pfi": _obj({"host": S, "port": {"type": ["integer", "null"]}, "dpi_listener": NS}),
        "mss": _obj({"smtp": {"type": "object"}, "imap": {"type": "object"}, "password": NS,
                     "auth_rules": _arr(S)}),
        "certificates": _obj({"folder": S, "ca": NS, "server": NS, "clients_folder": NS,
                              "clients": _arr({"type": "object"}), "signing": _arr(_obj(
                                  {"idnst": S, "cert": S, "key": S, "p12": NS})),
                              "p12_password": S, "vihf_trust_anchors": _arr(S), "problem": NS}),
        "identities": _obj({"patients": _arr({"type": "object"}), "professionals": _arr({"type": "object"}),
                            "structures": _arr({"type": "object"}), "mailboxes": _arr({"type": "object"}),
                            "truncated": B}),
    }),
    "Finding": _obj({"rule": S, "severity": {"enum": ["info", "warning", "error"]}, "message": S,
                     "message_fr": S, "related": _arr(I)}, required=["rule", "severity", "message"]),
    "JournalEvent": _obj({
        "seq": I, "time": S, "channel": {"enum": ["dmp", "pfi", "mss", "oidc", "annuaire", "control"]},
        "operation": S, "direction": {"enum": ["in", "out"]}, "actor": S, "patient": NS, "patient_ins": NS,
        "document": NS, "verdict": {"enum": ["accepted", "refused", "error"]}, "code": NS,
        "findings": _arr(_ref("Finding")), "size": I, "ref": NS,
    }),
    "FindingGroup": _obj({"rule": S, "severity": {"enum": ["info", "warning", "error"]}, "message": S,
                          "message_fr": S, "entries": _arr(I)}),
    "Step": _obj({"id": S, "say": S, "status": {"enum": ["pending", "passed", "failed"]}, "reason": NS,
                  "reason_fr": NS, "reason_code": {"enum": [*VERDICT_CODES, None]},
                  "problems": {"type": ["array", "null"], "items": _obj({"code": {"enum": list(VERDICT_CODES)}},
                                                                        required=["code"])},
                  "nearest_seq": {"type": ["integer", "null"]}, "entries": _arr(I)},
                 required=["id", "say", "status", "reason", "entries"]),
    "Transition": _obj({"id": S, "say": S, "when": {"type": "object"}, "fired": B, "count": I, "fired_at": NS,
                        "error": {"type": ["object", "null"]}}),
    "TransitionResult": _obj({"id": S, "fired": B, "count": I, "fired_at": NS,
                              "error": {"type": ["object", "null"]}, "actions": _arr(S)}),
    "Clock": _obj({"now": S, "offset": {"type": "number"}}),
    "ClockAdvance": _obj({"advance": {"type": ["string", "number"],
                                      "description": "a duration: 30s, 5m, 1h30m, 2d, or seconds"}}),
    "Actions": _obj({"actions": _arr({"type": "object", "minProperties": 1, "maxProperties": 1,
                                      "description": "one scenario action, as in docs/scenarios.md"})}),
    "ActionsDone": _obj({"done": _arr(S)}),
    "Status": _obj({"status": S}),
    "Behaviour": _obj({"on_receive": {"enum": ["integrate", "fail_integration", "bounce", "ignore"]}, "mdn": B,
                       "error": {"type": "string", "description": "code^label"},
                       "read_after": {"type": "string", "description": "answer the MDN this long after the delivery "
                                      "(virtual clock): 30s, 2m"}}, required=[]),
    "Mailbox": _obj({"address": S, "type": {"enum": ["PER", "ORG", "APP", "CAB"]}, "owner": S,
                     "role": {"enum": ["hospital", "correspondent", "error", "outside"]},
                     "behaviour": {"type": "object"}}),
    "MailMessage": _obj({"id": S, "mailbox": S, "uid": I, "sender": S, "recipients": _arr(S), "subject": S,
                         "message_id": S, "received_at": S, "size": I, "flags": _arr(S),
                         "headers": {"type": "object", "additionalProperties": S}, "findings": _arr({"type": "object"}),
                         "document": {"type": "string", "description": "the XDM package's first document unique id"}}),
    "MailMessageParsed": {"allOf": [_ref("MailMessage"), _obj({"parts": _arr(_obj({
        "content_type": S, "filename": NS, "size": I}))})]},
    "MailSend": _obj({"from": S, "to": {"type": ["array", "string"]}, "package": {"type": "string",
                      "description": "the IHE_XDM.ZIP in base64"}, "subject": S, "text": S, "mdn": B},
                     required=["from", "to", "package"]),
    "XdmContents": _obj({
        "package": NS, "size": I, "files": _arr(_obj({"name": S, "size": I})),
        "documents": _arr(_obj({"path": S, "unique_id": S, "title": S, "type_code": S, "mime_type": S, "size": I,
                                "hash_ok": B, "size_ok": B, "action": NS})),
        "findings": _arr(_ref("Finding")), "error": {"type": ["object", "null"]},
    }),
    "Snapshot": _obj({"status": {"enum": ["saved", "restored"]}, "snapshot": S}),
    "CibaScript": _obj({
        "outcome": {"enum": ["approve", "deny", "expire"], "description": "what the professional answers"},
        "after_polls": {"type": "integer", "minimum": 0,
                        "description": "polls answered authorization_pending first (default 1)"},
        "expires_in": {"type": ["string", "number"], "description": "the request's lifetime (default 120s)"},
        "interval": {"type": "integer", "minimum": 1, "description": "the polling interval in seconds (default 5)"},
    }, required=[], extra=False),
    "StatCounts": _obj({"sends": I, "successes": I, "failures": I}),
    "StatCheck": _obj({
        "verdict": {"enum": ["accepted", "refused"], "description": "accepted when every row matches"},
        "months": _arr(S), "by_flux": B, "entry": {"type": "integer", "description": "the journal entry"},
        "missing_months": {"type": "array", "items": S, "description": "the months from January of the previous "
                           "year to the current one that the CSV does not list (each refuses the check)"},
        "rows": _arr(_obj({
            "month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
            "flux": {"enum": ["DMP", "MSSanté", None]}, "type": S,
            "line": {"type": ["integer", "null"], "description": "the CSV line, null for a row only the bench has"},
            "vendor": {"oneOf": [_ref("StatCounts"), {"type": "null"}]}, "bench": _ref("StatCounts"),
            "verdict": {"enum": ["match", "mismatch"]}})),
        "findings": _arr(_ref("Finding")),
    }),
    "TraceCheck": _obj({
        "verdict": {"enum": ["accepted", "refused"], "description": "accepted when every trace pairs"},
        "traces": {"type": "integer", "description": "the DMP traces compared (since loading, of the structures)"},
        "rows": {"type": "integer", "description": "the extract's rows"}, "matched": I,
        "structures": _arr(S),
        "missing": _arr(_obj({"seq": I, "time": S, "patient": S, "user": S, "document": NS, "action": S,
                              "mode": S, "message": S})),
        "extra": _arr(_obj({"where": S, "patient": S, "user": S, "document": NS, "action": S, "message": S})),
        "time_differences": _arr(_obj({"where": S, "message": S})),
        "findings": _arr(_ref("Finding")), "entry": {"type": "integer", "description": "the journal entry"},
    }),
    "KeysRotated": _obj({"kids": _arr(S), "grace": {"type": "number"}}),
    "OutboxMessage": _obj({
        "id": I, "state": {"enum": ["pending", "dead"]}, "operation": S, "patient_ins": NS, "document": NS,
        "ref": NS, "created": S, "attempts": I, "next_attempt": NS, "last_error": NS, "reason": NS, "size": I,
    }),
    "DpiEndpoint": _obj({"mllp": {"type": ["string", "null"], "description": "HOST:PORT, null when none"},
                         "source": {"enum": ["config", "scenario", "control", None]}}),
    "CibaScripted": _obj({"idnps": S, "professional": S, "outcome": {"enum": ["approve", "deny", "expire"]},
                          "after_polls": I, "expires_in": {"type": "number"}, "interval": I},
                         required=["idnps", "professional", "outcome", "after_polls"]),
}

# The evidence report (mockbench/report/build.py). Nested parts are described loosely: they are for the eye.
_PRETTY = _obj({"kind": {"enum": ["empty", "xml", "hl7", "mime", "json", "form", "text", "binary", "zip"]},
                "text": NS, "parts": _arr({"type": "object"}), "tokens": _arr(_obj({
                    "header": {"type": "object"}, "claims": {"type": "object"},
                    "signature": _obj({"present": B, "verified": {"const": False}, "algorithm": NS})})),
                "note": NS})
_SUMMARY = {"type": ["object", "null"], "properties": {
    "time": S, "structures": I, "professionals": I, "patients_total": I, "mailboxes_total": I,
    "patients": _arr(_obj({"id": S, "ins": S, "dmp": S, "consent": {"type": "object"}, "documents_total": I,
                           "documents": _arr(_obj({"id": S, "unique_id": S, "status": S,
                                                   "confidentiality": _arr(S), "version": I, "replaces": NS,
                                                   "replaced_by": NS, "versions": _arr({"type": "object"})})),
                           "authorizations": _arr(_obj({"subject_kind": S, "subject": S, "status": S}))},
                          required=["id", "documents", "authorizations"])),
    "mailboxes": _arr(_obj({"address": S, "role": S, "type": S, "owner": S, "messages": I}))},
    "required": ["time", "patients", "mailboxes"]}
SCHEMAS["Report"] = _obj({
    "report_version": I, "generated_at": S, "bench": {"type": "object"},
    "scenario": {"type": ["object", "null"], "properties": {
        "id": S, "title": S, "requirement": NS, "description": NS, "source": NS, "loaded_at": NS}},
    "outcome": {"enum": ["passed", "failed", None]},
    "steps": _arr(_obj({"id": S, "say": S, "expect": {"type": ["object", "null"]}, "verdict": S,
                        "status": {"enum": ["passed", "failed"]}, "reason": NS, "decided_at": NS,
                        "entries": _arr(I), "not_observed": B})),
    "transitions": _arr(_obj({"id": S, "say": S, "when": {"type": ["object", "null"]}, "do": _arr({"type": "object"}),
                              "fired": B, "fired_at": NS, "count": I, "error": {"type": ["object", "null"]},
                              "what": NS, "entry": {"type": ["integer", "null"]}})),
    "entries": _arr({"allOf": [_ref("JournalEntry"), _obj({"pretty": _PRETTY,
                                                           "pretty_source": {"enum": ["journal", "mailbox"]},
                                                           "response_pretty": _PRETTY},
                                                          required=["pretty", "pretty_source"])]}),
    "entries_capped": B,
    "timeline": _arr(_obj({"seq": I, "time": S, "channel": S, "operation": S, "verdict": S},
                          required=["seq", "time", "channel", "operation", "verdict"])),
    "timeline_capped": B, "journal": _obj({"count": I, "dropped": I}),
    "world": _obj({"before": _SUMMARY, "after": _SUMMARY}),
    "findings": _arr(_ref("FindingGroup")), "findings_capped": B,
})


_FAULT_FIELDS = {
    "id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$",
           "description": "the rule's id (fault-N when absent); journal entries it touched carry it as `fault`"},
    "door": {"enum": ["dmp", "pfi", "mss", "oidc", "annuaire"]},
    "kind": {"enum": ["delay", "reset", "timeout", "trickle", "soap_fault", "http_503", "http_429",
                      "temporarily_unavailable", "ack_ar", "no_ack", "zam_error", "zam_delay", "zam_duplicate",
                      "smtp_reply", "imap_bye", "imap_no", "mdn_delay"],
             "description": "what happens; README \"Faults\" says which door renders which kind, and how"},
    "match": {"type": "object", "additionalProperties": False, "description": "which exchanges, as a step's "
              "expect: each field a text or a list of texts (any one matches)",
              "properties": {k: {"type": ["string", "array"]} for k in ("operation", "patient", "actor", "document")}},
    "times": {"type": ["integer", "null"], "minimum": 1, "description": "fires at most this many times"},
    "probability": {"type": "number", "exclusiveMinimum": 0, "maximum": 1,
                    "description": "the chance a matching exchange meets it, drawn from seed"},
    "seed": I,
    "from": {"type": ["string", "number", "null"], "description": "`+30s` (from now, virtual clock) or ISO time; "
             "stored as a Unix time"},
    "until": {"type": ["string", "number", "null"], "description": "as from: the rule stops at this time"},
    "enabled": B, "say": S,
    "seconds": {"type": ["number", "string"], "description": "delay, timeout, trickle, zam_delay, mdn_delay"},
    "code": {"type": ["integer", "string"], "description": "smtp_reply: 421, 451, 452; zam_error: 900-906"},
    "stage": {"enum": ["connect", "MAIL", "RCPT", "DATA"]},
    "subcode": S, "reason": S, "text": S, "description": S, "error": S, "retry_after": I,
}
SCHEMAS["FaultRuleInput"] = {"type": "object", "required": ["door", "kind"], "additionalProperties": False,
                             "properties": _FAULT_FIELDS}
SCHEMAS["FaultRule"] = {"type": "object", "required": ["id", "door", "kind", "match", "times", "probability", "seed",
                                                       "from", "until", "enabled", "seen", "fired", "active"],
                        "properties": {**_FAULT_FIELDS, "seen": I, "fired": I, "active": B}}
SCHEMAS["FaultFired"] = _obj({"rule": S, "door": S, "kind": S, "operation": S, "patient": NS, "actor": S,
                              "document": NS, "time": S, "say": NS})
SCHEMAS["Report"]["properties"]["faults"] = _arr(_ref("FaultFired"))
SCHEMAS["Report"]["properties"]["faults"]["description"] = "the injected faults that fired (the last 500)"
SCHEMAS["JournalEntry"]["properties"]["fault"] = {"type": ["string", "null"], "description": "the fault rule this "
                                                  "exchange met (absent, or null in a report, when none): its "
                                                  "outcome was injected"}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERR = {"4XX": _json(_ref("Error"), "error, with a stable code"),
       "507": _json(_ref("Error"), "STORAGE_FULL: the disk holding the state folder is full; nothing was changed, "
                                   "send the same call again later (Retry-After)")}
KEY = {"name": "key", "in": "path", "required": True, "schema": S,
       "description": "the scenario's id or the INS"}


def _op(summary: str, response: dict, *, params: list | None = None, body: dict | None = None,
        extra: dict | None = None) -> dict:
    op: dict[str, Any] = {"summary": summary, "responses": {"200": response, **ERR, **(extra or {})}}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _q(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


# List routes: a bare array without paging parameters (as before), one page with `limit` or `offset`.
PAGING = [_q("offset", {"type": "integer", "minimum": 0}, "items skipped (with limit: one page, with its total)"),
          _q("limit", {"type": "integer", "minimum": 1, "maximum": 10_000},
             "items per page (default 100 when offset is given)")]


def _list(summary: str, item: dict, params: list | None = None) -> dict:
    page = _obj({"total": I, "offset": I, "limit": I, "items": _arr(item)})
    return _op(summary + " (`X-Total-Count` gives the total; `limit`/`offset`: one page, with the total)",
               _json({"oneOf": [_arr(item), page]}), params=[*(params or []), *PAGING])


PATHS: dict[str, Any] = {
    "/_bench/health": {"get": _op("Which doors run, and the bench's state", _json(_ref("Health")))},
    "/_bench/endpoints": {"get": {
        "summary": "What to configure in a DPI for this bench: every URL (DMP services and WSDLs, OIDC issuers, "
                   "discovery and endpoints, the Annuaire, MLLP, SMTP, IMAP), the credentials, the certificates "
                   "and the loaded world's identities; built from the bench's configuration (public, back-channel "
                   "URLs, published ports). `mockbench endpoints` prints it",
        "parameters": [_q("format", {"enum": ["json", "text"]}, "json (default) or text (French headings)")],
        "responses": {"200": {"description": "the DPI's configuration", "content": {
            "application/json": {"schema": _ref("Endpoints")}, "text/plain": {"schema": S}}}, **ERR}}},
    "/_bench/openapi.json": {"get": _op("This document", _json({"type": "object"}))},
    "/_bench/reset": {"post": _op("Empty world, empty journal, clock back to real time", _json(_ref("Status")))},
    "/_bench/snapshots": {"get": _op("Saved snapshots", _json(_arr(S)))},
    "/_bench/snapshots/{name}": {
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": S}],
        "post": _op("Save the whole world (scenario, steps, clock, journal) under this name",
                    _json(_ref("Snapshot"))),
    },
    "/_bench/snapshots/{name}/restore": {
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": S}],
        "post": _op("Put the world back as it was saved", _json(_ref("Snapshot"))),
    },
    "/_bench/scenarios": {
        "get": _op("The scenario catalogue", _json(_arr(_ref("ScenarioSummary")))),
        "post": {"summary": "Reset, then load the scenario sent as YAML in the body",
                 "requestBody": {"required": True, "content": {"application/yaml": {"schema": S}}},
                 "responses": {"200": _json(_ref("Loaded")), **ERR}},
    },
    "/_bench/scenarios/{scenario_id}": {
        "parameters": [{"name": "scenario_id", "in": "path", "required": True, "schema": S}],
        "get": _op("One scenario of the catalogue", _json(_ref("ScenarioDetail"))),
        "post": _op("Reset, then that scenario's seed; answers the loaded ids", _json(_ref("Loaded"))),
    },
    "/_bench/scenario": {"get": _op("The loaded scenario, its transitions and steps",
                                    _json(_ref("LoadedScenario")))},
    "/_bench/patients": {"get": _list("The patients, by id", _ref("Patient"))},
    "/_bench/patients/{key}": {"parameters": [KEY], "get": _op("One patient", _json(_ref("Patient")))},
    "/_bench/patients/{key}/documents": {
        "parameters": [KEY],
        "get": _list("The patient's DMP documents, one row each (history=1: every metadata version)",
                     _ref("Document"),
                     params=[_q("history", {"enum": ["0", "1", "true", "false"]}, "every metadata version")]),
    },
    "/_bench/patients/{key}/traces": {"parameters": [KEY],
                                      "get": _list("The DMP's access traces", _ref("Trace"))},
    "/_bench/patients/{key}/authorizations": {
        "parameters": [KEY], "get": _op("The DMP authorizations", _json(_arr(_ref("Authorization"))))},
    "/_bench/documents/{key}": {
        "parameters": [{"name": "key", "in": "path", "required": True, "schema": S,
                        "description": "scenario id, unique id or entryUUID; add /content for the bytes"}],
        "get": _op("A document's current metadata", _json(_ref("Document"))),
    },
    "/_bench/professionals": {"get": _list("The professionals, by id", _ref("Professional"))},
    "/_bench/structures": {"get": _list("The structures, by id", _ref("Structure"))},
    "/_bench/world/actions": {"post": _op("Run scenario actions now, all or nothing", _json(_ref("ActionsDone")),
                                          body=_ref("Actions"))},
    "/_bench/mss/mailboxes": {"get": _list("MSSanté mailboxes, by address", _ref("Mailbox"))},
    "/_bench/mss/mailboxes/{address}/messages": {
        "parameters": [{"name": "address", "in": "path", "required": True, "schema": S}],
        "get": _list("A mailbox's messages, by UID", _ref("MailMessage")),
    },
    "/_bench/mss/mailboxes/{address}/behaviour": {
        "parameters": [{"name": "address", "in": "path", "required": True, "schema": S}],
        "put": _op("How a simulated recipient answers", _json(_ref("Mailbox")), body=_ref("Behaviour")),
    },
    "/_bench/mss/messages/{message_id}": {
        "parameters": [{"name": "message_id", "in": "path", "required": True, "schema": S}],
        "get": _op("One message, parsed (`?raw=1`: the bytes as delivered, message/rfc822)",
                   _json(_ref("MailMessageParsed"))),
    },
    "/_bench/mss/messages/{message_id}/xdm": {
        "parameters": [{"name": "message_id", "in": "path", "required": True, "schema": S}],
        "get": _op("What the message's IHE_XDM.ZIP holds: files, documents and the checks' findings (package "
                   "null when the mail carries none)", _json(_ref("XdmContents"))),
    },
    "/_bench/mss/send": {"post": _op("A professional of the world sends an XDM package", _json(_arr(_ref(
        "MailMessage"))), body=_ref("MailSend"))},
    "/_bench/journal": {"get": _op(
        "The timeline, oldest first", _json(_arr(_ref("JournalEntry"))),
        params=[_q("channel", {"enum": ["dmp", "pfi", "mss", "oidc", "annuaire", "control"]}, "channel"),
                _q("operation", S, "operation (TD3.1, MDM^T02...)"), _q("patient", S, "patient id"),
                _q("since", I, "entries after this sequence number"), _q("from", S, "time >= (ISO)"),
                _q("to", S, "time <= (ISO)"), _q("limit", I, "at most this many (1-10000, default 1000)")])},
    "/_bench/steps": {"get": _op("The loaded scenario's steps", _json(_arr(_ref("Step"))))},
    "/_bench/steps/finish": {"post": _op("Pending steps become failed: not observed", _json(_arr(_ref("Step"))))},
    "/_bench/findings": {"get": _op("Conformance findings: the doors' own, grouped, and the advisor's across "
                                    "exchanges", _json(_arr(_ref("FindingGroup"))))},
    "/_bench/report": {"get": {
        "summary": "The evidence report: scenario, steps with the entries that decided them (raw messages "
                   "pretty-printed), transitions, the world before and after, findings. Read-only: pending "
                   "steps are shown failed (not observed) but stay pending",
        "parameters": [_q("format", {"enum": ["json", "html"]}, "json (default) or html (one self-contained "
                          "file, French labels)")],
        "responses": {"200": {"description": "the report", "content": {
            "application/json": {"schema": _ref("Report")}, "text/html": {"schema": S}}}, **ERR}}},
    "/_bench/transitions": {"get": _op("The loaded scenario's transitions", _json(_arr(_ref("Transition"))))},
    "/_bench/transitions/{transition_id}": {
        "parameters": [{"name": "transition_id", "in": "path", "required": True, "schema": S}],
        "post": _op("Fire a manual transition", _json(_ref("TransitionResult"))),
    },
    "/_bench/clock": {
        "get": _op("The virtual clock", _json(_ref("Clock"))),
        "post": _op("Move the virtual clock forward", _json(_ref("Clock")), body=_ref("ClockAdvance")),
    },
    "/_bench/faults": {
        "get": _op("The fault rules, with how often each met a matching exchange (seen) and fired, and whether "
                   "it is active now", _json(_arr(_ref("FaultRule")))),
        "post": _op("Add a fault rule, or replace the one with the same id (its counters start again); a "
                    "malformed rule is a 400 FAULT_RULE_INVALID naming the field; at most 64 rules "
                    "(FAULT_RULES_TOO_MANY)", _json(_ref("FaultRule")), body=_ref("FaultRuleInput")),
        "delete": _op("Delete every fault rule", _json(_obj({"deleted": I}))),
    },
    "/_bench/faults/fired": {"get": _op("The faults that fired (the last 500), oldest first",
                                        _json(_arr(_ref("FaultFired"))))},
    "/_bench/faults/{rule_id}": {
        "parameters": [{"name": "rule_id", "in": "path", "required": True, "schema": S}],
        "get": _op("One fault rule", _json(_ref("FaultRule"))),
        "patch": _op("Switch a fault rule on or off", _json(_ref("FaultRule")),
                     body=_obj({"enabled": B}, extra=False)),
        "delete": _op("Delete a fault rule", _json(_obj({"deleted": I}))),
    },
    "/_bench/stat/check": {"post": {
        "summary": "STAT/ES.01: a vendor's CSV of sends per document type and month (columns Mois; Type de "
                   "document; [Flux]; Nombre d'envois and/or Nombre de succès; Nombre d'échecs; UTF-8 with or "
                   "without BOM, `;` or `,`; a `Total` row per month, checked against the month's sends; "
                   "every month from January of the previous year to the current one listed), compared with "
                   "the sends the journal saw; journaled as control stat_check. A CSV that cannot be read is a "
                   "400 naming the line.",
        "requestBody": {"required": True, "content": {"text/csv": {"schema": S}}},
        "responses": {"200": _json(_ref("StatCheck")), **ERR}}},
    "/_bench/traces/check": {"post": {
        "summary": "DMP/CONF.14: the DPI's extract of its own access traces, CSV (columns Date; Utilisateur; "
                   "Patient; [Document]; Action, UTF-8 with or without BOM, `;` or `,`) or JSON ({\"traces\": "
                   "[{time, user, patient, document, action}]}), at most 1 MiB and 10,000 rows, compared action "
                   "by action with the DMP traces since the scenario was loaded (of the structures of the "
                   "extract's users, or of `structure`), each missing or extra trace named; journaled as "
                   "control trace_check. An extract that cannot be read is a 400 EXTRACT_INVALID naming the "
                   "line or item.",
        "parameters": [_q("structure", S, "compare with this structure's traces only (id or FINESS)")],
        "requestBody": {"required": True, "content": {"text/csv": {"schema": S},
                                                      "application/json": {"schema": {"type": ["object", "array"]}}}},
        "responses": {"200": _json(_ref("TraceCheck")), **ERR}}},
    "/_bench/events": {"get": {
        "summary": "The timeline, live: server-sent events, one `entry` event per journal entry (its raw message "
                   "left out: GET /_bench/journal gives it), `id` the sequence number, a comment line as heartbeat",
        "parameters": [
            {"name": "Last-Event-ID", "in": "header", "required": False, "schema": S,
             "description": "resume after this sequence number (browsers send it on reconnection)"},
            _q("since", I, "entries after this sequence number first (beyond the journal's end: from the start, "
                           "the journal was reset)"),
            _q("tail", I, "without since: the newest N entries first (0-10000; default none, live only)")],
        "responses": {
            "200": {"description": "an endless text/event-stream; each `data` is a JSON object",
                    "content": {"text/event-stream": {"schema": S,
                                                      "x-event-data": _ref("JournalEvent")}}},
            "429": {"description": "too many clients follow the timeline already; see Retry-After",
                    "content": {"application/json": {"schema": _ref("Error")}}},
            **ERR},
    }},
    "/_bench/oidc/ciba/{key}": {
        "put": _op("The scripted CIBA outcome for a professional (IDNPS, RPPS or scenario id)",
                   _json(_ref("CibaScripted")), body=_ref("CibaScript"),
                   params=[{"name": "key", "in": "path", "required": True, "schema": S,
                            "description": "the professional's IDNPS, RPPS or scenario id"}]),
    },
    "/_bench/pfi/outbox": {"get": _op(
        "The PFI's messages to the DPI's MLLP listener (ZAMs, MDMs of mails received), oldest first: pending "
        "(waiting for an attempt, with the last error) or dead (given up, with the reason). Delivered messages "
        "leave the queue; the journal keeps each attempt (pfi OUTBOX) and outcome",
        _json(_arr(_ref("OutboxMessage"))), params=[_q("state", {"enum": ["pending", "dead"]}, "only this state")])},
    "/_bench/pfi/dpi": {
        "get": _op("The DPI's MLLP listener the PFI sends to (ZAMs, MDMs of mails received) and who set it: "
                   "config (--dpi-mllp), scenario (its dpi.mllp) or control", _json(_ref("DpiEndpoint"))),
        "put": _op("Set the DPI's MLLP listener from now on (kept across resets and restarts); null for none: "
                   "nothing is queued for the DPI until one is set", _json(_ref("DpiEndpoint")),
                   body=_obj({"mllp": {"type": ["string", "null"], "description": "HOST:PORT"}}, extra=False)),
        "delete": _op("Forget the listener a scenario or PUT set: the one given at start (--dpi-mllp), or none",
                      _json(_ref("DpiEndpoint"))),
    },
    "/_bench/pfi/outbox/{message_id}/retry": {"post": _op(
        "A dead message back in the queue, attempts counted anew", _json(_ref("OutboxMessage")),
        params=[{"name": "message_id", "in": "path", "required": True, "schema": I,
                 "description": "the message's id in the outbox"}])},
    "/_bench/oidc/keys/rotate": {
        "post": _op("New RS256 and ES256 signing keys for both issuers; the old ones stay in the JWKS for a day",
                    _json(_ref("KeysRotated"))),
    },
    "/_bench/pki/signing/{idnst}": {
        "parameters": [{"name": "idnst", "in": "path", "required": True, "schema": S}],
        "get": _op("A structure's seal certificate and private key (PEM) from the bench's test PKI, to sign VIHFs "
                   "with (issued on first use), and the CA the DMP door trusts",
                   _json(_obj({"idnst": S, "certificate": S, "private_key": S, "ca": S}))),
    },
}


def openapi_document(server_url: str = "http://127.0.0.1:8080") -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "mockbench control API", "version": "1",
                 "description": "Steer the bench: reset, load scenarios, read the world and the timeline, "
                                "follow steps, fire transitions, move the clock. Errors are "
                                '{"error": CODE, "message": TEXT} with a 4xx status. A bench given a control '
                                "token, or listening beyond loopback, requires it as a bearer token (401 "
                                "TOKEN_REQUIRED; GET /health then answers only its status); any bench refuses "
                                "an unknown Host (403 HOST_NOT_ALLOWED), a state-changing call from another "
                                "origin (403 CROSS_ORIGIN) or with a form's content type (415)."},
        "servers": [{"url": server_url}],
        "paths": PATHS,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"controlToken": {"type": "http", "scheme": "bearer",
                                                            "description": "the bench's control token"}}},
    }
