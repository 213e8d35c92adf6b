"""SSI/IE.31: the software verifies a patient's or a user's e-mail address by a code or a unique link.

The bench sees the verification where it crosses its edge: the mail the software under test sends to the
address being verified. An address outside MSSanté lands in the catch-all `outside` mailbox (world/mss.py),
and every mail delivered there is read here. What a reviewer of SSI/IE.31 wants proven, and what gives a
finding with rule `SSI/IE.31` when it is not:

- the mail carries a verification code (a group of at least 4 digits or capitals with a digit, after the
  word "code") or a unique link (an http(s) link carrying a token of at least 16 URL-safe characters that
  is not the address itself: a link that only repeats the address can be forged by anyone); a code shorter
  than 6 characters is a warning (guessable);
- no code or link is reused: each verification has its own secret, across addresses and across resends;
- a link is https (an http link outside the loopback is a warning: its token travels in clear);
- the mail goes to the address being verified alone (several recipients do not prove who owns it);
- the mail carries nothing of the patient's health record: the address is not verified yet (no
  attachment, no INS of a patient of the world).

The public text of SSI/IE.31 was not found; this reading is the seed's ("verify an e-mail or phone by code
or unique link", DOMAIN.md section 6) plus the usual practice of one-time codes and links. What the bench
cannot see: the user typing the code into the software, or following the link, and the software then
marking the address verified; a workshop reviewer checks that on the software's screen. Phone numbers
(SMS) are outside the bench.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..formats.mime import MailText, read_mail
from ..world.journal import finding
from ..world.store import Tx
from .registry import rule

if TYPE_CHECKING:
    from ..world.world import World

RULE = "SSI/IE.31"
EVIDENCE = "MSS/OUTSIDE"     # the info finding that records a sound verification (not RULE: steps forbid RULE)
SEEN = "mss:verifications"   # store meta: the codes and links already sent, oldest first
KEEP = 1000                  # how many earlier secrets are remembered for the reuse check
MIN_CODE = 6                 # shorter codes are a warning (a 4-digit code is 1 in 10,000)
MIN_TOKEN = 16               # a unique link's token: at least 16 URL-safe characters (96 bits in base64)

_CODE_WORD = re.compile(r"\bcode\b", re.IGNORECASE)
_CODE = re.compile(r"(?<![\w-])(\d(?:[ -]?\d){3,15}|(?=[A-Z0-9-]*\d)[A-Z0-9]{2,8}(?:-[A-Z0-9]{2,8}){0,3})(?![\w-])")
_TOKEN = re.compile(r"[A-Za-z0-9_~.+/=-]+")
# sex, year, month, department (two digits, or Corsica's 2A / 2B), commune, order, key: 15 characters
_NIR = re.compile(r"(?<![0-9A-Za-z])[12378][0-9]{4}(?:[0-9]{2}|2[AB])[0-9]{8}(?![0-9A-Za-z])")


@dataclass(frozen=True)
class Secrets:
    codes: tuple[str, ...]       # normalized: separators removed, upper case
    links: tuple[str, ...]       # the links that carry a token
    weak_links: tuple[str, ...]  # http(s) links that carry no token (the address alone, a fixed page...)


def _token_of(link: str, addresses: list[str]) -> str | None:
    """The link's longest URL-safe token of MIN_TOKEN characters or more that is not an address."""
    parts = urllib.parse.urlsplit(link)
    candidates = [urllib.parse.unquote(s) for s in parts.path.split("/")]
    candidates += [urllib.parse.unquote(v) for _, v in urllib.parse.parse_qsl(parts.query + "&" + parts.fragment)]
    lowered = [a.lower() for a in addresses]
    best = None
    for value in candidates:
        if "@" in value or any(a in value.lower() for a in lowered):
            continue
        for token in _TOKEN.findall(value):
            if len(token) >= MIN_TOKEN and (best is None or len(token) > len(best)):
                best = token
    return best


def read_secrets(mail: MailText, addresses: list[str]) -> Secrets:
    codes: list[str] = []
    for word in _CODE_WORD.finditer(mail.text):
        window = mail.text[word.end(): word.end() + 80]
        found = _CODE.search(window)
        if found:
            codes.append(re.sub(r"[ -]", "", found.group(1)).upper())
    links: list[str] = []
    weak: list[str] = []
    for link in mail.links:
        (links if _token_of(link, addresses) else weak).append(link)
    return Secrets(tuple(dict.fromkeys(codes)), tuple(links), tuple(weak))


@rule(RULE, "delivery", "The software verifies an e-mail address with a mail to that address alone carrying a "
      "code or a unique link of its own, and nothing of the patient's record",
      fr="Le logiciel vérifie une adresse électronique par un courriel à cette seule adresse portant un code ou "
         "un lien unique qui lui est propre, et rien du dossier du patient")
