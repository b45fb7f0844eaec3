"""The supervisor's side: the live wallboard (queues and agents, pushed over Server-Sent Events),
and the actions a supervisor takes on the floor (listen / whisper / barge through the dialplan's
``cc-spy``, pause / unpause / log out an agent, change an agent's skills live, move a waiting call
or change its priority), each written to the audit log."""
