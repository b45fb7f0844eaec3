"""Automatic call distribution: which waiting caller is offered to which agent, and when.

The pure core (``router``, with ``model``, ``requirements``, ``steps`` and ``estimates``) holds
the queues of waiting calls, agent states (available, ringing with an offer, on a call, wrap-up,
paused), skills and widening steps, and answers every input (a call queued, an offer answered or
failed, an agent logging in or pausing, a timer firing) with the effects the shell must carry
out. It performs no I/O, reads no clock and holds no timers: time comes in as ``now`` and timers
go out as ``StartTimer`` effects. Around it: ``config`` loads and checks the routing file,
``shell`` carries out the effects against Asterisk, ``cli`` is ``callcenter routing``."""
