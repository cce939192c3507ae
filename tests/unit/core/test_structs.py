"""The input rules every request schema inherits (core.structs)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

import msgspec
import pytest

from core.structs import TEXT_PATTERN, IdNumber, Phone, Request, ShortStr, text, whole


class _Device(Request):
    id: ShortStr
    name: Annotated[str, text(8)]
    secret: Annotated[str, text(16, nfc=False)] | None = None


class _Login(Request):
    phone: Phone
    device: _Device
    until: dt.datetime | None = None
    day: dt.date | None = None


def _decode(body: dict[str, object]) -> _Login:
    return msgspec.json.decode(msgspec.json.encode(body), type=_Login)


def _valid(**extra: object) -> dict[str, object]:
    return {"phone": "13900000009", "device": {"id": "d1", "name": "phone"}, **extra}


def test_whole_refuses_what_a_dollar_lets_through() -> None:
    assert re.search(r"^1[3-9][0-9]{9}$", "13900000009\n")  # the bug
    assert not re.search(whole(r"1[3-9][0-9]{9}"), "13900000009\n")
    assert not re.search(whole(r"1[3-9][0-9]{9}"), "13900000009\n\n")
    assert re.search(whole(r"1[3-9][0-9]{9}"), "13900000009")
    assert not re.search(whole("a|b"), "ab")  # alternation is grouped


@pytest.mark.parametrize("phone", ["13900000009\n", "\n13900000009", "139000000091"])
def test_phone_must_be_the_whole_value(phone: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=r"\$\.phone"):
        _decode(_valid(phone=phone))


def test_id_number_must_be_the_whole_value() -> None:
    decoder = msgspec.json.Decoder(IdNumber)
    assert decoder.decode(b'"43010219900101123X"') == "43010219900101123X"
    with pytest.raises(msgspec.ValidationError):
        decoder.decode(b'"43010219900101123X\\n"')


@pytest.mark.parametrize("char", ["\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x7f", "\x80", "\x85", "\x9f"])
def test_text_refuses_control_characters(char: str) -> None:
    assert not re.search(TEXT_PATTERN, f"a{char}b") and not re.search(TEXT_PATTERN, f"ab{char}")
    with pytest.raises(msgspec.ValidationError, match=r"\$\.device\.name"):
        _decode(_valid(device={"id": "d1", "name": f"a{char}"}))


def test_text_keeps_ordinary_unicode() -> None:
    assert _decode(_valid(device={"id": "d1", "name": "张三的 📱"})).device.name == "张三的 📱"


def test_text_is_nfc_normalised_and_bounded_after() -> None:
    login = _decode(_valid(device={"id": "d1", "name": "Ame\u0301lie"}))
    assert login.device.name == "Am\u00e9lie"
    # U+FB2C is one code point that NFC turns into three: the bound applies to the result.
    with pytest.raises(msgspec.ValidationError, match="after NFC"):
        _decode(_valid(device={"id": "d1", "name": "\ufb2c\ufb2c\ufb2c"}))


def test_opaque_text_is_not_normalised() -> None:
    login = _decode(_valid(device={"id": "d1", "name": "x", "secret": "e\u0301"}))
    assert login.device.secret == "e\u0301"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("until", "0001-01-01T00:00:00Z"),
        ("until", "9999-12-31T23:59:59Z"),
        ("until", "9999-12-31T23:59:59"),
        ("until", "1969-12-31T23:59:59Z"),
        ("day", "0001-01-01"),
        ("day", "9999-12-31"),
    ],
)
def test_times_out_of_range_are_refused(field: str, value: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=rf"between 1970 and 2999 - at `\$\.{field}`"):
        _decode(_valid(**{field: value}))


def test_times_in_range_pass() -> None:
    login = _decode(_valid(until="2030-01-01T00:00:00+08:00", day="2024-02-29"))
    assert login.until == dt.datetime(2029, 12, 31, 16, tzinfo=dt.UTC)
    assert login.day == dt.date(2024, 2, 29)
