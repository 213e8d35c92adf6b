"""Why a step failed, as data: a stable code with its facts, rendered in English (the API's `reason`, stable
for CI scripts that read it) and in French (`reason_fr`: what the terminal, the dashboard and the report show,
in the users' language).

A problem is a dict `{"code": CODE, ...facts}`; the facts are plain JSON values, so that problems are stored
with the step and rendered again at any time. Times are kept as the journal's ISO text: the English reason
shows them in UTC (as the journal does), the French one in Paris time.
"""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

from ..world.clock import parse_time

PARIS = ZoneInfo("Europe/Paris")

VERDICT_FR = {"accepted": "accepté", "refused": "refusé", "error": "en erreur"}
DOC_STATUS_FR = {"approved": "actif", "deprecated": "remplacé", "archived": "archivé", "deleted": "supprimé"}
DMP_FR = {"active": "actif", "closed": "fermé", "absent": "absent"}


def problem(code: str, **facts) -> dict:
    return {"code": code, **facts}


# Descriptions of what a step expects, or of a journal entry ------------------------------------------
def describe(d: dict, lang: str = "en") -> str:
    operation = d.get("operation")
    if isinstance(operation, list):
        operation = (" or " if lang == "en" else " ou ").join(operation)
    text = operation or d.get("channel") or ("an exchange" if lang == "en" else "un échange")
    if d.get("patient"):
        text += f" for {d['patient']}" if lang == "en" else f" pour {d['patient']}"
    if d.get("document"):
        text += f" on {d['document']}" if lang == "en" else f" sur {d['document']}"
    return text


def clock(iso: str, lang: str) -> str:
    when = parse_time(iso)
    return when.strftime("%H:%M:%S") if lang == "en" else when.astimezone(PARIS).strftime("%H:%M:%S")


def _outcome(entry: dict, lang: str) -> str:
    if entry["verdict"] == "accepted":
        return ""
    verdict = entry["verdict"] if lang == "en" else VERDICT_FR.get(entry["verdict"], entry["verdict"])
    return f" {verdict}" + (f" ({entry['code']})" if entry.get("code") else "")


def _trace(t: dict, lang: str) -> str:
    if lang == "en":
        text = f"{t['action']} by {t['actor']}"
        if t.get("document"):
            text += f" of {t['document']}"
        if t.get("mode", "normal") != "normal":
            text += f" ({t['mode']})"
        return text + f" at {clock(t['time'], 'en')}"
    text = f"{t['action']} par {t['actor']}"
    if t.get("document"):
        text += f" sur {t['document']}"
    if t.get("mode", "normal") != "normal":
        text += f" ({t['mode']})"
    return text + f" à {clock(t['time'], 'fr')}"


# One renderer per code and language -------------------------------------------------------------------
def _verdict(p: dict, lang: str) -> str:
    code = f" ({p['entry_code']})" if p.get("entry_code") else ""
    if lang == "en":
        return f"the entry's verdict is {p['verdict']}{code}, {p['wanted']} was expected"
    return (f"l'échange a le verdict {VERDICT_FR.get(p['verdict'], p['verdict'])}{code}, "
            f"{VERDICT_FR.get(p['wanted'], p['wanted'])} était attendu")


def _finding(p: dict, lang: str) -> str:
    if lang == "en":
        return f"finding {p['rule']}: {p['message']}"
    return f"constat {p['rule']} : {p.get('message_fr') or p['message']}"


def _trace_missing(p: dict, lang: str) -> str:
    en = lang == "en"
    text = f"no {p['action']} trace" if en else f"aucune trace {p['action']}"
    if p.get("document"):
        text += f" of {p['document']}" if en else f" sur {p['document']}"
    if p.get("actor"):
        text += f" by {p['actor']}" if en else f" par {p['actor']}"
    if p.get("mode"):
        text += f" in mode {p['mode']}" if en else f" en mode {p['mode']}"
    if en:
        window = f"since step {p['since_step']}" if p.get("since_step") else "since the scenario was loaded"
        seen = "; ".join(_trace(t, "en") for t in p.get("seen") or [])
        return f"{text} in {p['patient']}'s DMP {window}; " + (f"traces recorded: {seen}" if seen
                                                                 else "no trace was recorded")
    window = f"depuis l'étape {p['since_step']}" if p.get("since_step") else "depuis le chargement du scénario"
    seen = " ; ".join(_trace(t, "fr") for t in p.get("seen") or [])
    return f"{text} dans le DMP de {p['patient']} {window} ; " + (f"traces enregistrées : {seen}" if seen
                                                                    else "aucune trace enregistrée")


def _not_observed(p: dict, lang: str) -> str:
    en = lang == "en"
    wanted = describe(p["expected"], lang)
    if p.get("actor"):
        wanted += f" with actor {p['actor']}" if en else f" par l'acteur {p['actor']}"
    nearest = p.get("nearest")
    if nearest is None:
        tail = (f"expected {wanted}; nothing close was received" if en
                else f"attendu : {wanted} ; rien d'approchant n'a été reçu")
    elif en:
        tail = f"expected {wanted}; nearest: {describe(nearest, 'en')}{_outcome(nearest, 'en')} at " \
               f"{clock(nearest['time'], 'en')}"
    else:
        tail = (f"attendu : {wanted} ; le plus proche : échange n° {nearest['seq']}, {describe(nearest, 'fr')}"
                f"{_outcome(nearest, 'fr')} à {clock(nearest['time'], 'fr')}")
    if p.get("earlier"):
        tail = (f"the earlier step {p['earlier']} was never decided; {tail}" if en
                else f"l'étape précédente {p['earlier']} n'a jamais été décidée ; {tail}")
    return ("not observed: " if en else "non observée : ") + tail


