"""Text shaping for chat: thread titles, headers, notices and splitting to a platform's limit."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.models import HistoryItem, Status
from bridge.phone import InvalidNumber, is_dialable, normalize, pretty


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int) -> list[str]:
    """Split into parts of at most ``limit`` UTF-16 units, preferring line then word breaks.

    Nothing is dropped: the parts joined back (with the separators they were cut at) are the text.
    """
    if limit < 2:
        raise ValueError("limit must be at least 2")
    if utf16_len(text) <= limit:
        return [text]
    parts: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        # Longest prefix that fits, counted in UTF-16 without splitting a surrogate pair.
        cut, units = 0, 0
        for index, char in enumerate(rest):
            units += 2 if ord(char) > 0xFFFF else 1
            if units > limit:
                break
            cut = index + 1
        window = rest[:cut]
        for separator in ("\n", " "):
            position = window.rfind(separator)
            # Only break at a separator in the last quarter, or tiny parts would pile up.
            if position > 0 and position >= cut * 3 // 4:
                parts.append(rest[:position])
                rest = rest[position + 1 :]
                break
        else:
            parts.append(window)
            rest = rest[cut:]
    if rest:
        parts.append(rest)
    return parts


def thread_title(number: str, alias: str | None, limit: int = 128) -> str:
    """Topic / thread name: the alias with the number, or the number alone."""
    shown = pretty(number)
    if not alias or not alias.strip():
        return shown
    title = f"{alias} ({shown})"
    if len(title) <= limit:
        return title
    # The name is cut, never the number: people (and number_from_title) read it there.
    room = max(0, limit - len(shown) - 4)
    return f"{alias[:room].rstrip()}… ({shown})"


def number_from_title(title: str) -> str | None:
    """The number in a thread title or post header we wrote ("📩 Taylor (+1 555-123-4567)").

    Only a number that can be answered: it is read to send a reply, and any other text (a
    notice, an echo) would otherwise be taken as a sender written as is.
    """
    first = title.split("\n", 1)[0].removeprefix("📩").strip()
    if first.endswith(")") and "(" in first:
        first = first[first.rindex("(") + 1 : -1]
    if not first:
        return None
    try:
        number = normalize(first)
    except InvalidNumber:
        return None
    return number if is_dialable(number) else None


def inbound_header(number: str, alias: str | None) -> str:
    """First line of an SMS posted where there are no threads (private chats)."""
    return f"📩 {thread_title(number, alias)}"


def outbound_echo(author: str, text: str, limit: int = 4096, to: str | None = None) -> str:
    """How an SMS sent from chat is shown in the number's thread (``to`` where there is none)."""
    head = f"📤 {author} → {pretty(to)}" if to else f"📤 {author}"
    echo = f"{head}: {text}"
    # The SMS itself is whole in the outbox; a mirror may show it shortened.
    return echo if utf16_len(echo) <= limit else split_text(echo, limit - 1)[0] + "…"


def attachment_line(
    name: str | None, content_type: str, url: str | None, problem: str | None = None
) -> str:
    """Stands in for a file we could not upload: what it was, and where or why not."""
    line = f"📎 {name or 'attachment'} ({content_type})"
    if problem:
        return f"{line} could not be fetched: {problem}"
    return f"{line}: {url}" if url else line


def status_notice(status: Status, reason: str | None) -> str:
    """The short reply that explains a failed SMS."""
    if status is Status.FAILED:
        return f"💔 SMS not sent: {reason or 'the gateway gave no reason'}"
    return f"SMS {status.value}"


def history_text(number: str, items: Sequence[HistoryItem]) -> str:
    """A conversation backfill as one text, oldest first (split later to the platform limit)."""
    if not items:
        return f"📜 No history for {pretty(number)} at the gateway."
    lines = [f"📜 History with {pretty(number)} ({len(items)} messages):"]
    for item in items:
        arrow = "→" if item.outgoing else "←"
        when = item.at.strftime("%Y-%m-%d %H:%M") if item.at else "?"
        lines.append(f"{arrow} {when}  {item.text}")
    return "\n".join(lines)
