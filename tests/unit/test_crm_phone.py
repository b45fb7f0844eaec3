"""Phone numbers to E.164 (callcenter.crm.phone): the forms Chinese callers and customer files
use, international numbers, and the messages for what is not a number."""

from __future__ import annotations

import pytest

from callcenter.crm.phone import MAX_INPUT_LENGTH, PhoneNumberError, normalize_number


@pytest.mark.parametrize(("raw", "region", "e164"), [
    ("13812345678", "CN", "+8613812345678"),            # mobile
    ("138 1234 5678", "CN", "+8613812345678"),
    ("138-1234-5678", "CN", "+8613812345678"),
    ("010-12345678", "CN", "+861012345678"),            # Beijing landline
    ("(010) 1234 5678", "CN", "+861012345678"),
    ("01012345678", "CN", "+861012345678"),             # no separator after the area code
    ("021 6123 4567", "CN", "+862161234567"),           # Shanghai
    ("+86 138 1234 5678", "CN", "+8613812345678"),
    ("+8613812345678", "CN", "+8613812345678"),
    ("0086 13812345678", "CN", "+8613812345678"),       # China's international prefix
    ("86-13812345678", "CN", "+8613812345678"),         # country code without a '+'
    ("8613812345678", "CN", "+8613812345678"),
    ("+86 10 1234 5678", "CN", "+861012345678"),
    ("+44 20 7946 0958", "CN", "+442079460958"),        # international, from China
    ("0044 20 7946 0958", "CN", "+442079460958"),
    ("020 7946 0958", "GB", "+442079460958"),           # national, in another region
    ("  13812345678  ", "CN", "+8613812345678"),
])
def test_numbers_in_every_written_form_become_e164(raw: str, region: str, e164: str) -> None:
    assert normalize_number(raw, region) == e164


@pytest.mark.parametrize(("raw", "message"), [
    ("12ab", "'12ab' is not a phone number: unexpected character 'a'"),
    ("13800138000x12", "'13800138000x12' is not a phone number: unexpected character 'x'"),
    ("anonymous", "'anonymous' is not a phone number: unexpected character 'a'"),
    ("", "'' is not a phone number: it is empty"),
    ("   ", "'   ' is not a phone number: it is empty"),
    ("+", "'+' is not a phone number: no phone number in it"),
    ("---", "'---' is not a phone number: no phone number in it"),
    ("123", "'123' is not a valid number for region CN"),
    ("1380013800", "'1380013800' is not a valid number for region CN"),   # a digit short
    ("+44 20 7946", "'+44 20 7946' is not a valid number for region GB"),
    ("+999 1234567", "'+999 1234567' is not a phone number: unknown country code"),
    ("1" * 30, "'111111111111111111111111111111' is not a phone number: too long"),
    ("1" * (MAX_INPUT_LENGTH + 1),
     f"'11111111111111111111111111111...' is not a phone number: longer than {MAX_INPUT_LENGTH} characters"),
])
def test_what_is_not_a_valid_number_is_refused_with_the_reason(raw: str, message: str) -> None:
    with pytest.raises(PhoneNumberError) as refused:
        normalize_number(raw, "CN")
    assert str(refused.value) == message
    assert isinstance(refused.value, ValueError)


def test_an_unknown_default_region_is_a_plain_value_error() -> None:
    with pytest.raises(ValueError, match="'XX' is not a region") as refused:
        normalize_number("13812345678", "XX")
    assert not isinstance(refused.value, PhoneNumberError)
