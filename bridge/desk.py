"""The commands people give the bridge in chats: one table, one small function each.

Commands answer privately where the platform can (Slack: ephemeral); a command that changes
what the whole team sees (close, block, name) is also announced in the thread there.
Slack has no slash commands inside threads: its connector turns ``!close`` and an app mention
(``@SMS close``) into ``/close``, for the words in ``bridge.models.COMMAND_WORDS`` only
(the table's names but Telegram's /start; a test keeps the two the same).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bridge.models import ChatMessage, Conversation
from bridge.phone import InvalidNumber, parse_dialable, pretty
from bridge.ports import ChatPlatform, PostsPrivately, threaded
from bridge.render import thread_title
from bridge.store.desk import Card, Seen

if TYPE_CHECKING:
    from bridge.replies import ChatHandler

_NUMBER_TOKEN = re.compile(r"^[+()\d][\d\-().]*$")
PREVIEW = 60  # characters of a message the status card shows
NAME_LENGTH = 255  # contacts.name
HELP = (
    "/sms <number> <text> — text a number\n"
    "{where}:\n"
    "/name <name> — name the number (/name shows it, /name - clears it)\n"
    "/status — the number at a glance\n"
    "/history — its earlier messages at the gateway\n"
    "/retry — send its last failed SMS again, once\n"
    "/block, /unblock — its SMS are kept but not shown, replies refused\n"
)
HELP_THREADED = (
    "Each phone number has its own thread (a topic in Telegram); what you write there is "
    "sent to it by SMS.\n"
)
HELP_CLOSE = "/close, /reopen — close its thread (its next SMS reopens it)\n"
HELP_SLACK = "In Slack threads write !status, or mention the bot: @SMS status.\n"
SMS_WITH_FILES = (
    "Nothing was sent: /sms takes text only. To send pictures or files, post them in the "
    "number's thread (or as a reply to its SMS)."
)
RETRY_EXPIRED = (
    "Nothing was sent: the pictures or files of that SMS are kept for 24 hours only. "
    "Post them again."
)
HELP_PLAIN = "Reply to a bridged message to answer that number by SMS.\n"


@dataclass(frozen=True, slots=True)
class Call:
    """One command as given: who, where, about which number, with what."""

    msg: ChatMessage
    platform: ChatPlatform
    conversation: Conversation | None
    args: str


@dataclass(frozen=True, slots=True)
class Command:
    run: Callable[[ChatHandler, Call], Awaitable[None]]
    number: bool = True  # needs a number: its thread, or a reply to one of its SMS
    changes: bool = True  # changes something or sends: allowed users only


def where(platform: ChatPlatform) -> str:
    return "thread" if isinstance(platform, PostsPrivately) else "topic"


def help_text(platform: ChatPlatform) -> str:
    if not threaded(platform):
        return (HELP_PLAIN + HELP.format(where="As a reply to a number's SMS")).rstrip()
    text = HELP_THREADED + HELP.format(where="In a number's thread") + HELP_CLOSE
    # Slack alone answers privately, and alone has no slash commands in threads.
    return (text + HELP_SLACK if isinstance(platform, PostsPrivately) else text).rstrip()


async def dispatch(handler: ChatHandler, call: Call, name: str) -> None:
    """Run ``/name``; an unknown command gets the help in a number's thread, and in a private
    chat (where no other bot listens); elsewhere in a group it is another bot's."""
    command = COMMANDS.get(name)
    if command is None:
        if call.conversation is not None or call.msg.chat in handler.personal:
            await handler.answer(call.msg, f"Unknown command /{name}.\n{help_text(call.platform)}")
        return
    if command.changes and not call.platform.allows(call.msg.user):
        await handler.refuse(call.msg)
        return
    if command.number and call.conversation is None:
        if isinstance(call.platform, PostsPrivately):  # Slack: no slash commands in threads
            hint = f"Use !{name} in a number's thread."
        elif threaded(call.platform):
            hint = f"Use /{name} inside a number's topic."
        else:
            hint = f"Use /{name} as a reply to an SMS."
        await handler.answer(call.msg, hint)
        return
    await command.run(handler, call)


