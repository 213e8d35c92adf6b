"""World errors on the PFI's wire: the ERR segment of the business acknowledgements (ZAM).

trans-cda-r2/profils-messages.md, "Contraintes à appliquer au message ZAM^Z01^ZAM_Z01", segment ERR: ERR-3
`207^Application error^messageErrorCondition`, ERR-5 the DMP's error as `code^libellé^DMP_ERROR_CODE` (the
codes of the DMP integration guide's annex A7-1). The bench's DMP door answers each world error with one code
(world/dmp_codes.py, `registry_code`): the Z01 carries that same code, so a DPI reads in a Z01 what the
DMP said on its own wire.

trans-cda-r2/error-codes.md, "Codes erreurs de l'accusé métier de lecture/traitement de la demande": the
table applicationErrorCondition (900-906) is the consumer's, in its ACK to an inbound MDM and, relayed by the
PFI from the MDN, in ZAM^Z03's ERR-5 `code^libellé^applicationErrorCondition` (profils-messages.md,
"Contraintes à appliquer au message ZAM^Z03^ZAM_Z01"). It is not used in a Z01.
"""

from __future__ import annotations

from ...world import errors
from ...world.dmp_codes import registry_code
from ...world.store import StorageFull
from ...world.xlock import WriteLockTimeout
from .hl7 import E_APPLICATION, ErrorItem

# What the store cannot take now (world/store.py UNAVAILABLE), with nothing changed: a full disk (StorageFull), another process
# holding the world's write lock past its wait (WriteLockTimeout). Both are answered MSA-1 AR, "rejeté pour une
# raison circonstancielle. Il peut être réémis plus tard" (trans-cda-r2/profils-messages.md, ACK section), with
# ERR 207: the DPI sends the message again later. The ACK's control id (MSH-10) comes from the clock, under a
# prefix that tells them apart: the store's counter cannot move.


def unavailable_control_prefix(exc: StorageFull | WriteLockTimeout) -> str:
    return "MBFULL" if isinstance(exc, StorageFull) else "MBBUSY"

APPLICATION_ERRORS = {
    "900": "Version du document incorrecte lors d'une demande de remplacement/suppression",
    "901": "Auteur non autorisé à remplacer ou supprimer un document",
    "902": "Identifiant patient inconnu",
    "903": "INS non présent dans le document",
    "904": "L'INS transmis ne correspond pas exactement à celui stocké dans la base du consommateur",
    "905": "L'INS transmis n'est pas complet",
    "906": "Autre erreur",
}


def z01_error(exc: errors.WorldError) -> tuple[str, ErrorItem]:
    """(the DMP's error code, the ERR segment of the ZAM^Z01 N that reports it)."""
    code = registry_code(exc)
    return code, ErrorItem(E_APPLICATION, exc.message, application=f"{_hl7(code)}^{_hl7(exc.message)}^DMP_ERROR_CODE")


def z03_error(code: str, text: str) -> ErrorItem:
    """The ERR of a ZAM^Z03 N from the error an MDN reported (`code^libellé` in its Disposition): ERR-5
    `code^libellé^applicationErrorCondition`, the label of error-codes.md's table when the code is in it."""
    code = code.strip()
    label = APPLICATION_ERRORS.get(code) or text.strip() or APPLICATION_ERRORS["906"]
    return ErrorItem(E_APPLICATION, f"the recipient could not integrate the document: {code} {text}".strip(),
                     application=f"{_hl7(code)}^{_hl7(label)}^applicationErrorCondition")


def _hl7(text: str) -> str:
    return text.replace("^", " ").replace("|", " ").replace("&", " ").replace("~", " ").replace("\\", "/")[:200]
