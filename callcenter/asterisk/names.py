"""What may be handed to Asterisk at all, shared by the AMI and FastAGI adapters and the flow loader.

Both protocols are line-based: a CR or LF inside a value ends the current action or command and
starts another, and a NUL truncates it. Sound names go into AGI commands and onto the disk path of
a prompt, so they are held to a strict shape (no '..', no spaces, no quotes).
"""

import re

PROTOCOL_BREAKING = re.compile(r"[\r\n\x00]")
SOUND_NAME = re.compile(r"^[a-z0-9][a-z0-9_/-]{0,127}$")
# A sound language: the folder under sounds/ a channel's prompts come from (en, zh, en_US_f_Allison).
LANGUAGE = re.compile(r"^[a-z]{2}(_[A-Za-z0-9]{1,16}){0,3}$")
# What each SAY command can read out (time is HH:MM, said as a time of day).
SAYABLE = {
    "digits": re.compile(r"^[0-9*#]{1,32}$"),
    "number": re.compile(r"^-?[0-9]{1,9}$"),
    "alpha": re.compile(r"^[A-Za-z0-9]{1,32}$"),
    "time": re.compile(r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$"),
}


def supervisor_endpoint(username: str) -> str:
    """The PJSIP endpoint of a supervisor's phone (rendered from settings.supervisor_phones)."""
    return f"supervisor-{username}"
