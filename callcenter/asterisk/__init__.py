"""Everything that touches Asterisk: building its root folder, rendering its config, running it,
and the hardened AMI and FastAGI adapters the engine talks to it through."""
