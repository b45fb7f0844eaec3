"""Campaigns over the JSON API: their progress, and start / pause / resume / stop (the same state
changes as the CLI; the dialer picks them up at its next tick)."""

from __future__ import annotations

import asyncio

from callcenter.campaign import model
from callcenter.campaign.store import CampaignRow, CampaignStore, CampaignStoreError, UnknownCampaignError
from callcenter.web.api import ApiError, JsonApi
from callcenter.web.auth import Role

ACTIONS = {"start": model.RUNNING, "pause": model.PAUSED, "resume": model.RUNNING, "stop": model.STOPPED}


class CampaignApi:
    def __init__(self, store: CampaignStore):
        self.store = store

    def register(self, api: JsonApi) -> None:
        api.add("GET", "/api/campaigns", self._list, role=Role.ADMIN)
        api.add("GET", "/api/campaigns/{name}", self._one, role=Role.ADMIN)
        for action in ACTIONS:
            api.add("POST", "/api/campaigns/{name}/" + action, self._changer(action), role=Role.ADMIN)

    def _view(self, row: CampaignRow) -> dict:
        return {"name": row.name, "state": row.state, "queue": row.spec.queue, "mode": row.spec.pacing.mode,
                "progress": self.store.progress(row.id)}

    async def _list(self, **_) -> list[dict]:
        return await asyncio.to_thread(lambda: [self._view(row) for row in self.store.list()])

    async def _one(self, name: str, **_) -> dict:
        try:
            return await asyncio.to_thread(lambda: self._view(self.store.get(name)))
        except UnknownCampaignError as exc:
            raise ApiError(404, str(exc)) from None

    def _changer(self, action: str):
        async def change(name: str, **_) -> dict:
            try:
                row = await asyncio.to_thread(self.store.set_state, name, ACTIONS[action])
            except UnknownCampaignError as exc:
                raise ApiError(404, str(exc)) from None
            except (CampaignStoreError, ValueError) as exc:
                raise ApiError(409, str(exc)) from None
            return {"name": row.name, "state": row.state}
        return change
