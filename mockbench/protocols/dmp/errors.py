"""World errors on the DMP's wire.

XDS transactions (TD2.1, TD3.x) answer a RegistryResponse with status Failure and one RegistryError; the
error code is IHE's where IHE defines one, else a stable DMP-style code made from the world's code
(`AUTHORIZATION_WITHDRAWN` -> `DMPAuthorizationWithdrawn`): the real DMP's catalogue is not public. The other
services (TD0.x, TD1.6) answer a SOAP 1.2 Fault, Sender, with the same DMP-style code as its Subcode.
"""

from __future__ import annotations

from ...world import errors

# world code -> IHE error code (ITI TF-3 table 4.2.4.1-2 and ITI-57's additions)
IHE_CODES = {
    errors.UnknownPatient.code: "XDSUnknownPatientId",
    errors.PatientMismatch.code: "XDSPatientIdDoesNotMatch",
    errors.UnknownDocument.code: "XDSDocumentUniqueIdError",
    errors.DuplicateIdentifier.code: "XDSDuplicateUniqueIdInRegistry",
    errors.HashMismatch.code: "XDSNonIdenticalHash",
    errors.SizeMismatch.code: "XDSNonIdenticalSize",
    errors.MetadataError.code: "XDSRegistryMetadataError",
    errors.ConfidentialityConflict.code: "XDSRegistryMetadataError",
    errors.NotCurrentVersion.code: "XDSMetadataVersionError",
    errors.InvalidRequest.code: "XDSRegistryMetadataError",
}


def dmp_code(code: str) -> str:
    """AUTHORIZATION_WITHDRAWN -> DMPAuthorizationWithdrawn."""
    return "DMP" + "".join(part.capitalize() for part in code.split("_"))


def registry_code(exc: errors.WorldError) -> str:
    return IHE_CODES.get(exc.code) or dmp_code(exc.code)


def fault_code(exc: errors.WorldError) -> str:
    return dmp_code(exc.code)
