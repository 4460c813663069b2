"""Upload limits for card imports.

Django's default upload handlers buffer a whole file (in memory, then on disk) before a view
sees it. `CappedUploadHandler` goes first and drops a file as soon as its bytes pass the limit,
so an oversized card is never stored in full; `too_big_request` refuses an obviously oversized
request before the body is parsed at all.
"""

from __future__ import annotations

from typing import Any

from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import HttpRequest

# Room for the multipart boundaries, headers and the CSRF token around the file itself.
MULTIPART_SLACK = 64 * 1024


class CappedUploadHandler(FileUploadHandler):
    """Skips any uploaded file larger than `limit` bytes and remembers that it did."""

    def __init__(self, limit: int, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.too_big = False

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0
        # Browsers rarely send a per-part length, but when one is there it settles it at once.
        if self.content_length is not None and self.content_length > self.limit:
            self.too_big = True
            raise SkipFile()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            # SkipFile, not StopUpload: the parser discards the rest of this file but still
            # reads the fields after it, so the view can answer with a proper page.
            self.too_big = True
            raise SkipFile()
        return raw_data  # pass the chunk on to the default handlers

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler builds the UploadedFile


def too_big_request(request: HttpRequest, limit: int) -> bool:
    """Whether the declared body size alone rules out a file within `limit`."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return length > limit + MULTIPART_SLACK
