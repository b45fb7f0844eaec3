"""callcenter: a telephony-integrated call-center engine that sits beside an Asterisk PBX."""

__version__ = "0.1.0"
