"""Order-mail helpers shared by the mail-intake mall modules: read any Japanese mail, write one.

Reading is tolerant about transport (ISO-2022-JP, Shift_JIS/CP932 or UTF-8 bodies, base64 or
quoted-printable, multipart/alternative, CRLF or LF) and strict about content: a body that does
not decode, or a field that is missing or malformed, raises ``MailError`` with the reason.
"""

from __future__ import annotations

import base64
import binascii
import email
import quopri
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email import errors, policy
from email.header import decode_header
from email.message import EmailMessage, Message
from email.utils import format_datetime, make_msgid
from html.parser import HTMLParser

from protocols.malls.base import MailError, MallOrder, NotAnOrderMail, OrderLine, identifier

JST = timezone(timedelta(hours=9), "JST")

# Japanese mailers label bodies with the JIS / Shift_JIS names but write the Microsoft
# supersets (①, ㈱, 髙, ～), so each label is tried with strict codecs from narrow to wide.
_CHARSET_CODECS: dict[str, tuple[str, ...]] = {
    "iso-2022-jp": ("iso2022_jp", "iso2022_jp_3", "iso2022_jp_ext"),
    "shift_jis": ("cp932",),
    "shift-jis": ("cp932",),
    "sjis": ("cp932",),
    "x-sjis": ("cp932",),
    "windows-31j": ("cp932",),
    "cp932": ("cp932",),
    "ms932": ("cp932",),
    "utf-8": ("utf-8",),
    "utf8": ("utf-8",),
}
# An undeclared (or us-ascii) 8-bit body: try the two encodings Japanese systems write.
_UNDECLARED_CODECS = ("utf-8", "cp932")
_BASE64_DEFECTS = (
    errors.InvalidBase64CharactersDefect,
    errors.InvalidBase64PaddingDefect,
    errors.InvalidBase64LengthDefect,
)
_BLOCK_TAGS = frozenset(
    {"br", "p", "div", "tr", "li", "table", "h1", "h2", "h3", "h4", "h5", "h6", "hr"}
)
_CELL_TAGS = frozenset({"td", "th"})
_LABEL_DECORATION = "■□◆◇●○・▼"
_DATETIME = re.compile(
    r"(\d{4})[年/\-.](\d{1,2})[月/\-.](\d{1,2})日?\s*(?:\(.\))?\s*"
    r"(\d{1,2})[時:](\d{1,2})(?:[分:](\d{1,2})秒?)?"
)