async def _help(handler: ChatHandler, call: Call) -> None:
    await handler.answer(call.msg, help_text(call.platform))


async def _sms(handler: ChatHandler, call: Call) -> None:
    if call.msg.has_media:
        # Never the caption without its pictures: refused whole, with the way that works.
        await handler.answer(call.msg, SMS_WITH_FILES)
        return
    raw_number, body = split_number(call.args.strip(), handler.region)
    if not raw_number or not body:
        await handler.answer(call.msg, "Usage: /sms <number> <text>")
        return
    try:
        number = parse_dialable(raw_number, handler.region)
    except InvalidNumber as exc:
        await handler.answer(call.msg, f"Cannot send: {exc}.")
        return
    gateway = handler.router.default_gateway(call.msg.chat)
    if gateway is None:
        await handler.answer(call.msg, "No gateway is routed to this chat; nothing was sent.")
        return
    await handler._send(call.msg, gateway, number, body, echo=True)


async def _history(handler: ChatHandler, call: Call) -> None:
    assert call.conversation is not None
    handler._spawn(handler._history(call.msg, call.conversation))


async def _name(handler: ChatHandler, call: Call) -> None:
    assert call.conversation is not None
    number, name = call.conversation.number, " ".join(call.args.split())
    if not name:
        current = (await handler.store.contacts.get(number)).name
        shown = f"named {current}" if current else "not named (/name <name> names it)"
        await handler.answer(call.msg, f"{pretty(number)} is {shown}.")
        return
    if not call.platform.allows(call.msg.user):
        await handler.refuse(call.msg)
        return
    if len(name) > NAME_LENGTH:
        await handler.answer(call.msg, f"A name has at most {NAME_LENGTH} characters.")
        return
    given = None if name == "-" else name
    if not await handler.store.desk.set_name(number, given):
        await handler.answer(call.msg, f"{thread_title(number, given)}: no change.")
        return
    done = f"{call.msg.user.name} named {thread_title(number, given)}"
    if given is None:
        done = f"{call.msg.user.name} cleared the name of {pretty(number)}"
    await handler.announce(call, f"🏷 {done}.")


async def _close(handler: ChatHandler, call: Call, closed: bool) -> None:
    assert call.conversation is not None
    if not threaded(call.platform):
        await handler.answer(call.msg, "This chat has no threads to close.")
        return
    what = "closed" if closed else "reopened"
    tail = " The next SMS from this number reopens it." if closed else ""
    icon = "🔒" if closed else "🔓"
    text = f"{icon} {call.msg.user.name} {what} this {where(call.platform)}.{tail}"
    # The announcement commits with the change, and posts before the topic closes.
    done = await handler.store.desk.set_closed(
        call.msg.chat,
        call.conversation.id,
        closed,
        handler.announcement(call, text),
        handler.key(call.msg),
    )
    if done is None:
        await handler.answer(call.msg, f"{pretty(call.conversation.number)} has no thread here.")
    elif not done and (not closed or isinstance(call.platform, PostsPrivately)):
        # (A closed topic takes no post: Telegram's own service message says it is closed.)
        await handler.answer(call.msg, f"This {where(call.platform)} is {what} already.")


async def _block(handler: ChatHandler, call: Call, blocked: bool) -> None:
    assert call.conversation is not None
    number = call.conversation.number
    if not await handler.store.contacts.set_blocked(number, blocked):
        state = "blocked" if blocked else "not blocked"
        await handler.answer(call.msg, f"{pretty(number)} is {state} already.")
        return
    if blocked:
        text = (
            f"🚫 {call.msg.user.name} blocked {pretty(number)}: its SMS are stored but not "
            "posted, and replies to it are refused."
        )
    else:
        text = f"✅ {call.msg.user.name} unblocked {pretty(number)}."
    await handler.announce(call, text)


