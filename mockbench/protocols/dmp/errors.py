"""World errors on the DMP's wire.

XDS transactions (TD2.1, TD3.x) answer a RegistryResponse with status Failure and one RegistryError; the
error code is IHE's where IHE defines one, else a stable DMP-style code made from the world's code
(`AUTHORIZATION_WITHDRAWN` -> `DMPAuthorizationWithdrawn`): the real DMP's catalogue is not public. The other
services (TD0.x, TD1.6) answer a SOAP 1.2 Fault, Sender, with the same DMP-style code as its Subcode.
"""

from __future__ import annotations

from ...world import errors
from ...world.dmp_codes import IHE_CODES, dmp_code, registry_code


def fault_code(exc: errors.WorldError) -> str:
    return dmp_code(exc.code)


__all__ = ["IHE_CODES", "dmp_code", "fault_code", "registry_code"]