class _HtmlText(HTMLParser):
    """HTML body → text: block elements end a line, table cells are split by a tab."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag in _CELL_TAGS:
            self.parts.append("\t")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            # Source line breaks inside HTML are layout, not content.
            self.parts.append(data.replace("\r", "").replace("\n", ""))


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = ("".join(parser.parts)).split("\n")
    return "\n".join(line.strip(" \t") for line in lines)


# ISO-2022-JP's designations as Windows and Japanese mail systems write them (CP50220/50221):
# JIS X 0208 two-byte text (with the NEC special row 13 and the NEC-selected IBM extensions
# in rows 89-92, where ①, ㈱ and 髙 live), JIS Roman, and JIS X 0201 half-width katakana.
_ISO2022JP_SETS: dict[bytes, str] = {
    b"\x1b(B": "ascii",
    b"\x1b(J": "ascii",
    b"\x1b(I": "kana",
    b"\x1b$@": "jis",
    b"\x1b$B": "jis",
}


_DESIGNATION = re.compile(rb"(\x1b\(B|\x1b\(J|\x1b\(I|\x1b\$@|\x1b\$B)")
_JIS_BYTES = bytes(range(0x21, 0x7F))
_KANA_BYTES = bytes(range(0x21, 0x60))
_ASCII_BYTES = bytes(range(0x80))
# JIS row → Shift_JIS lead byte; (cell, 0x80 for an even row) → Shift_JIS trail byte
_LEAD = bytes(
    min(0xFF, (row + 1) // 2 + 0x70 + (0x40 if (row + 1) // 2 + 0x70 >= 0xA0 else 0))
    for row in range(256)
)
_EVEN_ROW = bytes(0x80 if row % 2 == 0 else 0 for row in range(256))
_TRAIL = bytes(
    min(0xFF, (key & 0x7F) + 0x7E)
    if key & 0x80
    else min(0xFF, key + 0x1F + (1 if key >= 0x60 else 0))
    for key in range(256)
)
_KANA = bytes(min(0xFF, byte + 0x80) for byte in range(256))


def _fast_iso2022jp_ms(data: bytes) -> str | None:
    """``decode_iso2022jp_ms`` with C-speed byte operations, for the usual mail: all its
    two-byte text is turned into Shift_JIS at once (the rows and the cells translated apart,
    then interleaved). None when the text needs the byte-by-byte reader."""
    if b"\x0e" in data or b"\x0f" in data:
        return None
    pieces = _DESIGNATION.split(data)
    modes = [b"\x1b(B", *pieces[1::2]]
    texts = pieces[0::2]
    two_byte = b"".join(t for m, t in zip(modes, texts, strict=True) if m in (b"\x1b$B", b"\x1b$@"))
    if len(two_byte) % 2 or two_byte.translate(None, _JIS_BYTES):
        return None
    rows, cells = two_byte[0::2], two_byte[1::2]
    keys = (
        int.from_bytes(cells, "big") | int.from_bytes(rows.translate(_EVEN_ROW), "big")
    ).to_bytes(len(cells), "big")
    converted = bytearray(len(two_byte))
    converted[0::2] = rows.translate(_LEAD)
    converted[1::2] = keys.translate(_TRAIL)
    sjis = bytearray()
    at = 0
    for mode, text in zip(modes, texts, strict=True):
        if mode in (b"\x1b$B", b"\x1b$@"):
            if len(text) % 2:
                return None
            sjis += converted[at : at + len(text)]
            at += len(text)
        elif mode == b"\x1b(I":
            if text.translate(None, _KANA_BYTES):
                return None
            sjis += text.translate(_KANA)
        else:
            if text.translate(None, _ASCII_BYTES) or b"\x1b" in text:
                return None
            sjis += text
    try:
        decoded = sjis.decode("cp932")
    except UnicodeDecodeError:
        return None
    if any(ch in decoded for ch in "\x80\uf8f0\uf8f1\uf8f2\uf8f3"):
        return None
    return decoded


def decode_iso2022jp_ms(data: bytes) -> str:
    """ISO-2022-JP as Microsoft and Japanese mailers write it, with the NEC and IBM extension
    characters that Python's strict ``iso2022_jp`` codec rejects and its ``iso2022_jp_3``
    turns into other characters. Each two-byte JIS character is mapped to its Shift_JIS
    bytes, and the whole is decoded as cp932, which has those extensions. Raises
    UnicodeDecodeError for anything else (another designation, a stray 8-bit byte)."""
    fast = _fast_iso2022jp_ms(data)
    if fast is not None:
        return fast
    sjis = bytearray()
    mode = "ascii"
    shifted_out = False  # SO/SI half-width katakana (CP50222)
    index = 0
    end = len(data)
    while index < end:
        byte = data[index]
        if byte == 0x1B:
            for sequence, designated in _ISO2022JP_SETS.items():
                if data.startswith(sequence, index):
                    mode = designated
                    index += len(sequence)
                    break
            else:
                raise UnicodeDecodeError(
                    "iso-2022-jp", data, index, index + 1, "unknown escape sequence"
                )
            continue
        if byte in (0x0E, 0x0F):
            shifted_out = byte == 0x0E
            index += 1
            continue
        if byte >= 0x80:
            raise UnicodeDecodeError("iso-2022-jp", data, index, index + 1, "8-bit byte")
        if byte < 0x21 or byte == 0x7F or (mode == "ascii" and not shifted_out):
            # controls and line breaks stand for themselves in every mode
            sjis.append(byte)
            index += 1
        elif mode == "kana" or shifted_out:
            if byte > 0x5F:
                raise UnicodeDecodeError("iso-2022-jp", data, index, index + 1, "not a kana")
            sjis.append(byte + 0x80)
            index += 1
        else:
            if index + 1 >= end or not 0x21 <= data[index + 1] <= 0x7E:
                raise UnicodeDecodeError(
                    "iso-2022-jp", data, index, index + 2, "incomplete two-byte character"
                )
            row, cell = byte, data[index + 1]
            lead = (row + 1) // 2 + 0x70
            if lead >= 0xA0:
                lead += 0x40
            if row & 1:
                trail = cell + 0x1F + (1 if cell >= 0x60 else 0)
            else:
                trail = cell + 0x7E
            sjis += bytes((lead, trail))
            index += 2
    try:
        text = sjis.decode("cp932")
    except UnicodeDecodeError as exc:
        raise UnicodeDecodeError("iso-2022-jp", data, 0, len(data), exc.reason) from exc
    if any(ch in text for ch in "\x80\uf8f0\uf8f1\uf8f2\uf8f3"):
        raise UnicodeDecodeError("iso-2022-jp", data, 0, len(data), "no character for a byte")
    return text


def encode_iso2022jp_ms(text: str) -> bytes:
    """``text`` in ISO-2022-JP as Windows writes it (CP50221): what ``decode_iso2022jp_ms``
    reads, the NEC and IBM extension characters included (an IBM extension is written as its
    NEC-selected twin in rows 89-92). Raises UnicodeEncodeError for what cp932 lacks."""
    out = bytearray()
    mode = "ascii"
    for char in text:
        if char.isascii():
            if mode != "ascii":
                out += b"\x1b(B"
                mode = "ascii"
            out += char.encode()
            continue
        code = char.encode("cp932")
        if len(code) == 1:  # half-width katakana
            if mode != "kana":
                out += b"\x1b(I"
                mode = "kana"
            out.append(code[0] - 0x80)
            continue
        if 0xFA <= code[0] <= 0xFC:
            code = _NEC_SELECTED.get(char, code)
        lead, trail = code
        if lead >= 0xE0:
            lead -= 0x40
        row = (lead - 0x70) * 2 - 1
        if trail >= 0x9F:
            row, cell = row + 1, trail - 0x7E
        else:
            cell = trail - 0x1F - (1 if trail >= 0x80 else 0)
        if not (0x21 <= row <= 0x7E and 0x21 <= cell <= 0x7E):
            raise UnicodeEncodeError("iso-2022-jp", text, 0, len(text), f"{char} has no JIS code")
        if mode != "jis":
            out += b"\x1b$B"
            mode = "jis"
        out += bytes((row, cell))
    if mode != "ascii":
        out += b"\x1b(B"
    return bytes(out)


def _nec_selected() -> dict[str, bytes]:
    """IBM extension character → its NEC-selected cp932 code (0xED40–0xEEFC)."""
    table: dict[str, bytes] = {}
    for lead in (0xED, 0xEE):
        for trail in range(0x40, 0xFD):
            try:
                table.setdefault(bytes((lead, trail)).decode("cp932"), bytes((lead, trail)))
            except UnicodeDecodeError:
                continue
    return table


_NEC_SELECTED = _nec_selected()


def _decode_body(payload: bytes, charset: str | None) -> str:
    declared = (charset or "").lower()
    if declared in ("iso-2022-jp", "csiso2022jp", "iso-2022-jp-ms", "cp50220", "cp50221"):
        try:
            # never Python's iso2022_jp first: it reads 〜 − ‖ ¢ £ ¬ and JIS-Roman as JIS
            # does, where cp932 listings (and this decoder) have ～ － ∥ ￠ ￡ ￢ and ASCII
            return decode_iso2022jp_ms(payload)
        except UnicodeDecodeError:
            pass  # JIS X 0213 and the like: the stricter codecs below say what they can
    codecs_to_try = _CHARSET_CODECS.get(declared)
    if codecs_to_try is None:
        if declared not in ("", "us-ascii"):
            codecs_to_try = (declared,)
        else:
            codecs_to_try = _UNDECLARED_CODECS
    for codec in codecs_to_try:
        try:
            return payload.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
    raise MailError(f"body is not valid {charset or 'UTF-8 or Shift_JIS'} text")


@dataclass(frozen=True)
class MailText:
    """The subject and the readable lines of one mail (text/plain preferred, else HTML)."""

    subject: str
    lines: list[str]


def read_mail(raw: bytes) -> MailText:
    """Parse an RFC 5322 message and return its text with LF line ends.

    Parsed with the ``compat32`` policy: the body part is found by walking the parts, and
    the Subject decoded word by word here, which is several times faster than the header
    registry of ``policy.default`` (measured: most of a mail's intake time) and reads
    ISO-2022-JP words as Japanese mailers write them.
    """
    if not raw.strip():
        raise MailError("empty mail")
    simple = _read_single_part(raw)
    if simple is not None:
        return simple
    message = email.message_from_bytes(raw, policy=policy.compat32)
    if not message.keys():
        raise MailError("no mail header block (not an RFC 5322 message)")
    part = _body_part(message)
    if part is None:
        raise MailError("no text/plain or text/html part")
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raise MailError("text part has no content")
    if any(isinstance(defect, _BASE64_DEFECTS) for defect in part.defects):
        raise MailError("text part is not valid base64")
    text = _decode_body(payload, part.get_content_charset())
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if part.get_content_subtype() == "html":
        text = html_to_text(text)
    headers = _headers(raw)
    return MailText(
        subject=_subject(headers.get("subject") if headers else None), lines=text.split("\n")
    )


_HEADER_END = re.compile(rb"\r?\n\r?\n")
_CHARSET = re.compile(r"""charset\s*=\s*"?([^";\s]+)""", re.IGNORECASE)


def _headers(raw: bytes) -> dict[str, str] | None:
    """The header block, unfolded, by lower-case name (the first of each); 8-bit bytes kept
    (escaped) for ``_subject`` to decode; None when it is not a header block."""
    found = _HEADER_END.search(raw)
    head = raw[: found.start() if found else len(raw)].decode("ascii", "surrogateescape")
    headers: dict[str, str] = {}
    name = ""
    for line in head.replace("\r\n", "\n").split("\n"):
        if line[:1] in (" ", "\t") and name:
            headers[name] += " " + line.strip()
            continue
        key, colon, value = line.partition(":")
        if not colon or not key.strip():
            return None
        name = key.strip().lower()
        headers.setdefault(name, value.strip())
    return headers


def _read_single_part(raw: bytes) -> MailText | None:
    """The usual order mail (one text/plain or text/html part, 7bit, 8bit, base64 or
    quoted-printable) read without the email package, which costs most of a mail's intake
    time; None for anything else (multipart, defects), which ``read_mail`` reads the long
    way with the same result."""
    found = _HEADER_END.search(raw)
    headers = _headers(raw)
    if found is None or headers is None:
        return None
    body = raw[found.end() :]
    content_type = headers.get("content-type", "text/plain").lower()
    subtype = content_type.split(";", 1)[0].strip()
    if subtype not in ("text/plain", "text/html"):
        return None
    charset = _CHARSET.search(headers.get("content-type", ""))
    encoding = headers.get("content-transfer-encoding", "7bit").strip().lower()
    if encoding in ("7bit", "8bit", "binary"):
        payload = body
    elif encoding == "base64":
        try:
            payload = base64.b64decode(b"".join(body.split()), validate=True)
        except binascii.Error:
            return None  # the long way says what is wrong with it
    elif encoding == "quoted-printable":
        payload = quopri.decodestring(body)
    else:
        return None
    text = _decode_body(payload, charset.group(1) if charset else None)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if subtype == "text/html":
        text = html_to_text(text)
    return MailText(subject=_subject(headers.get("subject")), lines=text.split("\n"))


def _body_part(message: Message) -> Message | None:
    """The text/plain part (else text/html) that is not an attachment: the order's text."""
    found: dict[str, Message] = {}
    for part in message.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        if disposition == "attachment":
            continue
        found.setdefault(part.get_content_subtype(), part)
    return found.get("plain") or found.get("html")


