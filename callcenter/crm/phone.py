"""Phone numbers for the CRM: every number, stored or looked up, is turned into E.164 here.

Callers' numbers arrive in whatever form the trunk sends (``13812345678``, ``+86 138...``,
``0086...``, ``010-12345678``); customer files are typed by people. Both are matched only through the
E.164 form this module produces, so ``(010) 1234 5678`` and ``+861012345678`` are the same customer.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

# Longer input is refused before parsing: nothing legitimate is that long, and the parser's cost
# should not be up to whoever controls the caller ID.
MAX_INPUT_LENGTH = 64

# Digits and the punctuation people write numbers with. phonenumbers would also accept letters
# (vanity numbers, "x12" extensions) and silently drop trailing junk, none of which belongs in a CRM.
_UNEXPECTED_CHARACTER = re.compile(r"[^0-9+\-(). /\s]")

_PARSE_FAILURES = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    NumberParseException.NOT_A_NUMBER: "no phone number in it",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}


class PhoneNumberError(ValueError):
    """Input that is not a valid phone number; the message quotes it and says why."""


def check_region(region: str) -> str:
    """``region`` itself, if phonenumbers knows it as a region (``CN``, ``GB``, ...)."""
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{region!r} is not a region phonenumbers knows (expected e.g. 'CN', 'GB')")
    return region


def normalize_number(raw: str, region: str) -> str:
    """``raw`` in E.164 (``+8613812345678``); numbers without a country code are read as dialled in
    ``region``. Raises :class:`PhoneNumberError` unless it is a valid number."""
    check_region(region)
    shown = _shown(raw)
    if len(raw) > MAX_INPUT_LENGTH:
        raise PhoneNumberError(f"{shown} is not a phone number: longer than {MAX_INPUT_LENGTH} characters")
    if not raw.strip():
        raise PhoneNumberError(f"{shown} is not a phone number: it is empty")
    if unexpected := _UNEXPECTED_CHARACTER.search(raw):
        raise PhoneNumberError(f"{shown} is not a phone number: unexpected character {unexpected.group()!r}")
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException as exc:
        reason = _PARSE_FAILURES.get(exc.error_type, "it cannot be parsed")
        raise PhoneNumberError(f"{shown} is not a phone number: {reason}") from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneNumberError(f"{shown} is not a valid number for region {_region_of(number, region)}")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _region_of(number: phonenumbers.PhoneNumber, default_region: str) -> str:
    """The region a number was read for: the default one unless it carried another country code."""
    if number.country_code == phonenumbers.country_code_for_region(default_region):
        return default_region
    return phonenumbers.region_code_for_country_code(number.country_code)


def _shown(raw: str) -> str:
    """``raw`` quoted for a message, cut short so a hostile caller ID cannot flood the log."""
    return repr(raw if len(raw) <= 32 else raw[:29] + "...")
