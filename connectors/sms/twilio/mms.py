"""What Twilio takes as MMS media (twilio.com/docs/messaging/guides/accepted-mime-types).

Twilio fetches each ``MediaUrl`` itself (GET and HEAD) and checks its Content-Type; a message
and its media together must stay under 5 MB, with at most 10 files. JPEG, PNG and GIF are
"fully supported" (resized for the handset); the rest are "accepted" and passed on as they
are, subject to the carriers' own, smaller limits for non-images.
"""

from __future__ import annotations

MAX_BYTES = 5_000_000  # "5 MB" for MMS; decimal megabytes, the smaller reading
MAX_FILES = 10
IMAGES = frozenset({"image/jpeg", "image/jpg", "image/gif", "image/png"})
ACCEPTED = IMAGES | frozenset(
    {
        "image/bmp",
        "image/tiff",
        "image/heic",
        "image/heif",
        "audio/basic",
        "audio/l24",
        "audio/mp4",
        "audio/mpeg",
        "audio/ogg",
        "audio/vnd.rn-realaudio",
        "audio/vnd.wave",
        "audio/3gpp",
        "audio/3gpp2",
        "audio/ac3",
        "audio/webm",
        "audio/amr-nb",
        "audio/amr",
        "audio/aac",
        "video/mpeg",
        "video/mp4",
        "video/quicktime",
        "video/webm",
        "video/3gpp",
        "video/3gpp2",
        "video/3gpp-tt",
        "video/h261",
        "video/h263",
        "video/h263-1998",
        "video/h263-2000",
        "video/h264",
        "text/vcard",
        "text/x-vcard",
        "text/csv",
        "text/rtf",
        "text/richtext",
        "text/calendar",
        "text/directory",
        "application/pdf",
        "application/vcard",
        "application/vnd.apple.pkpass",
    }
)