def _subject(found: object) -> str:
    """The Subject header decoded word by word, ISO-2022-JP words as Japanese mailers write
    them (①, ㈱ in a shop's name); a word that decodes with nothing keeps its raw text."""
    if found is None:
        return ""
    parts = []
    for chunk, charset in decode_header(str(found)):
        if isinstance(chunk, str):
            # a raw subject (no encoded words) comes back with its 8-bit bytes escaped; a
            # raw ISO-2022-JP one has its escape sequences
            raw_chunk = chunk.encode("utf-8", "surrogateescape")
            readers: list[Callable[[bytes], str]] = [
                lambda data: data.decode("utf-8"),
                lambda data: data.decode("cp932"),
            ]
            if b"\x1b" in raw_chunk:
                readers.insert(0, decode_iso2022jp_ms)
            for read in readers:
                try:
                    chunk = read(raw_chunk)
                    break
                except UnicodeDecodeError:
                    continue
            parts.append(chunk)
            continue
        declared = (charset or "").lower()
        try:
            if declared.startswith("iso-2022-jp"):
                parts.append(decode_iso2022jp_ms(chunk))
            else:
                parts.append(chunk.decode(declared or "ascii"))
        except (UnicodeDecodeError, LookupError):
            parts.append(chunk.decode("utf-8", "replace"))
    return "".join(parts)


