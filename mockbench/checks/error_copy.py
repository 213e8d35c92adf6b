"""MSS/UX.12: an error MDN submitted by a hospital or applicative mailbox with no copy delivered to a mailbox of
role `error` of the same structure within UX12_COPY_WINDOW_SECONDS (in the same message or another); or a
package the bench found broken, fetched by such a mailbox, then neither an error MDN answering it nor any mail
to the error mailbox within the window (DOMAIN.md section 3: without an MDN request, a standard mail is
expected). End."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..formats.mime import read_mdn
from ..world.journal import finding
from ..world.model import Mailbox
from ..world.store import Tx
from .common import journal_raw, timestamp
from .registry import rule

if TYPE_CHECKING:
    from ..world.world import World

RULE = "MSS/UX.12"
# How far from the error MDN (before or after) its copy to the error mailbox may be delivered.
UX12_COPY_WINDOW_SECONDS = 3600.0


@dataclass
class _Mailboxes:
    """The world's mailboxes as the rule sees them: the hospital's software, each structure's error mailboxes
    and when each of those received something."""
    boxes: dict[str, Mailbox]
    hospital: set[str]
    errors_of: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))   # structure -> its
    received: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))   # error mailbox -> times

    @classmethod
    def read(cls, world: World, tx: Tx) -> _Mailboxes:
        boxes = {m.address.lower(): m for m in world.directory.mailboxes(tx)}
        hospital = {a for a, m in boxes.items()
                    if m.role == "hospital" or (m.type == "APP" and m.role not in ("outside", "error"))}
        return cls(boxes, hospital)

    def read_received(self, world: World, tx: Tx, deliveries: list[dict]) -> None:
        """When each error mailbox received something: its messages, and the journal's deliveries into it (a
        message expunged since still counts)."""
        for address, box in self.boxes.items():
            if box.role == "error":
                self.errors_of[box.owner].append(address)
        for addresses in self.errors_of.values():
            for address in addresses:
                times = (timestamp(m.received_at) for m in world.mss.messages(tx, address))
                self.received[address].extend(t for t in times if t is not None)
        for entry in deliveries:
            address = str(entry.get("actor") or "").lower()
            ts = timestamp(entry.get("time"))
            if address in self.boxes and self.boxes[address].role == "error" and ts is not None:
                self.received[address].append(ts)

    def copied(self, owner: str, ts: float | None, *, after: bool = False) -> bool:
        """Whether an error mailbox of `owner` received something within the window around `ts` (after it
        only, with `after`)."""
        low = 0 if after else -UX12_COPY_WINDOW_SECONDS
        return ts is not None and any(low <= t - ts <= UX12_COPY_WINDOW_SECONDS
                                      for address in self.errors_of.get(owner, [])
                                      for t in self.received.get(address, []))


@rule(RULE, "run", "An error MDN, or a package the software could not integrate, leaves a copy in an error "
      "mailbox of the structure",
      fr="Un MDN d'erreur, ou un paquet que le logiciel n'a pas pu intégrer, laisse une copie dans une boîte "
         "aux lettres d'erreur de la structure",
      channel="mss", operations=("SUBMIT", "DELIVER", "IMAP_FETCH"))
def error_copies(world: World, tx: Tx, entries: list[dict]) -> list[dict]:
    boxes = _Mailboxes.read(world, tx)
    submits = [e for e in entries if e["operation"] == "SUBMIT" and e.get("verdict") == "accepted"
               and str(e.get("actor") or "").lower() in boxes.hospital]
    fetches = [e for e in entries if e["operation"] == "IMAP_FETCH"
               and str(e.get("actor") or "").lower() in boxes.hospital and e.get("ref")]
    if not submits and not fetches:
        return []
    boxes.read_received(world, tx, [e for e in entries if e["operation"] == "DELIVER"])
    out, answered = _error_mdns(tx, boxes, submits)
    out.extend(_broken_fetches(world, tx, boxes, fetches, answered))
    return out


def _error_mdns(tx: Tx, boxes: _Mailboxes, submits: list[dict]) -> tuple[list[dict], set[tuple[str, str]]]:
    """The findings on error MDNs without their copy, and the (structure, original Message-ID) they answered."""
    out: list[dict] = []
    answered: set[tuple[str, str]] = set()
    for entry in submits:
        raw = journal_raw(tx, entry["seq"])
        if "disposition-notification" not in raw.lower():
            continue
        shape = read_mdn(raw.encode("utf-8"))   # the SMTP door's reading of the same MDN
        if shape is None or shape.error is None:
            continue
        sender = str(entry["actor"]).lower()
        owner = boxes.boxes[sender].owner
        if shape.original:
            answered.add((owner, shape.original))
        about = f" answering {shape.original}" if shape.original else ""
        about_fr = f" en réponse à {shape.original}" if shape.original else ""
        mailboxes = boxes.errors_of.get(owner)
        if not mailboxes:
            whose = owner or "its structure"
            out.append({**finding(RULE, f"{sender} sent an error MDN{about}, but {whose} has no "
                                  "mailbox of role error to receive the copy", "error",
                                  fr=f"{sender} a envoyé un MDN d'erreur{about_fr}, mais {owner or 'sa structure'} n'a aucune boîte aux lettres de rôle erreur pour en recevoir la copie"),
                        "entries": [entry["seq"]]})
        elif not boxes.copied(owner, timestamp(entry.get("time"))):
            out.append({**finding(RULE, f"{sender} sent an error MDN{about} with no copy delivered to "
                                  f"the error mailbox ({', '.join(sorted(mailboxes))}) within "
                                  f"{UX12_COPY_WINDOW_SECONDS:g} s", "error",
                                  fr=f"{sender} a envoyé un MDN d'erreur{about_fr} sans copie remise à la boîte aux lettres d'erreur ({', '.join(sorted(mailboxes))}) dans les {UX12_COPY_WINDOW_SECONDS:g} s"), "entries": [entry["seq"]]})
    return out, answered


def _broken_fetches(world: World, tx: Tx, boxes: _Mailboxes, fetches: list[dict],
                    answered: set[tuple[str, str]]) -> list[dict]:
    """A package the bench found broken, fetched by the hospital's software, then neither an error MDN nor a
    mail to the error mailbox."""
    out: list[dict] = []
    inbox: dict[str, dict[str, Any]] = {}
    seen: set[tuple[str, str]] = set()
    for entry in fetches:
        address, ref = str(entry["actor"]).lower(), str(entry["ref"]).strip()
        if (address, ref) in seen:
            continue
        seen.add((address, ref))
        if address not in inbox:
            inbox[address] = {m.message_id.strip(): m for m in world.mss.messages(tx, address)}
        message = inbox[address].get(ref)
        broken = [f for f in (message.findings if message else []) if f.get("severity") == "error"]
        owner = boxes.boxes[address].owner
        if not broken or (owner, ref) in answered or boxes.copied(owner, timestamp(entry.get("time")), after=True):
            continue
        reasons = "; ".join(str(f.get("message")) for f in broken[:2])
        reasons_fr = "; ".join(str(f.get("message_fr") or f.get("message")) for f in broken[:2])
        out.append({**finding(RULE, f"{address} fetched {ref}, whose package cannot be integrated "
                              f"({reasons}), and neither answered an error MDN nor wrote to an error mailbox",
                              "error",
                              fr=f"{address} a relevé {ref}, dont le paquet ne peut pas être intégré ({reasons_fr}), et n'a ni répondu par un MDN d'erreur ni écrit à une boîte aux lettres d'erreur"), "entries": [entry["seq"]]})
    return out
