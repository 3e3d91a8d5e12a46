"""Opt-out: the SMS that stop or restart a number, what the thread is told, and why an SMS to
an opted-out or blocked number is not sent."""

from __future__ import annotations

from bridge.config import OptOutConfig
from bridge.phone import pretty
from bridge.store.records import OptChange

# Why an SMS was failed without calling the gateway; shown after "💔 SMS not sent: ".
# Generic on purpose: the keyword may be a custom one, or the gateway may have said it.
OPTED_OUT = "this number opted out, so nothing was sent to it."
BLOCKED = "this number is blocked, so nothing was sent to it."
GATEWAY_OPTED_OUT = (
    "{reason}. This number opted out at the gateway, so nothing was sent; it is marked opted "
    "out here too."
)


class Keywords:
    """Tells a stop or start keyword from any other SMS."""

    def __init__(self, config: OptOutConfig) -> None:
        self._stop = {word.casefold() for word in config.stop}
        self._start = {word.casefold() for word in config.start}
        self._longest = max(map(len, self._stop | self._start), default=0)
        self.confirmation = config.confirmation

    def change(self, number: str, text: str) -> OptChange | None:
        """What an SMS from ``number`` saying ``text`` changes, or None for any other SMS."""
        # Asked of every SMS taken in: most are no keyword, and say so by their length.
        if len(text) > self._longest and len(text.strip()) > self._longest:
            return None
        word = text.strip().casefold()
        if word not in self._stop and word not in self._start:
            return None
        shown = pretty(number)
        if word in self._stop:
            notice = (
                f"🚫 {shown} replied {text.strip().upper()}: opted out; replies to it will "
                "not be sent."
            )
            if self.confirmation:
                notice += " The confirmation text goes out once."
            return OptChange(True, notice, self.confirmation)
        notice = f"✅ {shown} replied {text.strip().upper()}: opted back in; replies are sent."
        return OptChange(False, notice)


def refusal(*, opted_out: bool, blocked: bool) -> str | None:
    """Why nothing may be sent to a number (a confirmation aside), or None."""
    if blocked:
        return BLOCKED
    if opted_out:
        return OPTED_OUT
    return None