def split_label(line: str) -> tuple[str, str] | None:
    """``label：value`` (full- or half-width colon, or a tab from an HTML table) → (label, value)."""
    match = re.match(r"^\s*([^：:\t]+?)\s*[：:\t]\s*(.*?)\s*$", line)
    if match is None:
        return None
    label = match.group(1).lstrip(_LABEL_DECORATION).strip()
    return (label, match.group(2)) if label else None


def labelled_blocks(
    lines: list[str], item_start: str
) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Split ``label：value`` lines into the order's own fields and one dict per item.

    Each item starts at an ``item_start`` label. The first value of a label wins, so totals
    printed after the last item (送料, 合計) never overwrite the item's own fields.
    """
    order: dict[str, str] = {}
    items: list[dict[str, str]] = []
    for line in lines:
        labelled = split_label(line)
        if labelled is None:
            continue
        label, value = labelled
        if label == item_start:
            items.append({})
        target = items[-1] if items else order
        target.setdefault(label, value)
    return order, items


def required(fields: dict[str, str], label: str, where: str) -> str:
    value = fields.get(label, "")
    if not value:
        raise MailError(f"{where}: no {label} line")
    return value


def parse_count(value: str, what: str) -> int:
    """A quantity as printed in a mail (``2``, ``２個``, ``1,000点``) → int; anything else fails."""
    digits = unicodedata.normalize("NFKC", value).replace(",", "").strip()
    digits = re.sub(r"\s*(個|点|枚|本|セット)$", "", digits)
    if not re.fullmatch(r"[0-9]+", digits):
        raise MailError(f"{what} {value!r} is not a whole number")
    return int(digits)


def parse_ja_datetime(value: str, what: str) -> str:
    """``2024年01月02日 10時11分12秒`` / ``2024/01/02 10:11:12`` (Japan time) → ISO 8601."""
    match = _DATETIME.search(unicodedata.normalize("NFKC", value))
    if match is None:
        raise MailError(f"{what} {value!r} is not a date and time")
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=JST)
    except ValueError as exc:
        raise MailError(f"{what} {value!r}: {exc}") from None
    return moment.isoformat()


def format_ja_datetime(iso: str, pattern: str) -> str:
    """An ISO 8601 instant shown in Japan time with ``strftime`` ``pattern``."""
    return datetime.fromisoformat(iso).astimezone(JST).strftime(pattern)


def render_mail(
    *,
    sender: str,
    recipient: str,
    subject: str,
    body: str,
    sent_at: str,
    charset: str = "utf-8",
) -> bytes:
    """An RFC 5322 message with CRLF line ends.

    ``charset="iso-2022-jp"`` writes what Japanese mail systems write (CP50221: ①, ㈱ and 髙
    as NEC and IBM extension characters); a body with characters beyond cp932 goes as UTF-8.
    """
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.fromisoformat(sent_at))
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].rstrip(">"))
    if charset == "iso-2022-jp":
        # as Japanese mail systems write it: ①, ㈱ and 髙 stay ISO-2022-JP (CP50221)
        try:
            encoded = encode_iso2022jp_ms(body.replace("\r\n", "\n").replace("\n", "\r\n"))
        except UnicodeEncodeError:
            charset = "utf-8"
        else:
            message.set_content(
                encoded, "text", "plain", cte="7bit", params={"charset": "iso-2022-jp"}
            )
            return message.as_bytes()
    try:
        body.encode(charset)
    except UnicodeEncodeError:
        charset = "utf-8"
    message.set_content(body, charset=charset)
    return message.as_bytes()


# The simulator does not know prices; templates print this unit price so they read like
# real confirmations.
PLACEHOLDER_UNIT_PRICE = 1000


@dataclass(frozen=True)
class LabelLayout:
    """Where a ``label：value`` order mail keeps each field; every item starts at ``item_code``."""

    mall: str
    order_no: str
    ordered_at: str
    item_code: str
    quantity: str
    name: str
    variation: tuple[str, ...] = ()
    # an order mail's subject holds one of these; any other mail of the mall is no order
    subject_marks: tuple[str, ...] = ()


def parse_labelled_order(
    raw: bytes, layout: LabelLayout, join_sku: Callable[[str, tuple[str, ...]], str]
) -> MallOrder:
    """Read a ``label：value`` order mail into a MallOrder (status ``new``), lines numbered 1..n;
    a mail that does not read as an order raises NotAnOrderMail when its subject has none of
    the layout's marks, else MailError."""
    mail = read_mail(raw)
    try:
        return _labelled_order(mail, layout, join_sku)
    except MailError as exc:
        # A mail that reads as an order is one, whatever its subject (a shipping notice of an
        # order already taken is then a harmless replay); one that does not is broken only if
        # its subject says it is an order: other notices of the mall are set aside.
        if layout.subject_marks and not any(mark in mail.subject for mark in layout.subject_marks):
            raise NotAnOrderMail(f"not an order mail: subject {mail.subject!r} ({exc})") from exc
        raise


