"""World errors on the DMP's wire.

XDS transactions (TD2.1, TD3.x) answer a RegistryResponse with status Failure and one RegistryError; the
error code is IHE's where IHE defines one, else a stable DMP-style code made from the world's code
(`AUTHORIZATION_WITHDRAWN` -> `DMPAuthorizationWithdrawn`): the real DMP's catalogue is not public. The other
services (TD0.x, TD1.6) answer a SOAP 1.2 Fault, Sender, with the same DMP-style code as its Subcode.
"""

from __future__ import annotations

from ...world import errors
from ...world.dmp_codes import IHE_CODES, dmp_code, registry_code
from ...world.store import StorageFull
from ...world.xlock import WriteLockTimeout
from .soap import SoapFault


def fault_code(exc: errors.WorldError) -> str:
    return dmp_code(exc.code)


# What the store cannot take now (world/store.py UNAVAILABLE), with nothing changed: a full disk (StorageFull),
# another process holding the world's write lock past its wait (WriteLockTimeout). Both are a Receiver fault, "the message could
# not be processed for reasons attributable to the processing of the message rather than to the contents of
# the message itself ... the same message may succeed at a later point in time" (SOAP 1.2 part 1, 5.4.6).
def unavailable_fault(exc: StorageFull | WriteLockTimeout) -> SoapFault:
    """The Receiver fault of a change the store cannot take now (not logged here: the store logs each episode)."""
    return SoapFault("Receiver", "DMPStorageFull" if isinstance(exc, StorageFull) else "DMPBusy", str(exc))


__all__ = ["IHE_CODES", "dmp_code", "fault_code", "registry_code", "unavailable_fault"]
