"""Hand-written order mails: one body text in every transport shape Japanese mailers produce."""

from __future__ import annotations

import base64
import html
import quopri
from email.header import Header

_BOUNDARY = "==zaiko-test-boundary=="
_CODECS = {"iso-2022-jp": "iso2022_jp", "shift_jis": "cp932", "utf-8": "utf-8"}


def _encode(text: str, charset: str, cte: str, newline: str) -> bytes:
    payload = text.replace("\n", newline).encode(_CODECS[charset])
    if cte == "base64":
        return base64.encodebytes(payload).replace(b"\n", newline.encode())
    if cte == "quoted-printable":
        return quopri.encodestring(payload).replace(b"\n", newline.encode())
    return payload


def _headers(subject: str, content_type: str, cte: str | None) -> list[str]:
    lines = [
        "From: Shop <shop@example.jp>",
        "To: orders@example.jp",
        f"Subject: {Header(subject, 'utf-8').encode()}",
        "Date: Tue, 02 Jan 2024 10:11:12 +0900",
        "Message-ID: <test-1@example.jp>",
        "MIME-Version: 1.0",
        f"Content-Type: {content_type}",
    ]
    if cte:
        lines.append(f"Content-Transfer-Encoding: {cte}")
    return lines


def single_part(
    body: str,
    *,
    charset: str = "utf-8",
    cte: str = "8bit",
    newline: str = "\r\n",
    subtype: str = "plain",
    subject: str = "ご注文の確認",
) -> bytes:
    """A one-part mail whose body is ``body`` in ``charset`` with transfer encoding ``cte``."""
    head = _headers(subject, f"text/{subtype}; charset={charset}", cte)
    return (
        newline.join(head).encode() + (newline * 2).encode() + _encode(body, charset, cte, newline)
    )


def as_html(body: str) -> str:
    """The HTML twin of a plain-text body: one <br> per line."""
    lines = "<br>\n".join(html.escape(line) for line in body.split("\n"))
    return (
        f"<html><head><style>p {{ color: red; }}</style></head><body><p>{lines}</p></body></html>"
    )


def alternative(
    body: str, *, charset: str = "utf-8", cte: str = "base64", newline: str = "\r\n"
) -> bytes:
    """multipart/alternative with text/plain and text/html parts of the same body."""
    head = _headers("ご注文の確認", f'multipart/alternative; boundary="{_BOUNDARY}"', None)
    parts = [newline.join(head).encode(), b"", b"This is a multi-part message in MIME format."]
    for subtype, text in (("plain", body), ("html", as_html(body))):
        parts += [
            f"--{_BOUNDARY}".encode(),
            f"Content-Type: text/{subtype}; charset={charset}".encode(),
            f"Content-Transfer-Encoding: {cte}".encode(),
            b"",
            _encode(text, charset, cte, newline),
        ]
    parts.append(f"--{_BOUNDARY}--".encode())
    return newline.encode().join(parts) + newline.encode()


def every_shape(body: str) -> list[tuple[str, bytes]]:
    """``body`` (ISO-2022-JP safe) as ISO-2022-JP, Shift_JIS, UTF-8, base64, quoted-printable,
    multipart/alternative, HTML only, each with CRLF or LF."""
    return [
        ("iso-2022-jp 7bit CRLF", single_part(body, charset="iso-2022-jp", cte="7bit")),
        ("iso-2022-jp 7bit LF", single_part(body, charset="iso-2022-jp", cte="7bit", newline="\n")),
        ("shift_jis 8bit CRLF", single_part(body, charset="shift_jis")),
        (
            "shift_jis quoted-printable LF",
            single_part(body, charset="shift_jis", cte="quoted-printable", newline="\n"),
        ),
        ("utf-8 8bit LF", single_part(body, newline="\n")),
        ("utf-8 base64 CRLF", single_part(body, cte="base64")),
        ("alternative utf-8 base64 CRLF", alternative(body)),
        (
            "alternative iso-2022-jp base64 LF",
            alternative(body, charset="iso-2022-jp", newline="\n"),
        ),
        (
            "alternative shift_jis quoted-printable CRLF",
            alternative(body, charset="shift_jis", cte="quoted-printable"),
        ),
        (
            "html only utf-8 quoted-printable",
            single_part(as_html(body), cte="quoted-printable", subtype="html"),
        ),
    ]