def _labelled_order(
    mail: MailText, layout: LabelLayout, join_sku: Callable[[str, tuple[str, ...]], str]
) -> MallOrder:
    fields, items = labelled_blocks(mail.lines, layout.item_code)
    where = f"{layout.mall} order mail"
    order_no = required(fields, layout.order_no, where)
    ordered_at = parse_ja_datetime(required(fields, layout.ordered_at, where), layout.ordered_at)
    if not items:
        raise MailError(f"{where} {order_no}: no item ({layout.item_code} line)")
    lines: list[OrderLine] = []
    for line_no, item in enumerate(items, start=1):
        at = f"{where} {order_no} item {line_no}"
        item_id = identifier(required(item, layout.item_code, at))
        variation = tuple(
            value for label in layout.variation if (value := identifier(item.get(label, "")))
        )
        quantity = parse_count(required(item, layout.quantity, at), f"{at} {layout.quantity}")
        if quantity < 1:
            raise MailError(f"{at}: {layout.quantity} is 0")
        lines.append(
            OrderLine(
                line_no=line_no,
                item_id=item_id,
                variation=variation,
                sku=join_sku(item_id, variation),
                quantity=quantity,
                name=item.get(layout.name, ""),
            )
        )
    return MallOrder(order_no=order_no, ordered_at=ordered_at, lines=tuple(lines))


def require_new(order: MallOrder) -> None:
    """Order mails announce new orders only; a cancelled order has no confirmation mail."""
    if order.status != "new":
        raise ValueError(f"order {order.order_no} is {order.status}: only new orders are mailed")
