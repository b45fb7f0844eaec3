"""The OpenAPI 3.1 document of the JSON API, built from the routes registered on the ``JsonApi``.

Generated at request time from ``JsonApi.routes``, it lists exactly the endpoints the router
dispatches, with the roles each one admits, so it cannot drift from the code. What it does not know
(handlers take a free-form JSON body and return whatever JSON they build) it leaves as generic
schemas rather than guess.
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
import re
from collections.abc import Callable, Iterable

from callcenter.web.api import Route
from callcenter.web.auth import SESSION_COOKIE, Role
from callcenter.web.staff import STAFF_COOKIE

log = logging.getLogger(__name__)

OPENAPI_VERSION = "3.1.0"

# JsonApi.add turns each "{name}" of a path into exactly this group (and nothing else into a group):
# reversing it gives back the path the route was registered with.
_PATH_GROUP = re.compile(r"\(\?P<(\w+)>\[A-Za-z0-9_\.-\]\+\)")
_PARAMETER_VALUE = "^[A-Za-z0-9_.-]+$"

# Which security schemes admit each role, in the order they are listed on an operation.
BEARER, STAFF_SESSION, AGENT_SESSION = "bearerAuth", "staffSession", "agentSession"
_SCHEMES_OF_ROLE: dict[Role, tuple[str, ...]] = {
    Role.ADMIN: (BEARER, STAFF_SESSION),  # the API token acts as an admin
    Role.SUPERVISOR: (STAFF_SESSION,),
    Role.QA: (STAFF_SESSION,),
    Role.AGENT: (AGENT_SESSION,),
    Role.PUBLIC: (),
}
_SCHEME_ORDER = (BEARER, STAFF_SESSION, AGENT_SESSION)

SECURITY_SCHEMES = {
    BEARER: {"type": "http", "scheme": "bearer",
             "description": "The API token kept in <data_dir>/api-token; it acts as an admin."},
    STAFF_SESSION: {"type": "apiKey", "in": "cookie", "name": STAFF_COOKIE,
                    "description": "A supervisor's, QA analyst's or admin's session after the staff login."},
    AGENT_SESSION: {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                    "description": "An agent's desktop session after the agent login; acts on that agent only."},
}

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "What went wrong, for a person to read."},
        "field": {"type": "string", "description": "The request field the error is about, when there is one."},
    },
}

# Shared error responses (components.responses), by status.
ERROR_RESPONSES = {
    "400": "The request is not acceptable (a malformed body or a bad field).",
    "401": "No session and no API token came with the request.",
    "403": "The caller's role may not call this endpoint.",
    "404": "No such endpoint, or no such thing as the path names.",
    "415": "A POST body not sent as application/json.",
}


def default_role_description(role: Role) -> str:
    return {
        Role.PUBLIC: "anyone who can reach the port",
        Role.AGENT: "an agent (acts on that agent's own calls only)",
        Role.SUPERVISOR: "a supervisor",
        Role.QA: "a QA analyst",
        Role.ADMIN: "an admin, or the API token",
    }[role]


def route_path(route: Route) -> str:
    """The path a route was registered with ("/api/calls/{call_id}/explain"), from its pattern."""
    source = route.pattern.pattern
    if not (source.startswith("^") and source.endswith("$")):
        raise ValueError(f"route pattern {source!r} was not made by JsonApi.add")
    path = _PATH_GROUP.sub(r"{\1}", source[1:-1])
    if "(" in path:
        raise ValueError(f"route pattern {source!r} has a group JsonApi.add does not make")
    return path


def path_parameters(path: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", path)


def operation_id(method: str, path: str) -> str:
    """An id from the method and path: GET /api/calls/{call_id}/explain -> get_api_calls_by_call_id_explain."""
    words = re.sub(r"\{(\w+)\}", r"by_\1", path)
    return "_".join([method.lower(), *re.findall(r"[A-Za-z0-9]+", words)]).lower()


def handler_doc(handler: Callable[..., object]) -> str | None:
    """The handler's own docstring: functions and methods only (a partial's or a callable object's
    class docstring describes the class, not the endpoint)."""
    while isinstance(handler, functools.partial):
        handler = handler.func
    return inspect.getdoc(handler) if inspect.isroutine(handler) else None


def _security(roles: frozenset[Role]) -> list[dict[str, list]]:
    schemes = {scheme for role in roles for scheme in _SCHEMES_OF_ROLE[role]}
    return [{scheme: []} for scheme in _SCHEME_ORDER if scheme in schemes]


def _error_ref(status: str) -> dict:
    return {"$ref": f"#/components/responses/Error{status}"}


def _operation(route: Route, path: str, op_id: str, describe_role: Callable[[Role], str]) -> dict:
    method = route.method.upper()
    roles = sorted(route.roles, key=list(Role).index)
    doc = handler_doc(route.handler)
    summary, _, more = (doc or f"{method} {path}").partition("\n")
    who = "Who may call it: " + "; ".join(describe_role(role) for role in roles) + "."
    public = Role.PUBLIC in route.roles
    operation: dict = {
        "operationId": op_id,
        "summary": summary.strip(),
        "description": "\n\n".join(part for part in (more.strip(), who) if part),
        "x-roles": [role.value for role in roles],
        # public: an explicit empty list, i.e. no credentials needed
        "security": [] if public else _security(route.roles),
        "responses": {
            "200": {"description": "The endpoint's JSON result.",
                    # handlers return objects or lists: nothing narrower is known for all of them
                    "content": {"application/json": {"schema": {}}}},
            "400": _error_ref("400"),
            "404": _error_ref("404"),
        },
    }
    if not public:
        operation["responses"].update({"401": _error_ref("401"), "403": _error_ref("403")})
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": _PARAMETER_VALUE}}
        for name in path_parameters(path)
    ]
    if parameters:
        operation["parameters"] = parameters
    if method == "POST":
        # JsonApi reads a POST body only as a JSON object (415 otherwise); an empty body is {}.
        operation["requestBody"] = {"required": False,
                                    "content": {"application/json": {"schema": {"type": "object"}}}}
        operation["responses"]["415"] = _error_ref("415")
    return operation


def build_openapi(routes: Iterable[Route], *, title: str, version: str,
                  describe_role: Callable[[Role], str] = default_role_description,
                  description: str | None = None) -> dict:
    """The OpenAPI 3.1.0 document of ``routes`` (``JsonApi.routes``), in registration order.

    ``describe_role`` words each role in the operations' descriptions ("Who may call it: ...").
    """
    paths: dict[str, dict] = {}
    used_ids: set[str] = set()
    for route in routes:
        path = route_path(route)
        operations = paths.setdefault(path, {})
        method = route.method.lower()
        if method in operations:
            # JsonApi dispatches to the first route that matches, so a later twin is never reached
            log.warning("OpenAPI: %s %s is registered twice; documenting the first", route.method, path)
            continue
        base_id = op_id = operation_id(route.method, path)
        suffix = 2
        while op_id in used_ids:  # "/api/a-b" and "/api/a_b" would otherwise share one id
            op_id, suffix = f"{base_id}_{suffix}", suffix + 1
        used_ids.add(op_id)
        operations[method] = _operation(route, path, op_id, describe_role)

    info = {"title": title, "version": version}
    if description:
        info["description"] = description
    return {
        "openapi": OPENAPI_VERSION,
        "info": info,
        "paths": paths,
        # a copy: a caller may edit its document without changing the next one
        "components": copy.deepcopy({
            "schemas": {"Error": ERROR_SCHEMA},
            "responses": {
                f"Error{status}": {"description": text,
                                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
                for status, text in ERROR_RESPONSES.items()
            },
            "securitySchemes": SECURITY_SCHEMES,
        }),
    }