def check(world: World, tx: Tx, sender: str, addresses: list[str], raw: bytes, message_id: str) -> list[dict]:
    """The SSI/IE.31 findings on a mail to addresses outside MSSanté, and remember its secrets for the reuse
    check (in the transaction of the delivery: a rolled-back delivery remembers nothing)."""
    mail = read_mail(raw)
    secrets = read_secrets(mail, addresses)
    shown = ", ".join(addresses)
    out = [*_secret_findings(sender, shown, secrets), *_content_findings(tx, shown, addresses, mail),
           *_reuse_findings(world, tx, shown, secrets, message_id)]
    if not out:
        what = ", ".join([f"code {c}" for c in secrets.codes] + [f"link {u}" for u in secrets.links])
        out.append(finding(EVIDENCE, f"verification of {shown} by {what}", "info",
                           fr=f"vérification de {shown} par " + ", ".join([f"le code {c}" for c in secrets.codes] + [f"le lien {u}" for u in secrets.links])))
    return out


def _secret_findings(sender: str, shown: str, secrets: Secrets) -> list[dict]:
    """No code nor unique link; a link in clear; a code too short."""
    out: list[dict] = []
    if not secrets.codes and not secrets.links:
        because = ""
        if secrets.weak_links:
            because = (f"; its link {secrets.weak_links[0]} carries no unguessable token (at least {MIN_TOKEN} "
                       "characters other than the address), so anyone could forge it")
        out.append(finding(RULE, f"the mail from {sender} to {shown} (outside MSSanté) carries neither a "
                           "verification code nor a unique link to verify the address" + because, "error",
                           fr=f"le courriel de {sender} à {shown} (hors MSSanté) ne porte ni code de vérification ni lien unique pour vérifier l'adresse" + (f" ; son lien {secrets.weak_links[0]} ne porte aucun jeton imprévisible (au moins {MIN_TOKEN} caractères autres que l'adresse), n'importe qui pourrait donc le forger" if secrets.weak_links else "")))
    for link in secrets.links:
        host = (urllib.parse.urlsplit(link).hostname or "").lower()
        if link.lower().startswith("http:") and host not in ("localhost", "127.0.0.1", "::1"):
            out.append(finding(RULE, f"the verification link {link} is not https: its token travels in clear",
                               "warning",
                               fr=f"le lien de vérification {link} n'est pas en https : son jeton circule en clair"))
    for code in secrets.codes:
        if len(code) < MIN_CODE:
            out.append(finding(RULE, f"the verification code {code} has {len(code)} characters: at least "
                               f"{MIN_CODE} are expected, a shorter code can be guessed", "warning",
                               fr=f"le code de vérification {code} a {len(code)} caractères : au moins {MIN_CODE} sont attendus, un code plus court peut être deviné"))
    return out


def _content_findings(tx: Tx, shown: str, addresses: list[str], mail: MailText) -> list[dict]:
    """Several addresses at once; an attachment or a patient's INS in a mail to an address not verified yet."""
    out: list[dict] = []
    if len(addresses) > 1:
        out.append(finding(RULE, f"one verification mail went to several addresses ({shown}): it cannot prove "
                           "which of them the user owns; send one mail per address", "warning",
                           fr=f"un même courriel de vérification est parti vers plusieurs adresses ({shown}) : il ne peut pas prouver laquelle appartient à l'utilisateur ; envoyez un courriel par adresse"))
    for name in mail.attachments:
        out.append(finding(RULE, f"the verification mail to {shown} carries an attachment ({name}) although the "
                           "address is not verified yet: nothing but the verification goes to it", "error",
                           fr=f"le courriel de vérification à {shown} porte une pièce jointe ({name}) alors que l'adresse n'est pas encore vérifiée : rien d'autre que la vérification ne doit y partir"))
    for nir in dict.fromkeys(_NIR.findall(mail.text)):
        if tx.get("patients", ins=nir) is not None:
            out.append(finding(RULE, f"the verification mail to {shown} names the INS {nir} of a patient although "
                               "the address is not verified yet", "error",
                               fr=f"le courriel de vérification à {shown} nomme l'INS {nir} d'un patient alors que l'adresse n'est pas encore vérifiée"))
    return out


def _reuse_findings(world: World, tx: Tx, shown: str, secrets: Secrets, message_id: str) -> list[dict]:
    """A code or link sent before; this mail's are remembered (in the delivery's transaction)."""
    out: list[dict] = []
    seen = tx.meta_get(SEEN, [])
    now = world.clock.now_iso()
    for kind, value in [("code", c) for c in secrets.codes] + [("link", u) for u in secrets.links]:
        earlier = next((s for s in seen if s["kind"] == kind and s["value"] == value), None)
        if earlier is not None:
            out.append(finding(RULE, f"the {kind} {value} was already sent to {earlier['addresses']} at "
                               f"{earlier['time']} ({earlier['message_id'] or 'no Message-ID'}): each "
                               "verification must have its own", "error",
                               fr=f"{'le code' if kind == 'code' else 'le lien'} {value} a déjà été envoyé à {earlier['addresses']} le {earlier['time']} ({earlier['message_id'] or 'sans Message-ID'}) : chaque vérification doit avoir le sien"))
        seen.append({"kind": kind, "value": value, "addresses": shown, "time": now, "message_id": message_id})
    tx.meta_set(SEEN, seen[-KEEP:])
    return out
