"""The Feeds API of a simulated mall (Amazon's JSON_LISTINGS_FEED for a bulk sync).

createFeedDocument gives a document id and a pre-signed URL (``/_files/{shop}/{id}?…``, on
this server, outside the shop's API: no credentials, no rate limit, as with S3); the merchant
PUTs the document there, then createFeed submits it. The feed is processed
``sim.feed_processing_s`` after it was created: its quantities are applied as a Listings PATCH
would apply them (an unknown SKU is counted, not refused), a message that is no quantity
PATCH is an issue of the processing report, and getFeed says IN_QUEUE, IN_PROGRESS, then
DONE with the report's document id (FATAL when the document is no feed of this seller).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from mallsim.malls import Call, Mall, Response
from mallsim.state import ShopState, SimFeed, SimState

log = logging.getLogger("mallsim.feeds")

FILES_PREFIX = "/_files/"


def _signature(shop: ShopState, document_id: str) -> str:
    return hashlib.sha256(f"{shop.cfg.api_secret}/{document_id}".encode()).hexdigest()[:32]


def presigned_url(base_url: str, shop: ShopState, document_id: str) -> str:
    return (
        f"{base_url}{FILES_PREFIX}{shop.id}/{document_id}"
        f"?X-Amz-Expires=300&X-Amz-Signature={_signature(shop, document_id)}"
    )


def settle(state: SimState, shop: ShopState, now: float) -> None:
    """Process every feed of the shop whose time has come."""
    for feed in shop.feeds.values():
        if not feed.report_id and now >= feed.created + state.cfg.sim.feed_processing_s:
            _process(state, shop, Mall(shop.kind), feed)


def _process(state: SimState, shop: ShopState, mall: Mall, feed: SimFeed) -> None:
    mod: Any = mall.mod
    document = shop.feed_documents.get(feed.document_id) or b""
    try:
        seller, taken, issues = mod.read_listings_feed(document)
        if seller != shop.cfg.seller_id:
            raise ValueError(f"sellerId {seller!r} is not this seller's")
    except ValueError as exc:
        report = mod.render_processing_report(
            shop.cfg.seller_id, feed.feed_id, 0, [(0, "FATAL", str(exc))]
        )
        feed.report_id = _new_document(shop, report)
        feed.fatal = True
        log.info("shop %s: feed %s FATAL: %s", shop.id, feed.feed_id, exc)
        return
    # as a Listings PATCH: by the seller SKU only
    state.apply_quantities(shop.id, [(u.item_id, (), "", u.quantity) for _, u in taken])
    report = mod.render_processing_report(
        shop.cfg.seller_id, feed.feed_id, len(taken) + len(issues), issues
    )
    feed.report_id = _new_document(shop, report)
    shop.feeds_processed += 1
    state.changed()


def _new_document(shop: ShopState, content: bytes | None) -> str:
    shop.feed_seq += 1
    document_id = f"amzn1.tortuga.sim.{shop.id}.{shop.feed_seq}"
    shop.feed_documents[document_id] = content
    return document_id


def feed_call(
    state: SimState, shop: ShopState, mall: Mall, recognised: Call, base_url: str, now: float
) -> Response:
    """Answer one Feeds API call, as ``ShopApi.classify`` read it (credentials and rate
    already checked)."""
    mod: Any = mall.mod
    if recognised.feed_call is None:
        shop.bad_requests += 1
        return mall.error(400, recognised.feed_error)
    call = recognised.feed_call
    settle(state, shop, now)
    if call.kind == "create_document":
        document_id = _new_document(shop, None)
        body = mod.render_feed_document(document_id, presigned_url(base_url, shop, document_id))
        return Response(201, (("content-type", "application/json"),), body)
    if call.kind == "get_document":
        if shop.feed_documents.get(call.id) is None:
            return mall.error(404, f"no feed document {call.id}")
        body = mod.render_feed_document(call.id, presigned_url(base_url, shop, call.id))
        return Response(200, (("content-type", "application/json"),), body)
    if call.kind == "create_feed":
        if shop.feed_documents.get(call.id) is None:
            shop.bad_requests += 1
            return mall.error(400, f"feed document {call.id} does not exist or was not uploaded")
        shop.feed_seq += 1
        created = SimFeed(feed_id=str(50_000 + shop.feed_seq), document_id=call.id, created=now)
        shop.feeds[created.feed_id] = created
        state.changed()
        return Response(
            202, (("content-type", "application/json"),), mod.render_created_feed(created.feed_id)
        )
    feed = shop.feeds.get(call.id)
    if feed is None:
        return mall.error(404, f"no feed {call.id}")
    processing_s = state.cfg.sim.feed_processing_s
    if feed.report_id:
        status = "FATAL" if feed.fatal else "DONE"
    elif now < feed.created + processing_s / 2:
        status = "IN_QUEUE"
    else:
        status = "IN_PROGRESS"
    body = mod.render_feed(feed.feed_id, status, state.wall(feed.created), feed.report_id)
    return Response(200, (("content-type", "application/json"),), body)


def file_request(
    state: SimState, method: str, path: str, query: dict[str, str], body: bytes
) -> Response:
    """The pre-signed URL of a feed document: PUT the feed, GET a report."""
    shop_id, _, document_id = path.removeprefix(FILES_PREFIX).partition("/")
    shop = state.shops.get(shop_id)
    plain = (("content-type", "text/plain"),)
    if shop is None or document_id not in shop.feed_documents:
        return Response(404, plain, b"NoSuchKey\n")
    if query.get("X-Amz-Signature") != _signature(shop, document_id):
        return Response(403, plain, b"SignatureDoesNotMatch\n")
    if method == "PUT":  # again: the object is replaced, as S3 does
        shop.feed_documents[document_id] = body
        state.changed()
        return Response(200, (), b"")
    if method == "GET":
        content = shop.feed_documents[document_id]
        if content is None:
            return Response(404, plain, b"NoSuchKey\n")
        return Response(200, (("content-type", "application/json"),), content)
    return Response(405, plain, b"MethodNotAllowed\n")
