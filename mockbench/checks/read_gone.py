"""DMP/TD3.3c: a TD3.2 for a document that was deleted or masked to the reader when it was asked for (the DPI
should have shown it as no longer accessible), or replaced (info: a newer version exists). On the entry."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..world.errors import DocumentMasked
from ..world.journal import finding
from ..world.model import MASQUE_PS
from ..world.store import Tx
from .registry import rule

if TYPE_CHECKING:
    from ..world.world import World

RULE = "DMP/TD3.3c"


def world_code(code: Any) -> str:
    """The world's error code behind a door's: `DMPDocumentMasked` (the DMP door's derived code) or
    `DOCUMENT_MASKED` -> `DOCUMENT_MASKED`."""
    text = str(code or "")
    if "_" in text or text.isupper():
        return text
    return re.sub(r"(?<!^)(?=[A-Z])", "_", text.removeprefix("DMP")).upper()


def _when(tx: Tx, patient: str, unique_id: str, action: str, lang: str = "en") -> str:
    """The time of the latest `action` trace of the document, as " at <time>" (" le <time>" in French), or ""."""
    rows = tx.conn.execute(
        "SELECT json_extract(data, '$.time') FROM traces WHERE ns = ? AND patient = ? "
        "AND json_extract(data, '$.document') = ? AND json_extract(data, '$.action') = ? "
        "ORDER BY seq DESC LIMIT 1", (tx.ns, patient, unique_id, action)).fetchone()
    if not rows or not rows[0]:
        return ""
    return f" at {rows[0]}" if lang == "en" else f" le {rows[0]}"


@rule(RULE, "entry", "The software offers no document deleted from the DMP or masked to professionals, and shows "
      "that a newer version of a replaced one exists",
      fr="Le logiciel ne propose aucun document supprimé du DMP ou masqué aux professionnels, et indique qu'une "
         "version plus récente d'un document remplacé existe",
      channel="dmp", operations=("TD3.2",))
def read_gone(world: World, tx: Tx, entry: dict) -> list[dict]:
    if not entry.get("patient") or not entry.get("document"):
        return []
    row = tx.get("documents", unique_id=entry["document"], current=1)
    if row is None or row.get("patient") != entry["patient"]:
        return []
    patient, unique_id, status = entry["patient"], str(row.get("unique_id")), row.get("status")
    if status == "deleted":
        return [finding(RULE, f"TD3.2 asks for {unique_id}, deleted from {patient}'s DMP"
                        f"{_when(tx, patient, unique_id, 'suppression')}: the DPI must show it as "
                        "deleted rather than offer it", "warning",
                        fr=f"la TD3.2 demande {unique_id}, supprimé du DMP de {patient}{_when(tx, patient, unique_id, 'suppression', 'fr')} : le DPI doit l'afficher comme supprimé plutôt que le proposer")]
    masked_to_reader = (MASQUE_PS in (row.get("confidentiality") or []) and entry.get("verdict") != "accepted"
                        and world_code(entry.get("code")) == DocumentMasked.code)
    if masked_to_reader:
        return [finding(RULE, f"TD3.2 asks for {unique_id}, masked to professionals in "
                        f"{patient}'s DMP{_when(tx, patient, unique_id, 'masquage')}: the "
                        "DPI must show it as no longer accessible rather than offer it", "warning",
                        fr=f"la TD3.2 demande {unique_id}, masqué aux professionnels dans le DMP de {patient}{_when(tx, patient, unique_id, 'masquage', 'fr')} : le DPI doit l'afficher comme n'étant plus accessible plutôt que le proposer")]
    if status == "deprecated" and row.get("replaced_by"):
        return [finding(RULE, f"TD3.2 reads {unique_id}, replaced by {row['replaced_by']}: the DPI "
                        "should show that a newer version exists", "info",
                        fr=f"la TD3.2 lit {unique_id}, remplacé par {row['replaced_by']} : le DPI devrait indiquer qu'une version plus récente existe")]
    return []
