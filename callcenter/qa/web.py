"""QA on the web: the ``/api/qa/...`` endpoints (forms, evaluations, score roll-ups) and the QA
analyst's page at ``/qa/``.

QA analysts (and admins) score calls; supervisors read forms, evaluations and scores. Every stored
evaluation also writes an audit row, and the request fails if that row cannot be written.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from twisted.web import resource, static

from callcenter.audit import AuditLog
from callcenter.kpi.reports import ReportParamError, parse_moment, zone
from callcenter.qa.forms import AnswerError, Form, score
from callcenter.qa.rollup import roll_up
from callcenter.qa.store import QaStore
from callcenter.web.api import ApiError, JsonApi
from callcenter.web.auth import Identity, Role

STATIC_DIR = Path(__file__).resolve().parent / "static"
# The page runs its own script only, and talks to (and plays recordings from) this server only.
PAGE_CSP = (b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; media-src 'self'; "
            b"img-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
READERS = (Role.QA, Role.SUPERVISOR, Role.ADMIN)
EVALUATORS = (Role.QA, Role.ADMIN)
MAX_COMMENT = 4000

# call id -> {"agent_id", "queue"} of the recorded call, None if there is no such call
CallFacts = Callable[[str], dict | None]


class _PageFiles(static.File):
    """static.File with the page's security headers (children are made with the same class)."""

    def render_GET(self, request):
        request.setHeader(b"content-security-policy", PAGE_CSP)
        request.setHeader(b"x-content-type-options", b"nosniff")
        return super().render_GET(request)


def form_view(form: Form) -> dict:
    return {**form.model_dump(mode="json"), "fingerprint": form.fingerprint}


class QaApi:
    def __init__(self, store: QaStore, forms: Callable[[], Mapping[str, Form]], call_facts: CallFacts,
                 teams: Callable[[], Mapping[str, str]], audit: AuditLog):
        self.store = store
        self.forms = forms            # cheap: the loaded forms (read again only on a reload)
        self.call_facts = call_facts  # may read the database: called off the event loop
        self.teams = teams            # agent id -> team
        self.audit = audit

    def pages(self) -> dict[bytes, resource.Resource]:
        files = _PageFiles(str(STATIC_DIR), defaultType="text/plain")
        files.indexNames = ["index.html"]
        return {b"qa": files}

    def register(self, api: JsonApi) -> None:
        api.add("GET", "/api/qa/forms", self._forms, role=READERS)
        api.add("GET", "/api/qa/forms/{name}", self._form, role=READERS)
        api.add("POST", "/api/qa/evaluations", self._evaluate, role=EVALUATORS, audited=True)
        api.add("GET", "/api/qa/evaluations", self._evaluations, role=READERS)
        api.add("GET", "/api/qa/scores", self._scores, role=READERS)

    # ------------------------------------------------------------------ handlers
    def _forms(self, **_) -> list[dict]:
        forms = self.forms()
        return [form_view(forms[name]) for name in sorted(forms)]

    def _form(self, name: str, **_) -> dict:
        return form_view(self._form_named(name))

    async def _evaluate(self, who: Identity, body: dict, **_) -> dict:
        unknown = sorted(set(body) - {"call_id", "form", "answers", "comment"})
        if unknown:
            raise ApiError(400, f"{unknown[0]}: unknown field", field=unknown[0])
        call_id = body.get("call_id")
        if not isinstance(call_id, str) or not 0 < len(call_id) <= 64:
            raise ApiError(400, "call_id: give the recorded call's id", field="call_id")
        form = self._form_named(body.get("form"))
        answers = body.get("answers")
        if not isinstance(answers, dict):
            raise ApiError(400, "answers: give an object of question id -> answer", field="answers")
        comment = body.get("comment")
        if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT):
            raise ApiError(400, f"comment: text of at most {MAX_COMMENT} characters", field="comment")
        comment = comment or None  # an empty box is no comment
        facts = await asyncio.to_thread(self.call_facts, call_id)
        if facts is None:
            raise ApiError(404, f"call_id: no recorded call {call_id}", field="call_id")
        if not facts.get("agent_id"):
            raise ApiError(409, f"call_id: call {call_id} was not answered by an agent: there is nobody to score",
                           field="call_id")
        try:
            scored = score(form, answers)
        except AnswerError as exc:
            where = f"answers.{exc.question_id}" if exc.question_id else "answers"
            raise ApiError(400, f"{where}: {exc.message}", field=where) from None
        agent_id = facts["agent_id"]
        evaluation_id = await asyncio.to_thread(
            self.store.add, call_id=call_id, agent_id=agent_id, queue=facts.get("queue"),
            team=self.teams().get(agent_id), form=form, scored=scored, answers=answers,
            evaluator=who.username or "api-token", comment=comment)
        await asyncio.to_thread(self.audit.record, who.actor, "qa_evaluated", f"call:{call_id}",
                                evaluation_id=evaluation_id, total=scored.total)
        return await asyncio.to_thread(self.store.get, evaluation_id)

    async def _evaluations(self, query: dict, **_) -> dict:
        since, until = _period(query, extra=("agent", "call"))
        rows = await asyncio.to_thread(self.store.list, agent_id=query.get("agent") or None,
                                       call_id=query.get("call") or None, since=since, until=until)
        return {"evaluations": rows}

    async def _scores(self, query: dict, **_) -> dict:
        since, until = _period(query)
        rows = await asyncio.to_thread(self.store.list, since=since, until=until, limit=None)
        return {"from": since, "to": until, **roll_up(rows, self.teams())}

    # ------------------------------------------------------------------ helpers
    def _form_named(self, name: object) -> Form:
        form = self.forms().get(name) if isinstance(name, str) else None
        if form is None:
            raise ApiError(404, f"form: no evaluation form {name!r}", field="form")
        return form


def _period(query: Mapping[str, str], extra: tuple[str, ...] = ()) -> tuple[float | None, float | None]:
    """``from`` / ``to`` of the query as epoch seconds (None: open), in time zone ``tz`` (UTC)."""
    unknown = sorted(set(query) - {"from", "to", "tz", *extra})
    if unknown:
        raise ApiError(400, f"{unknown[0]}: unknown parameter", field=unknown[0])
    try:
        tz = zone(query.get("tz") or "UTC")
    except ReportParamError as exc:
        raise ApiError(400, str(exc), field="tz") from None
    return _moment(query.get("from"), "from", tz), _moment(query.get("to"), "to", tz)


def _moment(text: str | None, name: str, tz: ZoneInfo) -> float | None:
    """Epoch seconds, or an ISO date / date-time. A bare date in ``to`` includes that whole day
    (to=2024-03-31 ends at the next midnight), so from/to of the same day is that day."""
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ApiError(400, f"{name}: {text!r} is not a moment", field=name)
        return seconds
    if name == "to" and len(text) == 10:
        try:
            text = (date.fromisoformat(text) + timedelta(days=1)).isoformat()
        except ValueError:
            pass  # parse_moment says what is wrong with it
    try:
        return parse_moment(text, tz, name)
    except ReportParamError as exc:
        raise ApiError(400, f"{exc} or epoch seconds", field=name) from None
