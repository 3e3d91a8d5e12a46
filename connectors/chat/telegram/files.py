"""Downloading what a person posted (``FetchesFiles``): getFile, then the file through PTB."""

from __future__ import annotations

from telegram import Bot

from bridge.errors import TooLarge
from bridge.models import ChatFile
from connectors.chat.telegram.calls import call


async def download(bot: Bot, file: ChatFile, limit: int) -> bytes:
    """The file's bytes; ``TooLarge`` past ``limit``, checked on the size getFile reports before
    any byte is fetched (bots may download up to 20 MB, so the bytes are bounded anyway)."""
    if file.size is not None and file.size > limit:
        raise TooLarge(f"the file is larger than {limit} bytes")
    found = await call("getFile", lambda: bot.get_file(file.ref))
    if found.file_size is not None and found.file_size > limit:
        raise TooLarge(f"the file is larger than {limit} bytes")
    data = await call("file download", found.download_as_bytearray)
    if len(data) > limit:
        raise TooLarge(f"the file is larger than {limit} bytes")
    return bytes(data)