async def _status(handler: ChatHandler, call: Call) -> None:
    assert call.conversation is not None
    card = await handler.store.desk.card(call.conversation, call.msg.chat)
    await handler.answer(call.msg, status_card(card))


async def _retry(handler: ChatHandler, call: Call) -> None:
    assert call.conversation is not None
    failed = await handler.store.desk.last_failed(call.conversation.id)
    if failed is None:
        await handler.answer(call.msg, "Nothing to retry: no SMS to this number failed.")
        return
    # An MMS goes again with its files, or not at all: never its caption alone.
    files = await handler.store.media.files_of(failed.id)
    if files is None:
        await handler.answer(call.msg, RETRY_EXPIRED)
        return
    queued = await handler.router.send(
        call.msg,
        failed.gateway,
        failed.to,
        failed.text,
        echo=False,
        retry_of=failed.id,
        media=tuple(files),
    )
    if queued is None:
        await handler.answer(call.msg, "That failed SMS was retried already; nothing was sent.")
        return
    await handler.answer(call.msg, f"🔁 Sending again: {_preview(failed.text)}")


def status_card(card: Card) -> str:
    conversation, contact = card.conversation, card.contact
    lines = [f"📇 {thread_title(conversation.number, contact.name or conversation.alias)}"]
    via = [f"gateway {conversation.gateway}"]
    if conversation.device:
        via.append(f"device {conversation.device}")
    if conversation.sim is not None:
        via.append(f"SIM {conversation.sim}")
    lines.append("Via: " + ", ".join(via))
    lines.append(f"Last in: {_seen(card.last_in)}")
    lines.append(f"Last out: {_seen(card.last_out)}")
    yes = {True: "yes", False: "no"}
    lines.append(
        f"Opted out: {yes[contact.opted_out]} · Blocked: {yes[contact.blocked]}"
        f" · Closed: {yes[card.closed]}"
    )
    failed = f"Failed sends: {card.failed}"
    if card.failed:
        failed += f", last: {card.last_reason or 'no reason given'}"
    lines.append(failed)
    return "\n".join(lines)


def _seen(seen: Seen | None) -> str:
    if seen is None:
        return "none"
    when = datetime.fromtimestamp(seen.at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    status = f" ({seen.status.value})" if seen.status is not None else ""
    return f"{when} {_preview(seen.text)}{status}"


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return f"“{flat if len(flat) <= PREVIEW else flat[: PREVIEW - 1] + '…'}”"


def split_number(args: str, region: str | None = None) -> tuple[str, str]:
    """``"+1 555 123 4567 hello"`` -> (``"+1 555 123 4567"``, ``"hello"``).

    The longest run of number-like words that is a phone number: a text that starts with a
    figure ("+15551234567 3 boxes left") keeps it.
    """
    tokens = args.split(" ")
    taken = 0
    while taken < len(tokens) and _NUMBER_TOKEN.match(tokens[taken]):
        taken += 1
    for end in range(taken, 0, -1):
        try:
            parse_dialable(" ".join(tokens[:end]), region)
        except InvalidNumber:
            continue
        return " ".join(tokens[:end]), " ".join(tokens[end:]).strip()
    taken = max(taken, min(1, len(tokens)))  # none is a number: let the parser say why
    return " ".join(tokens[:taken]), " ".join(tokens[taken:]).strip()


COMMANDS: dict[str, Command] = {
    "help": Command(_help, number=False, changes=False),
    "start": Command(_help, number=False, changes=False),  # Telegram's first message to a bot
    "sms": Command(_sms, number=False),
    "history": Command(_history),
    "name": Command(_name, changes=False),  # showing is for all; naming is checked inside
    "status": Command(_status, changes=False),
    "retry": Command(_retry),
    "close": Command(lambda h, c: _close(h, c, True)),
    "reopen": Command(lambda h, c: _close(h, c, False)),
    "block": Command(lambda h, c: _block(h, c, True)),
    "unblock": Command(lambda h, c: _block(h, c, False)),
}
