"""KPI definitions and staffing maths.

This package owns what the call-center numbers *mean* (service level, ASA, occupancy,
abandonment) and the queueing formulas that turn a forecast into agent and trunk counts
(Erlang B, C and A in :mod:`callcenter.kpi.staffing`). Everything here is pure and
deterministic: no I/O, no clocks, no settings.
"""
