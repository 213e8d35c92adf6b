"""One error hierarchy for the world. Errors carry a stable code and a message, never a wire format:
each door maps the code to its own wire form (SOAP fault, RegistryError, HL7 ERR/ZAM, SMTP status...)."""

from __future__ import annotations


class WorldError(Exception):
    code = "WORLD_ERROR"
    message = "the world refused the operation"

    def __init__(self, message: str | None = None, **details: object) -> None:
        self.message = message or type(self).message
        self.details = details
        super().__init__(self.message)

    def as_dict(self) -> dict:
        return {"error": self.code, "message": self.message}


def all_error_classes() -> list[type[WorldError]]:
    """Every WorldError subclass, so that a door test can check it maps them all."""
    seen: list[type[WorldError]] = []
    stack = [WorldError]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                stack.append(sub)
    return sorted(seen, key=lambda c: c.code)


class NotFound(WorldError):
    code = "NOT_FOUND"
    message = "no such object"


class UnknownPatient(NotFound):
    code = "PATIENT_UNKNOWN"
    message = "the patient is not known"


class UnknownProfessional(NotFound):
    code = "PROFESSIONAL_UNKNOWN"
    message = "the professional is not known"


class UnknownStructure(NotFound):
    code = "STRUCTURE_UNKNOWN"
    message = "the structure is not known"


class UnknownDocument(NotFound):
    code = "DOCUMENT_UNKNOWN"
    message = "no document has that identifier in this DMP"


class UnknownMailbox(NotFound):
    code = "MAILBOX_UNKNOWN"
    message = "no mailbox has that address"


class InvalidRequest(WorldError):
    code = "INVALID_REQUEST"
    message = "the request is not valid"


class InvalidIdentifier(InvalidRequest):
    code = "IDENTIFIER_INVALID"
    message = "an identifier is not valid"


class DuplicateIdentifier(InvalidRequest):
    code = "IDENTIFIER_DUPLICATE"
    message = "that identifier is already used"


class DmpAbsent(WorldError):
    code = "DMP_ABSENT"
    message = "the patient has no DMP"


class DmpClosed(WorldError):
    code = "DMP_CLOSED"
    message = "the patient's DMP is closed"


class DmpAlreadyActive(WorldError):
    code = "DMP_ALREADY_ACTIVE"
    message = "the patient's DMP is already active"


class AuthorizationMissing(WorldError):
    code = "AUTHORIZATION_MISSING"
    message = "the professional is not authorized on this DMP"


class AuthorizationWithdrawn(AuthorizationMissing):
    code = "AUTHORIZATION_WITHDRAWN"
    message = "the patient withdrew the authorization"


class AuthorizationExpired(AuthorizationMissing):
    code = "AUTHORIZATION_EXPIRED"
    message = "the authorization has expired"


class ProfessionalBlocked(WorldError):
    code = "PROFESSIONAL_BLOCKED"
    message = "the patient blocked this professional"


class AccessModeRefused(WorldError):
    code = "ACCESS_MODE_REFUSED"
    message = "this access mode is not allowed here"


class PatientOpposition(AccessModeRefused):
    code = "PATIENT_OPPOSITION"
    message = "the patient opposed this access mode"


class NotAuthor(WorldError):
    code = "NOT_AUTHOR"
    message = "not the document's author (the only one who deletes it) nor of its structure (which may replace, archive or mask it)"


class DocumentDeleted(WorldError):
    code = "DOCUMENT_DELETED"
    message = "the document was deleted"


class DocumentMasked(WorldError):
    code = "DOCUMENT_MASKED"
    message = "the document is masked to professionals"


class DocumentInvisible(WorldError):
    code = "DOCUMENT_INVISIBLE"
    message = "the document is not visible to this reader"


class NotCurrentVersion(WorldError):
    code = "NOT_CURRENT_VERSION"
    message = "the document is not the current version"


class InvalidStatusChange(WorldError):
    code = "STATUS_CHANGE_INVALID"
    message = "that status change is not allowed"


class ConfidentialityConflict(InvalidRequest):
    code = "CONFIDENTIALITY_CONFLICT"
    message = "MASQUE_PS and INVISIBLE_PATIENT cannot be combined on this DMP"


class MetadataError(InvalidRequest):
    code = "METADATA_INVALID"
    message = "the document metadata is not valid"


class HashMismatch(MetadataError):
    code = "HASH_MISMATCH"
    message = "the document hash does not match its content"


class SizeMismatch(MetadataError):
    code = "SIZE_MISMATCH"
    message = "the document size does not match its content"


class PatientMismatch(InvalidRequest):
    code = "PATIENT_MISMATCH"
    message = "the patient does not match"


class NoChange(InvalidRequest):
    code = "NO_CHANGE"
    message = "the operation changes nothing"


class TokenInvalid(WorldError):
    code = "TOKEN_INVALID"
    message = "the token is not valid"


class TokenExpired(TokenInvalid):
    code = "TOKEN_EXPIRED"
    message = "the token has expired"


class TokenRevoked(TokenInvalid):
    code = "TOKEN_REVOKED"
    message = "the token was revoked"


class ScenarioError(WorldError):
    code = "SCENARIO_ERROR"
    message = "the scenario cannot be applied"


class UnknownScenario(NotFound):
    code = "SCENARIO_UNKNOWN"
    message = "no scenario has that id"


class UnknownTransition(NotFound):
    code = "TRANSITION_UNKNOWN"
    message = "the loaded scenario has no such transition"


class TransitionNotManual(WorldError):
    code = "TRANSITION_NOT_MANUAL"
    message = "that transition is not manual"


class TransitionAlreadyFired(WorldError):
    code = "TRANSITION_ALREADY_FIRED"
    message = "that manual transition has already fired; load the scenario again to replay it"
