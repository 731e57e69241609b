"""What each PII entity type looks like: a pattern, and a check that a match really is one.

Patterns are written for the ``regex`` module so that a stream scanner can ask
whether the end of a text could still become a match (``partial=True``). A
pattern finds candidates generously; the validator (a checksum, a range, a
decodable header) throws out the near misses, so a card number with a wrong
Luhn digit or a dotted version number is left alone.

Patterns read folded text (``fold``: NFKC, no format characters), so full-width
forms and zero-width characters need no alternatives here. Addresses may hold any
letter (``jürgen.müller@bücher.de``). A match must not be part of a longer token of
ASCII letters and digits; a letter of another script next to it does not count as
part of the token, since Chinese or Japanese text puts no space around a number.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import regex

Validator = Callable[[str, str, int], bool]  # (match, whole text, match start) -> is one
Hint = Callable[[str], bool]  # whether a text holds what every match holds


@dataclass(frozen=True, slots=True)
class Detector:
    """One entity type: ``label`` is the placeholder's stem (``[EMAIL_1]``)."""

    type: str
    label: str
    pattern: regex.Pattern[str]
    validate: Validator | None = None
    hint: Hint | None = None  # scanner.Rule.hint


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdecimal())


def luhn(number: str) -> bool:
    """The check digit of payment cards (ISO/IEC 7812)."""
    digits = [int(c) for c in reversed(_digits(number))]
    if not digits:
        return False
    total = sum(digits[0::2])
    total += sum(d * 2 - 9 if d * 2 > 9 else d * 2 for d in digits[1::2])
    return total % 10 == 0


# Issuer prefixes of the major networks: a Luhn-valid run of digits that no network
# issues (an order number) is not reported.
_CARD_PREFIX = regex.compile(
    r"^(4|5[1-5]|2(2[2-9]|[3-6]\d|7[01]|720)|3[47]|3(0[0-5]|[689])|6(011|5|4[4-9]|22)|35|62)"
)


def _card(match: str, text: str, start: int) -> bool:
    digits = _digits(match)
    return 13 <= len(digits) <= 19 and bool(_CARD_PREFIX.match(digits)) and luhn(digits)


