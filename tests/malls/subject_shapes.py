"""``mail_variants.every_shape`` for malls that check the subject: the same shapes, re-subjected."""

from __future__ import annotations

from email.header import Header

from tests.malls.mail_variants import every_shape

_DEFAULT_SUBJECT = f"Subject: {Header('ご注文の確認', 'utf-8').encode()}".encode()


def every_shape_with_subject(body: str, subject: str) -> list[tuple[str, bytes]]:
    """Every transport shape of ``body`` with ``subject`` (UTF-8 encoded word, unfolded)."""
    header = f"Subject: {Header(subject, 'utf-8').encode(maxlinelen=0)}".encode()
    shapes = []
    for name, raw in every_shape(body):
        assert raw.count(_DEFAULT_SUBJECT) == 1, name
        shapes.append((name, raw.replace(_DEFAULT_SUBJECT, header)))
    return shapes
