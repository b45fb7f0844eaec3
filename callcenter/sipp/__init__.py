"""The SIPp harness: it owns rendering the SIPp XML scenarios that play callers (UACs that dial the
call-center, press RFC 2833 keys, talk and hang up) and agent phones (long-running UAS processes that
ring, answer, hang up or never answer, call after call), running those ``sipp`` processes on the
loopback interface without a terminal, always killing their process groups, and reading their SIP
message traces back into typed results (who answered, who sent BYE, how many INVITEs and CANCELs)
so tests and benchmarks can assert on what really went over the wire."""

from callcenter.sipp.runner import (
    CallerResult,
    PhoneCall,
    SipMessage,
    SippCaller,
    SippError,
    SippPhone,
    agent_phone,
    caller_in_slot,
    parse_message_log,
    udp_port_bound,
    udp_port_free,
)
from callcenter.sipp.scenarios import (
    MIN_KEY_GAP_MS,
    PCAP_DIR,
    PhoneMode,
    agent_scenario,
    caller_scenario,
    dtmf_pcap,
    validate_keys,
)

__all__ = [
    "MIN_KEY_GAP_MS",
    "PCAP_DIR",
    "CallerResult",
    "PhoneCall",
    "PhoneMode",
    "SipMessage",
    "SippCaller",
    "SippError",
    "SippPhone",
    "agent_phone",
    "agent_scenario",
    "caller_in_slot",
    "caller_scenario",
    "dtmf_pcap",
    "parse_message_log",
    "udp_port_bound",
    "udp_port_free",
    "validate_keys",
]
