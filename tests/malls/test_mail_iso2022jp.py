"""ISO-2022-JP as Japanese mail systems write it (CP50221): the NEC special characters (①,
㈱) and the IBM extensions (髙) that Python's strict codec rejects, in bodies and subjects."""

from __future__ import annotations

import base64

import pytest

from protocols.malls import colorme, rakuten
from protocols.malls._mail import decode_iso2022jp_ms, encode_iso2022jp_ms, read_mail
from protocols.malls.base import MallOrder, OrderLine

EXTENSIONS = "①㈱髙～ｶﾅ﨑 and ASCII\r\n次の行"


def test_extension_characters_round_trip_where_python_codecs_fail() -> None:
    encoded = encode_iso2022jp_ms(EXTENSIONS)
    assert max(encoded) < 0x80  # 7bit, as mail carries it
    assert decode_iso2022jp_ms(encoded) == EXTENSIONS
    with pytest.raises(UnicodeDecodeError):
        encoded.decode("iso2022_jp")
    # iso2022_jp_3 does not fail on the IBM extension row: it reads another character
    assert "髙" not in encoded.decode("iso2022_jp_3", "replace")
    # plain ISO-2022-JP reads the same as with Python's codec
    plain = "日本語のﾃｷｽﾄ".encode("iso2022_jp_ext")
    assert decode_iso2022jp_ms(plain) == plain.decode("iso2022_jp_ext")


@pytest.mark.parametrize("bad", [b"\x1b$(Q!!", b"abc\x80", b"\x1b$B!"])
def test_what_is_not_iso_2022_jp_is_refused(bad: bytes) -> None:
    with pytest.raises(UnicodeDecodeError):
        decode_iso2022jp_ms(bad)


def _mail(subject: str, body: str) -> bytes:
    word = base64.b64encode(encode_iso2022jp_ms(subject)).decode()
    return (
        "From: order@example.jp\r\nTo: shop@example.jp\r\n"
        f"Subject: =?ISO-2022-JP?B?{word}?=\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\n"
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
    ).encode() + encode_iso2022jp_ms(body.replace("\n", "\r\n"))


def test_subjects_and_bodies_with_extension_characters_read_right() -> None:
    mail = read_mail(_mail("[髙島屋㈱] 注文がありました①", "①の品\n㈱"))
    assert mail.subject == "[髙島屋㈱] 注文がありました①"
    assert mail.lines[:2] == ["①の品", "㈱"]


@pytest.mark.parametrize("module", [rakuten, colorme])
def test_an_order_whose_item_names_hold_extension_characters_is_taken(module: object) -> None:
    order = MallOrder(
        order_no="100-200",
        ordered_at="2026-11-26T09:00:00+09:00",
        lines=(OrderLine(line_no=1, item_id="item-1", sku="item-1", quantity=2, name="髙級①㈱品"),),
    )
    raw = module.render_order_mail(order, "髙島屋㈱")  # type: ignore[attr-defined]
    back = module.parse_order_mail(raw)  # type: ignore[attr-defined]
    assert back.lines[0].quantity == 2 and "髙級①㈱品" in back.lines[0].name


def test_a_plain_jis_body_reads_as_cp932_listings_have_it() -> None:
    """No ① in the mail: still ～ (U+FF5E), not 〜 (U+301C), as select.csv writes it."""
    mail = read_mail(_mail("注文", "サイズ:M～L\nSKU~01"))
    assert mail.lines[:2] == ["サイズ:M～L", "SKU~01"]


@pytest.mark.parametrize("codec", ["utf-8", "cp932", "jis"])
def test_a_raw_8_bit_subject_reads_the_same_on_every_path(codec: str) -> None:
    subject = "【楽天市場】注文内容ご確認（自動配信メール）"
    raw_subject = encode_iso2022jp_ms(subject) if codec == "jis" else subject.encode(codec)
    single = (
        b"From: a@b\r\nSubject: " + raw_subject + b"\r\nContent-Type: text/plain; "
        b"charset=utf-8\r\n\r\nbody\r\n"
    )
    multipart = (
        b"From: a@b\r\nSubject: " + raw_subject + b"\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n--b--\r\n"
    )
    assert read_mail(single).subject == subject
    assert read_mail(multipart).subject == subject
