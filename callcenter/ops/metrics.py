"""The engine's live state as Prometheus metrics (text exposition format, for ``/metrics``).

The engine fills in a ``MetricsSource`` (plain callables, read at every scrape) and ``render`` turns
it into the body of the response. Nothing is kept between scrapes: every value is read from the
engine when Prometheus asks, so the numbers are exactly what the router and the connections hold at
that moment. The collector has its own ``CollectorRegistry`` (never prometheus_client's global
one), so it never mixes in the Python process metrics of whatever else runs in the interpreter, and
tests can build as many as they like.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from callcenter.acd.model import AgentState

PREFIX = "callcenter_"

# The cumulative counters the engine keeps (the keys of MetricsSource.counters()), with the help
# text of the metric each becomes: callcenter_<key>_total.
CALL_COUNTERS: dict[str, str] = {
    "offers": "Calls offered to an agent's phone (each ring of an agent counts once).",
    "rona": "Offers the agent did not answer before the ring timeout (ring-no-answer).",
    "answered": "Calls an agent answered.",
    "abandoned": "Callers who hung up while waiting in a queue, before any agent answered.",
}

# Every agent state is always reported, at 0 when no agent is in it, so a dashboard's series do
# not vanish and reappear when the last agent leaves a state.
AGENT_STATES: tuple[str, ...] = tuple(state.value for state in AgentState)


@dataclass(frozen=True)
class MetricsSource:
    """Where the metrics come from; the engine fills in each callable, read at every scrape.

    - ``queues``: ``Router.queues_snapshot(now)`` (per queue: ``queue``, ``waiting`` and
      ``ringing`` lists of calls with their ``wait`` in seconds, ...);
    - ``agents``: ``Router.agents_snapshot(now)`` (per agent: ``state``, ``queues``, ...);
    - ``counters``: cumulative counts since the engine started, keyed as ``CALL_COUNTERS``
      (a key left out is not exported, rather than exported as a misleading 0);
    - ``ami_connected``: the AMI client is logged in;
    - ``agi``: ``{"listening": bool, "connections": int, "rejected": int}``, the FastAGI server's
      state; ``connections`` (accepted since start) and ``rejected`` (dropped for bad or slow
      headers) may be left out when not counted;
    - ``event_lag_seconds``: the age of the oldest event not yet written to the database (0 when
      none waits);
    - ``db_ok``: whether the last database write or check succeeded (None: not known yet, and
      then ``callcenter_database_up`` is not exported).
    """

    queues: Callable[[], list[dict[str, Any]]]
    agents: Callable[[], list[dict[str, Any]]]
    counters: Callable[[], Mapping[str, float]]
    ami_connected: Callable[[], bool]
    agi: Callable[[], Mapping[str, Any]]
    event_lag_seconds: Callable[[], float]
    db_ok: Callable[[], bool | None]


def _gauge(name: str, documentation: str, value: float | None = None,
           labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, documentation, value=value, labels=labels)


def _states_to_report(seen: Iterable[str]) -> list[str]:
    """Every known agent state, then any other one the snapshot holds (a state added to the router
    later is still counted, not dropped)."""
    return [*AGENT_STATES, *sorted(set(seen) - set(AGENT_STATES))]


class EngineCollector(Collector):
    """A prometheus_client custom collector over a ``MetricsSource``."""

    def __init__(self, source: MetricsSource):
        self.source = source

    def collect(self) -> Iterator[Metric]:
        queues = self.source.queues()
        yield from self._queue_metrics(queues)
        yield from self._agent_metrics(self.source.agents(), [queue["queue"] for queue in queues])
        yield from self._counter_metrics(self.source.counters())
        yield from self._connection_metrics()

    @staticmethod
    def _queue_metrics(queues: list[dict[str, Any]]) -> Iterator[Metric]:
        waiting = _gauge("calls_waiting", "Calls waiting in the queue with no agent's phone ringing for them.",
                         labels=["queue"])
        ringing = _gauge("calls_ringing", "Calls in the queue whose offered agent's phone is ringing.",
                         labels=["queue"])
        longest = _gauge("longest_wait_seconds",
                         "How long the longest-waiting unanswered call in the queue (waiting or ringing) "
                         "has waited; 0 when the queue has no caller.", labels=["queue"])
        for queue in queues:
            name = queue["queue"]
            in_queue = [*queue["waiting"], *queue["ringing"]]
            waiting.add_metric([name], len(queue["waiting"]))
            ringing.add_metric([name], len(queue["ringing"]))
            longest.add_metric([name], max((call["wait"] for call in in_queue), default=0.0))
        yield from (waiting, ringing, longest)

    @staticmethod
    def _agent_metrics(agents: list[dict[str, Any]], queue_names: list[str]) -> Iterator[Metric]:
        by_state = Counter(agent["state"] for agent in agents)
        per_state = _gauge("agents", "Agents known to the engine, by state.", labels=["state"])
        for state in _states_to_report(by_state):
            per_state.add_metric([state], by_state[state])
        yield per_state

        # An agent serving several queues counts once in each: this is the queue's staffing view.
        by_queue_state = Counter((queue, agent["state"]) for agent in agents for queue in agent["queues"])
        per_queue = _gauge("queue_agents", "Agents who serve the queue, by state (an agent in several "
                           "queues counts in each).", labels=["queue", "state"])
        # configured queues first (a queue nobody serves reports 0s), then any other an agent names
        agents_queues = sorted({queue for queue, _ in by_queue_state} - set(queue_names))
        for queue in (*queue_names, *agents_queues):
            for state in _states_to_report(state for q, state in by_queue_state if q == queue):
                per_queue.add_metric([queue, state], by_queue_state[queue, state])
        yield per_queue

    @staticmethod
    def _counter_metrics(counters: Mapping[str, float]) -> Iterator[Metric]:
        for key, documentation in CALL_COUNTERS.items():
            if key in counters:
                # CounterMetricFamily exposes <name>_total itself
                yield CounterMetricFamily(PREFIX + key, documentation, value=counters[key])

    def _connection_metrics(self) -> Iterator[Metric]:
        source = self.source
        yield _gauge("ami_up", "1 when the engine is logged in to Asterisk's AMI, else 0.",
                     value=int(bool(source.ami_connected())))
        agi = source.agi()
        yield _gauge("agi_up", "1 when the engine's FastAGI server is listening, else 0.",
                     value=int(bool(agi["listening"])))
        if "connections" in agi:
            yield CounterMetricFamily(PREFIX + "agi_connections", "FastAGI connections accepted from Asterisk.",
                                      value=agi["connections"])
        if "rejected" in agi:
            yield CounterMetricFamily(PREFIX + "agi_rejected", "FastAGI connections dropped before a script "
                                      "ran (malformed, oversized or too slow headers).", value=agi["rejected"])
        yield _gauge("event_lag_seconds", "Age of the oldest call event not yet written to the database; "
                     "0 when every event is written.", value=source.event_lag_seconds())
        db_ok = source.db_ok()
        if db_ok is not None:
            yield _gauge("database_up", "1 when the last database write or check succeeded, else 0.",
                         value=int(db_ok))


def registry_for(source: MetricsSource) -> CollectorRegistry:
    """A registry of its own holding only the engine's collector."""
    registry = CollectorRegistry(auto_describe=False)  # no describe(): registering must not read the engine
    registry.register(EngineCollector(source))
    return registry


def render(source: MetricsSource) -> tuple[bytes, str]:
    """The ``/metrics`` response: (body, content type)."""
    return generate_latest(registry_for(source)), CONTENT_TYPE_LATEST
