"""The IVR: the flow language callers are walked through before they reach a queue. This package
owns the flow files (``ivr_flows/*.yaml``: their schema, loading and validation, with errors that
name the file, line and field) and a pure, deterministic interpreter that turns a flow plus the
caller's key presses into instructions (collect keys, play prompts, finish in a queue or hang up)
and a trail of what happened. It does no I/O of its own: the FastAGI shell carries the instructions
out on the channel, and a dry-run simulator can drive the same interpreter without Asterisk."""
