"""Automatic call distribution: the pure decision core that owns which waiting caller is offered to
which agent, and when. It holds queues of waiting calls, agent states (available, ringing with an
offer, on a call, wrap-up, paused) and the matching strategy, and answers every input (a call
queued, an offer answered or failed, an agent logging in or pausing, a timer firing) with the
list of effects the shell must carry out against Asterisk and report. It performs no I/O, reads no
clock and holds no timers: time comes in as ``now`` and timers go out as ``StartTimer`` effects."""
