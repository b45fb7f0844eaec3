"""What operators and their tools see of the running engine, apart from the call-center API itself:

- ``metrics``: the engine's live state (queues, agents, cumulative call counters, AMI/FastAGI/
  database status, event-log lag) in the Prometheus text format, for ``/metrics``;
- ``openapi``: the OpenAPI 3.1 document of the JSON API, generated from the routes actually
  registered on the ``JsonApi`` (so it cannot drift from them), for ``/api/openapi.json``;
- ``health``: the ``/api/health`` report, which checks AMI, FastAGI, the database and (when one is
  configured) Redis.

Nothing here imports the engine: the engine hands in plain callables and data (``MetricsSource``,
the JSON API's routes, ``HealthCheck``'s arguments), so each part can be tested on its own.
See docs/ops.md.
"""
