"""World errors on the PFI's wire: a ZAM business acknowledgement whose ERR-5 carries the guide's
900-905 codes where they apply (table applicationErrorCondition of the ANS guide), and the DMP's own code
otherwise (ERR-5 code^label^DMP_ERROR_CODE)."""

from __future__ import annotations

from ...world import errors
from .hl7 import E_APPLICATION, ErrorItem

ZAM_LABELS = {
    "900": "Version du document incorrecte lors d'une demande de remplacement/suppression",
    "901": "Auteur non autorisé à remplacer ou supprimer un document",
    "902": "Identifiant patient inconnu",
    "903": "INS non présent dans le document",
    "904": "L'INS transmis ne correspond pas exactement à celui stocké dans la base du consommateur",
    "905": "L'INS transmis n'est pas complet",
    "906": "Autre erreur",
}
# world error code -> ZAM code, for the outcomes the guide names
ZAM_FOR_CODE = {
    errors.NotCurrentVersion.code: "900",
    errors.UnknownDocument.code: "900",   # TXA-12 / TXA-13 name no current version in the DMP
    errors.DocumentDeleted.code: "900",
    errors.NotAuthor.code: "901",
    errors.UnknownPatient.code: "902",
}


class ZamRefusal(Exception):
    """A refusal decided by the PFI itself before calling the DMP (the patient's identity)."""

    def __init__(self, zam: str, text: str) -> None:
        super().__init__(text)
        self.zam, self.text = zam, text

    @property
    def code(self) -> str:
        return f"ZAM_{self.zam}"


def zam_error(exc: errors.WorldError | ZamRefusal) -> tuple[str, ErrorItem]:
    """(the ZAM code, or the DMP's error code, for the journal; the ERR segment of the ZAM)."""
    if isinstance(exc, ZamRefusal):
        zam, text = exc.zam, exc.text
    else:
        zam, text = ZAM_FOR_CODE.get(exc.code, ""), exc.message
        if not zam:
            return exc.code, ErrorItem(E_APPLICATION, text, application=f"{exc.code}^{_hl7(exc.message)}^DMP_ERROR_CODE")
    return zam, ErrorItem(E_APPLICATION, text, application=f"{zam}^{ZAM_LABELS[zam]}^applicationErrorCondition")


def _hl7(text: str) -> str:
    return text.replace("^", " ").replace("|", " ").replace("&", " ").replace("~", " ").replace("\\", "/")[:200]
