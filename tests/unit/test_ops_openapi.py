"""The OpenAPI document: built from a real JsonApi's routes, checked by openapi-spec-validator, and
compared with the routes it came from."""

from __future__ import annotations

import functools
import re

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from callcenter.ops.openapi import build_openapi, operation_id, route_path
from callcenter.web.api import JsonApi, Route
from callcenter.web.auth import FLOOR, STAFF_ROLES, Role


def desktop_state(who, **_):
    """The agent's own state.

    What the desktop polls: state, current call, queues.
    """
    return {}


def set_skill(agent_id, skill, level, **_):
    return {}


def make_api() -> JsonApi:
    api = JsonApi()
    api.add("GET", "/api/health", lambda **_: {"ok": True}, role=Role.PUBLIC)
    api.add("GET", "/api/openapi.json", lambda **_: {}, role=Role.PUBLIC)
    api.add("GET", "/api/desktop/state", desktop_state, role=Role.AGENT)
    api.add("GET", "/api/callbacks", lambda **_: [], role=FLOOR)
    api.add("POST", "/api/callbacks", lambda body, **_: {}, role=FLOOR)
    api.add("GET", "/api/qa/scores", lambda **_: [], role=STAFF_ROLES)
    api.add("POST", "/api/agents/{agent_id}/pause", lambda agent_id, **_: {})  # admin by default
    api.add("POST", "/api/agents/{agent_id}/skills/{skill}/{level}", functools.partial(set_skill))
    # two paths whose obvious ids collide
    api.add("GET", "/api/a-b", lambda **_: {})
    api.add("GET", "/api/a_b", lambda **_: {})
    return api


@pytest.fixture
def document():
    return build_openapi(make_api().routes, title="callcenter", version="0.1.0")


def operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def op(document, method, path):
    return document["paths"][path][method.lower()]


def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document, cls=OpenAPIV31SpecValidator)


def test_paths_and_methods_are_exactly_the_routes(document):
    api = make_api()
    registered = {(route.method.lower(), route_path(route)) for route in api.routes}
    documented = {(method, path) for path, method, _ in operations(document)}
    assert documented == registered
    assert set(document["paths"]["/api/callbacks"]) == {"get", "post"}


def test_paths_convert_back_to_what_was_registered():
    registered = ["/api/health", "/api/openapi.json", "/api/agents/{agent_id}/skills/{skill}/{level}"]
    api = JsonApi()
    for path in registered:
        api.add("GET", path, lambda **_: {})
    assert [route_path(route) for route in api.routes] == registered


def test_pattern_not_made_by_json_api_is_refused():
    route = Route("GET", re.compile(r"^/api/calls/(\d+)$"), lambda **_: {}, frozenset({Role.ADMIN}))
    with pytest.raises(ValueError, match="group"):
        route_path(route)


def test_operation_ids_are_unique_and_derived_from_method_and_path(document):
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))
    assert op(document, "POST", "/api/agents/{agent_id}/pause")["operationId"] == "post_api_agents_by_agent_id_pause"
    assert op(document, "GET", "/api/a_b")["operationId"] == operation_id("GET", "/api/a-b") + "_2"


def test_summary_is_the_docstring_or_generated(document):
    state = op(document, "GET", "/api/desktop/state")
    assert state["summary"] == "The agent's own state."
    assert state["description"].startswith("What the desktop polls")
    assert op(document, "GET", "/api/health")["summary"] == "GET /api/health"
    # a partial's class docstring says nothing about the endpoint
    assert op(document, "POST", "/api/agents/{agent_id}/skills/{skill}/{level}")["summary"] == \
        "POST /api/agents/{agent_id}/skills/{skill}/{level}"


def test_path_parameters(document):
    parameters = op(document, "POST", "/api/agents/{agent_id}/skills/{skill}/{level}")["parameters"]
    assert [p["name"] for p in parameters] == ["agent_id", "skill", "level"]
    assert all(p["in"] == "path" and p["required"] and p["schema"]["type"] == "string" for p in parameters)
    assert "parameters" not in op(document, "GET", "/api/health")


@pytest.mark.parametrize("method, path, roles, security", [
    ("GET", "/api/health", ["public"], []),
    ("GET", "/api/desktop/state", ["agent"], [{"agentSession": []}]),
    ("GET", "/api/callbacks", ["supervisor", "admin"], [{"bearerAuth": []}, {"staffSession": []}]),
    ("GET", "/api/qa/scores", ["supervisor", "qa", "admin"], [{"bearerAuth": []}, {"staffSession": []}]),
    ("POST", "/api/agents/{agent_id}/pause", ["admin"], [{"bearerAuth": []}, {"staffSession": []}]),
])
def test_roles_and_security(document, method, path, roles, security):
    operation = op(document, method, path)
    assert operation["x-roles"] == roles
    assert operation["security"] == security


def test_security_schemes(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert (schemes["staffSession"]["in"], schemes["staffSession"]["name"]) == ("cookie", "cc_staff")
    assert (schemes["agentSession"]["in"], schemes["agentSession"]["name"]) == ("cookie", "cc_session")


def test_error_responses(document):
    public = op(document, "GET", "/api/health")["responses"]
    guarded = op(document, "GET", "/api/callbacks")["responses"]
    assert {"200", "400", "404"} <= set(public) and not {"401", "403"} & set(public)
    assert {"200", "400", "401", "403", "404"} <= set(guarded)
    assert "415" in op(document, "POST", "/api/callbacks")["responses"]
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and set(error["properties"]) == {"error", "field"}


def test_role_descriptions_come_from_the_caller():
    document = build_openapi(make_api().routes, title="t", version="1",
                             describe_role=lambda role: f"<{role.value}>")
    assert "<supervisor>; <admin>" in op(document, "GET", "/api/callbacks")["description"]


def test_a_route_registered_twice_is_documented_once():
    api = make_api()
    api.add("GET", "/api/health", lambda **_: {"again": True}, role=Role.ADMIN)
    document = build_openapi(api.routes, title="t", version="1")
    # the router answers with the first, public one
    assert op(document, "GET", "/api/health")["x-roles"] == ["public"]
