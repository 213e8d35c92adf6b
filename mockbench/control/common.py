"""What the control API's blueprints share: the error they raise, reading a JSON body and query integers, the
paginated list answer, bounded messages.

Errors are JSON {"error": CODE, "message": TEXT} with a 4xx status; a world error keeps its stable code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from flask import Response, jsonify, request

from ..world import errors, xlock
from ..world.store import StorageFull
from ..world.xlock import WriteLockTimeout

MAX_LIST_PAGE = 10_000   # items per page of a paginated list (?limit=&offset=)
DEFAULT_LIST_PAGE = 100
# An error answer says enough to fix the request and no more: its size never grows with the input's.
MAX_PROBLEMS = 50
MAX_MESSAGE = 8 * 1024


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def status_of(exc: errors.WorldError) -> int:
    if isinstance(exc, errors.NotFound):
        return 404
    if isinstance(exc, errors.InvalidRequest):
        return 400
    return 409


def pick(d: dict, names: tuple[str, ...]) -> dict:
    return {k: d.get(k) for k in names}


def json_body() -> dict:
    """The request's JSON object ({} for an empty body); 400 INVALID_JSON otherwise."""
    if not request.data:
        return {}
    try:
        data = json.loads(request.data)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "INVALID_JSON", "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "INVALID_JSON", "the request body must be a JSON object")
    return data


def storage_full_response(exc: StorageFull) -> Response:
    """507 Insufficient Storage (RFC 4918 11.5) in the prefix's own error form: what a full disk is on the HTTP
    port (the DMP and the Annuaire answer it in their own bodies). Not logged: the store logs each episode."""
    if request.path.startswith("/oidc"):   # RFC 6749 4.1.2.1: temporarily_unavailable
        response = jsonify(error="temporarily_unavailable", error_description=str(exc))
    else:
        response = jsonify(error=StorageFull.code, message=str(exc))
    response.status_code = 507
    response.headers["Retry-After"] = "30"
    return response


def store_busy_response(exc: WriteLockTimeout) -> Response:
    """503 Service Unavailable with Retry-After (RFC 9110 15.6.4 and 10.2.3: a temporary condition, the same
    request may succeed after the delay) in the prefix's own error form: another process held the world's write
    lock past its wait (world/xlock.py), nothing changed. Not 507: storage is not the trouble. The delay is the
    lock's wait, which such a holder outlasted once already. Not logged: the store logs each episode."""
    if request.path.startswith("/oidc"):   # RFC 6749 4.1.2.1: temporarily_unavailable
        response = jsonify(error="temporarily_unavailable", error_description=str(exc))
    else:
        response = jsonify(error=WriteLockTimeout.code, message=str(exc))
    response.status_code = 503
    response.headers["Retry-After"] = str(math.ceil(xlock.WAIT))
    return response


def bounded(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"


def listing(page: Callable[[int, int | None], list], total: Callable[[], int]) -> Response:
    """A list route. With `limit` or `offset` in the query: one page, `{"total", "offset", "limit", "items"}`
    (worlds of 100,000: issue 21, point 6). Without: every item as a bare JSON array, as before (existing
    clients), with the total in `X-Total-Count` either way."""
    offset, limit = int_arg("offset"), int_arg("limit")
    if offset is None and limit is None:
        items = page(0, None)
        response = jsonify(items)
        response.headers["X-Total-Count"] = str(len(items))
        return response
    offset = offset or 0
    limit = DEFAULT_LIST_PAGE if limit is None else limit
    if offset < 0:
        raise ApiError(400, "INVALID_PARAMETER", "offset must be 0 or more")
    if not 1 <= limit <= MAX_LIST_PAGE:
        raise ApiError(400, "INVALID_PARAMETER", f"limit must be between 1 and {MAX_LIST_PAGE}")
    count = total()
    response = jsonify(total=count, offset=offset, limit=limit, items=page(offset, limit))
    response.headers["X-Total-Count"] = str(count)
    return response


def int_arg(name: str) -> Any:
    value = request.args.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, "INVALID_PARAMETER", f"{name} must be a whole number") from None
