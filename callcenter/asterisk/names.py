"""What may be handed to Asterisk at all, shared by the AMI and FastAGI adapters and the flow loader.

Both protocols are line-based: a CR or LF inside a value ends the current action or command and
starts another, and a NUL truncates it. Sound names go into AGI commands and onto the disk path of
a prompt, so they are held to a strict shape (no '..', no spaces, no quotes).
"""

import re

PROTOCOL_BREAKING = re.compile(r"[\r\n\x00]")
SOUND_NAME = re.compile(r"^[a-z0-9][a-z0-9_/-]{0,127}$")
