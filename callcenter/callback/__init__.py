"""Callbacks: promises to call a customer back from a queue instead of keeping them on hold.

Two sources: *virtual hold* (a caller waiting in a queue pressed a key and hung up; the callback
keeps the caller's original enqueue time, so its place in line) and *web* (asked for through the
public form or the API: as soon as possible, or in a time window). When a callback reaches the front
of its queue the engine reserves an agent, rings the agent first, then dials the customer.

This package owns:

- :mod:`callcenter.callback.model` (pure, no I/O): the policy settings, the ``Callback`` record and
  its statuses, validation of web requests (numbers, windows, business hours, rate limit), what an
  attempt's Dial() status means and what happens after it (retry, completed, failed, expired);
- :mod:`callcenter.callback.store` (SQLAlchemy Core): the ``callbacks`` table and the state changes
  the engine makes, each one atomic;
- ``static/form.html`` and ``static/form.js``: the embeddable "Call me back" form, which posts to
  ``/api/public/callbacks``.

Dialling callbacks (the engine-side service), the dialplan and the API handlers live elsewhere.
"""
