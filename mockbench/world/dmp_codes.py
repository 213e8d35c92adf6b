"""The codes the DMP answers a world error with, whichever door relays the answer: the DMP door on its own wire
(a RegistryError, a SOAP Fault's Subcode) and the PFI in a ZAM^Z01's ERR-5 (trans-cda-r2/ack-metier-zam.md:
`code^libellé^DMP_ERROR_CODE`, what the DMP answered the PFI).

IHE's code where IHE defines one (ITI TF-3 table 4.2.4.1-2), else a stable DMP-style code made from the world's
code (`AUTHORIZATION_WITHDRAWN` -> `DMPAuthorizationWithdrawn`): the real DMP's catalogue is not public.
"""

from __future__ import annotations

from . import errors

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


__all__ = ["IHE_CODES", "dmp_code", "registry_code"]
