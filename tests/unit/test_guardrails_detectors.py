"""The PII detectors against a table of examples per entity type, near misses included;
precision and recall per type are printed (``pytest -s``) and held to a floor."""

from __future__ import annotations

import pytest

from sluicegate.guardrails.detectors import BUILTIN, iban_valid, luhn
from sluicegate.guardrails.scanner import Matcher, Rule

# (entity type, text, the value that must be found or None for "nothing of this type")
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
EXAMPLES: list[tuple[str, str, str | None]] = [
    ("email", "write to jane.doe@example.com today", "jane.doe@example.com"),
    ("email", "cc: a_b+tag@mail.co.uk.", "a_b+tag@mail.co.uk"),
    ("email", "<Ops@Sub.Example.io>", "Ops@Sub.Example.io"),
    ("email", "user at example dot com", None),
    ("email", "the @decorator syntax", None),
    ("email", "version foo@1.2", None),
    ("email", "mail me@localhost", None),
    ("email", "an jürgen.müller@example.de schreiben", "jürgen.müller@example.de"),
    ("email", "écrire à josé@example.com.", "josé@example.com"),
    ("email", "Bestellung: user@bücher.de", "user@bücher.de"),
    ("email", "почта иван@пример.рф", "иван@пример.рф"),
    ("email", "联系jane@example.com谢谢", "联系jane@example.com"),
    ("email", "mail jane@example today", None),
    ("phone", "call +44 20 7946 0958 now", "+44 20 7946 0958"),
    ("phone", "US: +1 (415) 555-0132", "+1 (415) 555-0132"),
    ("phone", "Paris +33 1 23 45 67 89", "+33 1 23 45 67 89"),
    ("phone", "mobile +491701234567", "+491701234567"),
    ("phone", "office (555) 123-4567", "(555) 123-4567"),
    ("phone", "desk 555-123-4567", "555-123-4567"),
    ("phone", "London 020 7946 0958", "020 7946 0958"),
    ("phone", "released 2024-01-15", None),
    ("phone", "order number 1234567", None),
    ("phone", "pi is 3.14159265", None),
    ("phone", "+12 is a score", None),
    ("credit_card", "card 4111 1111 1111 1111 ok", "4111 1111 1111 1111"),
    ("credit_card", "卡号4111111111111111谢谢", "4111111111111111"),
    ("credit_card", "ref X4111111111111111", None),
    ("credit_card", "mc 5500-0000-0000-0004", "5500-0000-0000-0004"),
    ("credit_card", "amex 378282246310005", "378282246310005"),
    ("credit_card", "discover 6011111111111117", "6011111111111117"),
    ("credit_card", "bad luhn 4111 1111 1111 1112", None),
    ("credit_card", "tracking 1234567812345678", None),
    ("credit_card", "luhn-valid but no issuer 0000000000000000", None),
    ("iban", "pay GB82 WEST 1234 5698 7654 32 please", "GB82 WEST 1234 5698 7654 32"),
    ("iban", "DE89370400440532013000", "DE89370400440532013000"),
    ("iban", "FR1420041010050500013M02606", "FR1420041010050500013M02606"),
    ("iban", "bad check GB82 WEST 1234 5698 7654 33", None),
    ("iban", "wrong length DE8937040044053201300", None),
    ("iban", "unknown country ZZ82WEST12345698765432", None),
    ("us_ssn", "ssn 123-45-6789", "123-45-6789"),
    ("us_ssn", "SSN: 078 05 1120.", "078 05 1120"),
    ("us_ssn", "(ssn 219-09-9999)", "219-09-9999"),
    ("us_ssn", "area 000-12-3456", None),
    ("us_ssn", "area 666-12-3456", None),
    ("us_ssn", "area 912-34-5678", None),
    ("us_ssn", "group 123-00-4567", None),
    ("us_ssn", "mixed 123-45 6789", None),
    ("ip_address", "host 192.168.1.20 is up", "192.168.1.20"),
    ("ip_address", "dns 8.8.8.8.", "8.8.8.8"),
    ("ip_address", "v6 2001:db8::8a2e:370:7334 here", "2001:db8::8a2e:370:7334"),
    ("ip_address", "loopback ::1", "::1"),
    ("ip_address", "version 1.2.3.4", None),
    ("ip_address", "v10.0.0.1 released", None),
    ("ip_address", "oid 1.3.6.1.4.1", None),
    ("ip_address", "octets 300.1.2.3", None),
    ("ip_address", "time 12:30:45", None),
    ("secret", "key sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123", "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123"),
    (
        "secret",
        "sk-ant-api03-" + "a" * 40 + " leaked",
        "sk-ant-api03-" + "a" * 40,
    ),
    ("secret", "aws AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("secret", "gh ghp_" + "A1b2" * 9, "ghp_" + "A1b2" * 9),
    ("secret", "google AIza" + "B" * 35, "AIza" + "B" * 35),
    ("secret", f"jwt {JWT}", JWT),
    (
        "secret",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy\n"
        "-----END RSA PRIVATE KEY-----",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy\n"
        "-----END RSA PRIVATE KEY-----",
    ),
    ("secret", "slack xoxb-1234567890-abcdef", "xoxb-1234567890-abcdef"),
    ("secret", "stripe sk_live_" + "c" * 24, "sk_live_" + "c" * 24),
    ("secret", "gitlab glpat-" + "d" * 20, "glpat-" + "d" * 20),
    ("secret", "hf hf_" + "e" * 34, "hf_" + "e" * 34),
    ("secret", "github github_pat_" + "f" * 30, "github_pat_" + "f" * 30),
    (
        "secret",
        "密钥sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123。",
        "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123",
    ),
    ("secret", "a task-list of sk-ills", None),
    ("secret", "AKIA is a prefix", None),
    ("secret", "eyJnot.eyJajwt.atall", None),
    (
        "secret",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----",
        None,
    ),
]


def _matcher(kind: str) -> Matcher:
    d = BUILTIN[kind]
    return Matcher((Rule(d.type, d.label, d.pattern, "redact", d.validate, hint=d.hint),))


def _found(kind: str, text: str) -> list[str]:
    findings, _ = _matcher(kind).find(text)
    return [text[f.start : f.end] for f in findings]


@pytest.mark.parametrize(("kind", "text", "value"), EXAMPLES)
def test_each_example(kind: str, text: str, value: str | None) -> None:
    assert _found(kind, text) == ([value] if value is not None else [])


def test_precision_and_recall_per_type() -> None:
    report = []
    for kind in BUILTIN:
        tp = fp = fn = 0
        for k, text, value in EXAMPLES:
            if k != kind:
                continue
            found = _found(kind, text)
            if value is not None and value in found:
                tp += 1
            elif value is not None:
                fn += 1
            fp += len([f for f in found if f != value])
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        report.append(f"{kind:12} precision {precision:.2f} recall {recall:.2f} ({tp} found)")
        assert precision >= 0.95 and recall >= 0.95, report[-1]
        assert tp >= 3, f"{kind}: too few positive examples"
    print("\n" + "\n".join(report))


def test_other_types_do_not_claim_each_others_examples() -> None:
    """Across the whole table, every type's finds are its own: a card is not a phone."""
    every = Matcher(
        tuple(
            Rule(d.type, d.label, d.pattern, "redact", d.validate, i)
            for i, d in enumerate(BUILTIN.values())
        )
    )
    for kind, text, value in EXAMPLES:
        if value is None:
            continue
        findings, _ = every.find(text)
        assert [(f.rule.type, text[f.start : f.end]) for f in findings] == [(kind, value)], text


def test_checksums() -> None:
    assert luhn("4111111111111111") and not luhn("4111111111111112")
    assert iban_valid("GB82 WEST 1234 5698 7654 32")
    assert not iban_valid("GB82 WEST 1234 5698 7654 33")
