"""The engine's web side, served by Twisted on the engine's own asyncio loop: for now a small JSON
API (queues, waiting calls, agents, agent login/logout/pause/unpause, events, health). The agent
desktop and the supervisor wallboard will live here too. Bound to loopback: there is no
authentication yet (a later issue adds roles)."""
