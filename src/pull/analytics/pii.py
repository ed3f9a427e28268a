"""Keeping personal data out of ClickHouse.

Analytics rows carry pseudonymous ids (user UUIDs, anonymous ids) and facts (amounts, tickers,
tiers). Before anything is written, `scrub` removes from properties and traits:
- every key that names personal data (email, phone, name, address, birth date, SSN, IP, bank
  numbers, ...) and keys of free text (note, message, comment, ...), whatever their value;
- inside the strings that remain, anything shaped like an email address or a phone number.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

REDACTED = "[redacted]"
MAX_DEPTH = 6

# Tokens of a key (split on _, -, . and camelCase) that mark it as personal or free text.
_PII_TOKENS = frozenset(
    {
        "email",
        "emails",
        "mail",
        "phone",
        "phones",
        "mobile",
        "tel",
        "telephone",
        "sms",
        "name",
        "names",
        "firstname",
        "lastname",
        "fullname",
        "surname",
        "username",
        "nickname",
        "address",
        "addresses",
        "street",
        "line1",
        "line2",
        "city",
        "zip",
        "zipcode",
        "postal",
        "postcode",
        "ssn",
        "dob",
        "birth",
        "birthday",
        "birthdate",
        "ip",
        "passport",
        "tin",
        "password",
        "secret",
        "token",
        "note",
        "notes",
        "comment",
        "comments",
        "message",
        "text",
        "body",
        "bio",
        "description",
    }
)
_PII_KEYS = frozenset(
    {
        "account_number",
        "routing_number",
        "card_number",
        "tax_id",
        "national_id",
        "ip_address",
        "user_agent",
        "location",
        "lat",
        "lng",
        "latitude",
        "longitude",
    }
)

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_PHONE = re.compile(
    r"\+\d[\d \-().]{6,18}\d"  # E.164-ish: +15551234567, +1 555 123 4567
    r"|\(\d{3}\)\s?\d{3}[\- .]\d{4}"  # (555) 123-4567
    r"|\b\d{3}[\- .]\d{3}[\- .]\d{4}\b"  # 555-123-4567
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# cheap pre-checks: most strings (ids, tickers, statuses) have neither an @ nor 7 digits
_MAYBE = re.compile(r"@|\d[\d \-().]{5,}\d")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _tokens(key: str) -> list[str]:
    return [t for t in re.split(r"[_\-.\s]+", _CAMEL.sub("_", key).lower()) if t]


@lru_cache(maxsize=8192)
def is_pii_key(key: str) -> bool:
    snake = "_".join(_tokens(key))
    if snake in _PII_KEYS:
        return True
    return any(t in _PII_TOKENS for t in _tokens(key))


def scrub_text(value: str) -> str:
    if _MAYBE.search(value) is None or _UUID.fullmatch(value) is not None:
        return value
    return _PHONE.sub(REDACTED, _EMAIL.sub(REDACTED, value))


# A key of a JSON text without backslashes: every `"` delimits a string there, so this finds
# every key at every depth (and at worst a few non-keys, which only cost the slow path).
_JSON_KEY = re.compile(r'"([^"\\]*)"\s*:')
# Keys seen in clean payloads (a pure function's answers, like is_pii_key's cache; bounded).
_CLEAN_KEYS: set[str] = set()
_CLEAN_KEYS_MAX = 65_536
# what every _PHONE match contains (8+ digits and separators from a digit): a cheap first look
_MAYBE_PHONE = re.compile(r"\d[\d \-().]{7,}")


def is_clean_json(text: str) -> bool:
    """True when this JSON text holds nothing that `scrub` removes, checked on the text:
    no backslash (so keys and strings are verbatim), no `@` (no email address), no key that
    names personal data at any depth, and nothing phone-shaped anywhere (a phone number in a
    string is one in the text, boundaries included). False only costs the full scrub."""
    if "@" in text or "\\" in text:
        return False
    if text.count("{") + text.count("[") > MAX_DEPTH and _depth(json.loads(text)) >= MAX_DEPTH:
        return False  # scrub empties what is nested deeper
    keys = set(_JSON_KEY.findall(text))
    if not keys <= _CLEAN_KEYS:
        for key in keys - _CLEAN_KEYS:
            if is_pii_key(key):
                return False
        if len(_CLEAN_KEYS) < _CLEAN_KEYS_MAX:
            _CLEAN_KEYS.update(keys)
    return _MAYBE_PHONE.search(text) is None or _PHONE.search(text) is None


def _depth(value: Any) -> int:
    """How deeply containers nest in a JSON value (a scalar: 0, `{}`: 1)."""
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def scrub(value: Any, depth: int = 0) -> Any:
    """A copy of `value` (JSON-like) with personal data removed."""
    kind = type(value)
    if kind is str:
        return scrub_text(value)
    if kind is int or kind is float or kind is bool or value is None:
        return value
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return {}
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = k if type(k) is str else str(k)
            if is_pii_key(key):
                continue
            t = type(v)
            if t is int or t is bool or t is float or v is None:
                out[key] = v
            elif t is str:
                out[key] = scrub_text(v)
            else:
                out[key] = scrub(v, depth + 1)
        return out
    if isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            return []
        return [scrub(v, depth + 1) for v in value]
    if isinstance(value, bool | int | float):  # subclasses (enums, ...)
        return value
    return scrub_text(str(value))


# --- a whole outbox batch at once (PostgreSQL's COPY text: id, ts_ms, topic hex, payload) ---

_COPY_ESCAPES = {b"\\": b"\\", b"t": b"\t", b"n": b"\n", b"r": b"\r", b"b": b"\b",
                 b"f": b"\f", b"v": b"\v"}  # fmt: skip
_COPY_ESCAPE = re.compile(rb"\\(.)", re.S)
# Every byte but the two that open a JSON container and the line end (is_clean_json's depth
# rule, counted per line after deleting these).
_NOT_OPENING = bytes(b for b in range(256) if b not in b"{[\n")
# The three shapes of _PHONE: the first two start with a literal (fast to search); the third's
# digits and separators are mapped to D and S first and searched as one literal.
_PHONE_PLUS = re.compile(rb"\+\d[\d \-().]{6,18}\d")
_PHONE_PARENS = re.compile(rb"\(\d{3}\)\s?\d{3}[\- .]\d{4}")
_PHONE_B = re.compile(_PHONE.pattern.encode())
_DIGITS_SEPARATORS = bytes.maketrans(b"0123456789- .", b"DDDDDDDDDDSSS")
# A key that is not one of _known_keys (clean keys seen before, at most _KNOWN_MAX): one
# search of the batch, no object per key. Recompiled when a new clean key is seen.
_KNOWN_MAX = 512
_known_keys: list[bytes] = []
_unknown_key = re.compile(rb'"([^"\\]*)"\s*:')


def _compile_unknown_key() -> re.Pattern[bytes]:
    known = b"|".join(re.escape(k) for k in _known_keys)
    return re.compile(rb'"(?!(?:' + known + rb')"\s*:)([^"\\]*)"\s*:')


def _keys_clean(data: bytes) -> bool:
    """No key of any payload (at any depth) names personal data (data has no backslash)."""
    global _unknown_key
    pos = 0
    while (m := _unknown_key.search(data, pos)) is not None:
        key = m.group(1)
        if is_pii_key(key.decode()):
            return False
        if len(_known_keys) < _KNOWN_MAX:
            _known_keys.append(key)
            _unknown_key = _compile_unknown_key()
        pos = m.end()
    return True


def _phone_free(data: bytes) -> bool:
    if _PHONE_PLUS.search(data) is not None or _PHONE_PARENS.search(data) is not None:
        return False
    shapes = data.translate(_DIGITS_SEPARATORS)
    return shapes.find(b"DDDSDDDSDDDD") == -1 or _PHONE_B.search(data) is None


def _batch_clean(data: bytes) -> bool:
    """True when no payload of the batch holds anything `scrub` removes: is_clean_json of
    every payload at once. Exact because the other fields hold no `"`, `@`, backslash or
    phone-shaped text (digits without separators, hex), and fields and lines are separated
    by tabs and newlines, which no key, email or phone pattern spans. Non-ASCII text (where
    `\\d` also means other scripts' digits) is checked payload by payload instead."""
    if b"@" in data or b"\\" in data or not data.isascii():
        return False
    opening = data.translate(None, _NOT_OPENING).split(b"\n")
    if max(map(len, opening)) > MAX_DEPTH:  # is_clean_json's depth rule, per payload
        return False
    return _keys_clean(data) and _phone_free(data)


def _unescape_copy(field: bytes) -> bytes:
    if b"\\" not in field:
        return field
    return _COPY_ESCAPE.sub(lambda m: _COPY_ESCAPES.get(m.group(1), m.group(1)), field)


def scrubbed_payload(text: str) -> str:
    """The stored form of one outbox payload: its text when `is_clean_json` (a non-object
    wrapped as {"value": ...} by ClickHouse's view), else the scrub of it, as JSON."""
    if is_clean_json(text):
        return text
    value = json.loads(text)
    if not isinstance(value, dict):
        value = {"value": value}
    return json.dumps(scrub(value), ensure_ascii=False, default=str)


def clean_outbox_tsv(data: bytes) -> bytes:
    """An outbox batch in COPY text format with personal data scrubbed from its payloads: the
    same bytes when nothing is to be scrubbed (the usual case: nothing is parsed or rebuilt),
    else with the payloads that need it replaced by their scrub."""
    if not data:
        return data
    if _batch_clean(data):
        return data
    lines = data[:-1].split(b"\n") if data.endswith(b"\n") else data.split(b"\n")
    out = []
    for line in lines:
        head, sep, payload = line.rpartition(b"\t")
        text = _unescape_copy(payload).decode()
        clean = scrubbed_payload(text)
        if clean is text:
            out.append(line)
        else:  # json.dumps escapes control characters: only backslashes need COPY's escape
            out.append(head + sep + clean.encode().replace(b"\\", b"\\\\"))
    return b"\n".join(out) + b"\n"