def _mail_header(p: dict, lang: str) -> str:
    name, value, wanted = p["header"], p.get("value"), p["wanted"]
    if lang == "en":
        return (f"the mail's {name} is {value!r}, {wanted!r} was expected" if value
                else f"the mail has no {name} header, {name}: {wanted} was expected")
    return (f"l'en-tête {name} du courriel vaut {value!r}, {wanted!r} était attendu" if value
            else f"le courriel n'a pas d'en-tête {name}, {name}: {wanted} était attendu")


RENDER: dict[str, Callable[[dict, str], str]] = {
    "VERDICT": _verdict,
    "FINDING": _finding,
    "NO_DOCUMENT_FROM_STEP": lambda p, lang: (f"step {p['step']} recorded no document" if lang == "en"
                                              else f"l'étape {p['step']} n'a enregistré aucun document"),
    "DOCUMENT_ABSENT": lambda p, lang: (f"document {p['document']} is not in the DMP" if lang == "en"
                                        else f"le document {p['document']} n'est pas dans le DMP"),
    "DOCUMENT_STATUS": lambda p, lang: (
        f"document {p['document']} is {p['status']}, {p['wanted']} was expected" if lang == "en" else
        f"le document {p['document']} est {DOC_STATUS_FR.get(p['status'], p['status'])}, "
        f"{DOC_STATUS_FR.get(p['wanted'], p['wanted'])} était attendu"),
    "DOCUMENT_LACKS_CODE": lambda p, lang: (f"document {p['document']} lacks {p['confidentiality']}" if lang == "en"
                                            else f"le document {p['document']} n'a pas le code "
                                                 f"{p['confidentiality']}"),
    "DOCUMENT_KEEPS_CODE": lambda p, lang: (
        f"document {p['document']} still carries {p['confidentiality']}" if lang == "en"
        else f"le document {p['document']} porte encore le code {p['confidentiality']}"),
    "DOCUMENT_VERSION": lambda p, lang: (
        f"document {p['document']} is at version {p['version']}, {p['wanted']} was expected" if lang == "en"
        else f"le document {p['document']} est en version {p['version']}, la version {p['wanted']} était attendue"),
    "PATIENT_DMP": lambda p, lang: (
        f"{p['patient']}'s DMP is {p['dmp']}, {p['wanted']} was expected" if lang == "en"
        else f"le DMP de {p['patient']} est {DMP_FR.get(p['dmp'], p['dmp'])}, "
             f"{DMP_FR.get(p['wanted'], p['wanted'])} était attendu"),
    "SECRET_CONNECTION": lambda p, lang: (
        f"{p['patient']}'s secret connection is {'on' if p['on'] else 'off'}" if lang == "en"
        else f"la connexion secrète de {p['patient']} est {'activée' if p['on'] else 'désactivée'}"),
    "AUTHORIZATION": lambda p, lang: (
        f"the authorization of {p['subject']} on {p['patient']} is {p['status']}, {p['wanted']} was expected"
        if lang == "en" else
        f"l'autorisation de {p['subject']} sur le DMP de {p['patient']} est {p['status']}, "
        f"{p['wanted']} était attendu"),
    "NO_PATIENT": lambda p, lang: (f"no patient {p['patient']}" if lang == "en" else f"aucun patient {p['patient']}"),
    "TRACE_MISSING": _trace_missing,
    "MAIL_ABSENT": lambda p, lang: (
        f"the entry names no delivered mail ({p.get('message_id') or 'no Message-ID'})" if lang == "en"
        else f"l'échange ne désigne aucun courriel remis ({p.get('message_id') or 'pas de Message-ID'})"),
    "MAIL_HEADER": _mail_header,
    "NOT_OBSERVED": _not_observed,
}
CODES = tuple(RENDER)


def render(problems: list[dict], lang: str = "en") -> str | None:
    """The reason of a step: its problems rendered and joined; None when there is none."""
    sep = "; " if lang == "en" else " ; "
    return sep.join(RENDER[p["code"]](p, lang) for p in problems) or None


def annotate(step: dict, problems: list[dict]) -> None:
    """Write a step's problems and their renderings on it: `reason` (English), `reason_fr`, `reason_code`
    (the first problem's code) and `problems`."""
    step["problems"] = problems
    step["reason"] = render(problems, "en")
    step["reason_fr"] = render(problems, "fr")
    step["reason_code"] = problems[0]["code"] if problems else None
    nearest = next((p["nearest"]["seq"] for p in problems if p.get("nearest")), None)
    step["nearest_seq"] = nearest


__all__ = ["CODES", "annotate", "describe", "problem", "render"]