# Lengths of the IBANs of the countries that issue them (the SWIFT registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_valid(value: str) -> bool:
    """The length of its country and the ISO 7064 mod-97 check."""
    iban = "".join(value.split()).upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    moved = iban[4:] + iban[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


def _iban(match: str, text: str, start: int) -> bool:
    return iban_valid(match)


def _ssn(match: str, text: str, start: int) -> bool:
    area, group, serial = match[:3], match[4:6], match[7:]
    if match[3] != match[6]:  # 123-45 6789 is two numbers, not one
        return False
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


# Words that make a dotted quad a version ("version 1.2.3.4", "v10.0.0.1").
_VERSION_WORDS = regex.compile(
    r"(?i)(\bv|\bversion|\bver\.?|\brelease|\bbuild|\bbuild\s+no\.?)\s*$"
)


def _ip(match: str, text: str, start: int) -> bool:
    try:
        address = ipaddress.ip_address(match)
    except ValueError:
        return False
    if address.version == 4:
        before = text[max(0, start - 16) : start]
        if _VERSION_WORDS.search(before):
            return False
        # 1.2.3.4.5 is a version or an OID, not an address.
        after = text[start + len(match) : start + len(match) + 2]
        if (before.endswith(".") and before[-2:-1].isdigit()) or (
            after.startswith(".") and after[1:2].isdigit()
        ):
            return False
    return True


def _phone(match: str, text: str, start: int) -> bool:
    digits = _digits(match)
    if match.startswith("+"):
        return 8 <= len(digits) <= 15
    # Without a country code, only the grouped national forms the pattern allows: an ISO
    # date (2024-01-15) or a plain number is never one.
    return 10 <= len(digits) <= 11


def _jwt(match: str, text: str, start: int) -> bool:
    header = match.split(".", 1)[0]
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


# Token characters: a match never starts or ends inside a run of them.
_T = r"A-Za-z\d_"
_B = rf"(?<![{_T}.@+-])"  # not inside a longer token
_DIGIT = re.compile(r"\d")
_DIGIT_OR_COLON = re.compile(r"[\d:]")


def _has_digit(text: str) -> bool:
    return _DIGIT.search(text) is not None


def _has_digit_or_colon(text: str) -> bool:
    return _DIGIT_OR_COLON.search(text) is not None


def _has_at(text: str) -> bool:
    return "@" in text


# Every alternative of SECRET begins with one of these (keep the two lists in step); a
# substring test each is far cheaper than one search for an alternation.
_SECRET_STARTS = (
    "-----BEGIN ", "sk-", "AKIA", "ASIA", "ABIA", "ACCA", "AIza", "gh", "github_pat_", "xox",
    "sk_", "rk_", "glpat-", "hf_", "eyJ",
)  # fmt: skip


def _may_hold_secret(text: str) -> bool:
    # Each start holds "-", "_", "A" or "eyJ": most words and short values hold none.
    if not ("-" in text or "_" in text or "A" in text or "eyJ" in text):
        return False
    return any(start in text for start in _SECRET_STARTS)


EMAIL = Detector(
    "email",
    "EMAIL",
    regex.compile(
        _B + r"[\p{L}\p{N}][\p{L}\p{N}\p{M}._%+-]{0,63}@(?:[\p{L}\p{N}](?:[\p{L}\p{N}\p{M}-]{0,61}"
        r"[\p{L}\p{N}\p{M}])?\.)+"
        # The top-level domain: ASCII (ending where ASCII letters end), punycode, or any script.
        rf"(?:[A-Za-z]{{2,24}}(?![{_T}-])|xn--[A-Za-z0-9-]{{1,59}}(?![{_T}-])"
        r"|[\p{L}\p{M}]{2,24}(?![\w-]))"
    ),
    hint=_has_at,
)
PHONE = Detector(
    "phone",
    "PHONE",
    regex.compile(
        rf"(?<![{_T}+.-])(?:"
        # international: +<country> then groups of digits
        r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}"
        # North American: (555) 123-4567, 555-123-4567, 555.123.4567
        r"|\(\d{3}\)\s?\d{3}[ .-]\d{4}|\d{3}[ .-]\d{3}[ .-]\d{4}"
        # national with a trunk 0: 020 7946 0958, 01 23 45 67 89, 030-1234567
        r"|0\d{1,4}(?:[ -]\d{2,8}){1,4}"
        rf")(?![{_T}-]|\.\d)"
    ),
    _phone,
    _has_digit,
)
CREDIT_CARD = Detector(
    "credit_card",
    "CREDIT_CARD",
    regex.compile(rf"(?<![{_T}-])(?:\d[ -]?){{12,18}}\d(?![{_T}-])"),
    _card,
    _has_digit,
)
IBAN = Detector(
    "iban",
    "IBAN",
    regex.compile(
        rf"(?<![{_T}])[A-Z]{{2}}\d{{2}}(?: ?[A-Z0-9]{{4}}){{2,7}}(?: ?[A-Z0-9]{{1,4}})?(?![{_T}])"
    ),
    _iban,
    _has_digit,
)
US_SSN = Detector(
    "us_ssn",
    "US_SSN",
    regex.compile(rf"(?<![{_T}-])\d{{3}}[- ]\d{{2}}[- ]\d{{4}}(?![{_T}-])"),
    _ssn,
    _has_digit,
)
IP_ADDRESS = Detector(
    "ip_address",
    "IP_ADDRESS",
    regex.compile(
        rf"(?<![{_T}.:])(?:"
        r"(?:\d{1,3}\.){3}\d{1,3}"
        r"|(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}"
        r"|(?:[0-9A-Fa-f]{1,4}:){1,7}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})?"
        r"|::(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})"
        rf")(?![{_T}:])"
    ),
    _ip,
    _has_digit_or_colon,
)
SECRET = Detector(
    "secret",
    "SECRET",
    regex.compile(
        r"(?:"
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]{16,8192}?-----END (?:[A-Z0-9]+ )*"
        r"PRIVATE KEY-----"
        r"|" + _B + r"(?:"
        r"sk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{32,}"  # Anthropic
        r"|sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"  # OpenAI
        r"|(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}"  # AWS access key ids
        r"|AIza[0-9A-Za-z_-]{35}"  # Google API keys
        r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}"  # GitHub
        r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
        r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
        r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
        r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
        r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWT
        rf")(?![{_T}-])"
        r")"
    ),
)


def _secret(match: str, text: str, start: int) -> bool:
    return _jwt(match, text, start) if match.startswith("eyJ") else True


SECRET = Detector(SECRET.type, SECRET.label, SECRET.pattern, _secret, _may_hold_secret)

# In order of precedence: where two overlap equally, the first one named wins.
BUILTIN: dict[str, Detector] = {
    d.type: d for d in (SECRET, EMAIL, CREDIT_CARD, IBAN, US_SSN, IP_ADDRESS, PHONE)
}
# Found only by the Presidio backend (the ``presidio`` extra), when its models are installed.
PRESIDIO_TYPES = {"person": "PERSON", "location": "LOCATION"}
PII_TYPES = (*BUILTIN, *PRESIDIO_TYPES)
