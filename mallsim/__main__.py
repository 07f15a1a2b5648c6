"""``python -m mallsim --config FILE`` runs the simulated malls;
``python -m mallsim mail --mall KIND --order NO --item CODE:QTY ...`` prints one order mail.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from dataclasses import asdict
from datetime import datetime

import trio

from protocols.malls import KINDS


def _item(text: str) -> tuple[str, tuple[str, ...], int]:
    """``CODE:QTY`` or ``CODE/VAR1[/VAR2]:QTY`` → (item id, variation, quantity)."""
    code, sep, qty = text.rpartition(":")
    if not sep or not code:
        raise argparse.ArgumentTypeError(f"{text!r}: expected CODE:QTY")
    try:
        n = int(qty)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: quantity {qty!r} is not a whole number"
        ) from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: quantity must be ≥ 1")
    item_id, *variation = code.split("/")
    return item_id, tuple(variation), n


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mallsim", description="Simulated Japanese malls on loopback."
    )
    p.add_argument("--config", help="TOML config (see docs/mallsim.md)")
    p.add_argument("--fresh", action="store_true", help="wipe state_dir and the Maildirs first")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = p.add_subparsers(dest="command")
    m = sub.add_parser("mail", help="print one order mail for a mall to stdout")
    m.add_argument("--mall", required=True, choices=KINDS)
    m.add_argument("--order", required=True, help="the mall's order number")
    m.add_argument(
        "--item",
        required=True,
        action="append",
        type=_item,
        metavar="CODE:QTY",
        help="mall item code and quantity (CODE/VAR1/VAR2:QTY for a variation); repeatable",
    )
    m.add_argument("--shop-name", default="mallsim shop")
    m.add_argument("--at", help="order time, ISO 8601 with offset (default: now, Japan time)")
    m.add_argument("--cancelled", action="store_true", help="render the order as cancelled")
    return p


def mail_command(args: argparse.Namespace) -> int:
    from mallsim.malls import Mall, NotSupported
    from mallsim.state import JST
    from protocols.malls.base import MallOrder, OrderLine

    mall = Mall(args.mall)
    if "mail" not in mall.cap.intake:
        intake = ", ".join(mall.cap.intake) or "nothing"
        print(
            f"mallsim: {args.mall} sends no order mails (it takes orders by {intake})",
            file=sys.stderr,
        )
        return 2
    at = args.at or datetime.now(JST).isoformat(timespec="seconds")
    try:
        if datetime.fromisoformat(at).tzinfo is None:
            raise ValueError
    except ValueError:
        print(f"mallsim: --at {at!r} is not an ISO 8601 time with an offset", file=sys.stderr)
        return 2
    lines = tuple(
        OrderLine(
            line_no=i,
            item_id=item_id,
            variation=variation,
            sku=mall.join_sku(item_id, variation),
            quantity=qty,
        )
        for i, (item_id, variation, qty) in enumerate(args.item, start=1)
    )
    order = MallOrder(
        order_no=args.order,
        ordered_at=at,
        status="cancelled" if args.cancelled else "new",
        lines=lines,
        cancelled_lines=tuple(line.line_no for line in lines) if args.cancelled else (),
    )
    try:
        raw = mall.render_order_mail(order, args.shop_name)
    except NotSupported as exc:
        print(f"mallsim: {exc}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(raw)
    sys.stdout.buffer.flush()
    return 0


async def serve(args: argparse.Namespace) -> int:
    from mallsim.config import load_config
    from mallsim.sim import Simulator, wipe_state

    cfg = load_config(args.config)
    if args.fresh:
        wipe_state(cfg)
    sim = Simulator(cfg)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(sim.run)
            print(json.dumps(asdict(addresses)), flush=True)
            async for signum in signals:
                logging.getLogger("mallsim").info("%s: stopping", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:  # one line per connection and auth step otherwise
        logging.getLogger("asyncssh").setLevel(logging.WARNING)
    if args.command == "mail":
        return mail_command(args)
    if not args.config:
        print("mallsim: --config FILE is required to run the simulator", file=sys.stderr)
        return 2
    from mallsim.config import ConfigError

    try:
        return trio.run(serve, args)
    except (ConfigError, OSError, BaseExceptionGroup) as exc:
        leaf = _leaf(exc)
        if not isinstance(leaf, (ConfigError, OSError)):
            raise
        print(f"mallsim: {leaf}", file=sys.stderr)
        return 2 if isinstance(leaf, ConfigError) else 1


def _leaf(exc: BaseException) -> BaseException:
    """The one error inside nested exception groups (trio nurseries wrap what they raise)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


if __name__ == "__main__":
    sys.exit(main())
