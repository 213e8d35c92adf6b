"""The Annuaire door's errors on its wire: every refusal is an HTTP status with a FHIR R4 OperationOutcome
[annuaire-v2/getting-started_api-basics.md, "Codes d'état HTTP": errors carry a 4XX or 5XX and an
OperationOutcome]. The door's stable codes, their FHIR IssueType, and the one function that writes the
OperationOutcome."""

from __future__ import annotations

from dataclasses import dataclass

ERROR_SYSTEM = "https://mockbench.dev/annuaire-error"   # the coding system of the door's stable codes
DEFAULT_ISSUE_TYPE = "processing"

# OperationOutcome.issue.code (FHIR IssueType) for each of the door's error codes.
ISSUE_TYPES = {
    "UNAUTHORIZED": "login", "PARAMETER_UNKNOWN": "not-supported", "PARAMETER_INVALID": "invalid",
    "RESOURCE_UNKNOWN": "not-found", "TYPE_UNKNOWN": "not-supported", "PAGE_UNKNOWN": "not-found",
    "API_VERSION_GONE": "not-supported", "INTERNAL": "exception",
    # FHIR R4 IssueType `transient`: "may be able to resubmit the same content" later. A full disk is 507
    # (RFC 4918 11.5); another process holding the world's write lock past its wait (world/xlock.py) is 503
    # with Retry-After (RFC 9110 15.6.4), as the API answers when it is down (door.py `_injected`).
    "STORAGE_FULL": "transient", "WORLD_BUSY": "transient",
    "THROTTLED": "throttled", "UNAVAILABLE": "transient",   # injected faults (world/faults.py)
}


@dataclass
class Refusal(Exception):
    """A request the door refuses: its HTTP status, stable code, message and the parameter at fault."""

    status: int
    code: str
    message: str
    parameter: str | None = None


def outcome(code: str, message: str, parameter: str | None = None) -> dict:
    issue: dict = {"severity": "error", "code": ISSUE_TYPES.get(code, DEFAULT_ISSUE_TYPE),
                   "details": {"coding": [{"system": ERROR_SYSTEM, "code": code}], "text": message},
                   "diagnostics": message}
    if parameter:
        issue["expression"] = [parameter]
    return {"resourceType": "OperationOutcome", "issue": [issue]}
