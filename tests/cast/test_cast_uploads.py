"""The upload cap itself: an oversized file is dropped while it streams, not after."""

from __future__ import annotations

from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import RequestFactory

from personaweb.cast.uploads import MULTIPART_SLACK, CappedUploadHandler, too_big_request


def parsed(size: int, limit: int) -> tuple[CappedUploadHandler, Any, Any]:
    request = RequestFactory().post(
        "/", {"card": SimpleUploadedFile("c.json", b"x" * size), "after": "kept"}
    )
    cap = CappedUploadHandler(limit, request)
    request.upload_handlers.insert(0, cap)
    return cap, request.FILES, request.POST


def test_it_drops_a_file_over_the_limit_and_keeps_the_other_fields():
    cap, files, post = parsed(size=300_000, limit=100_000)
    assert cap.too_big
    assert "card" not in files
    # Fields after the file still arrive (the CSRF token may come last).
    assert post["after"] == "kept"
    # It stopped counting soon after the limit: the rest was never handed on.
    assert cap.received < 100_000 + 2 * 65_536


def test_it_passes_a_file_within_the_limit_through():
    cap, files, _ = parsed(size=100_000, limit=100_000)
    assert not cap.too_big
    assert files["card"].size == 100_000


def test_it_judges_a_request_by_its_declared_length():
    factory = RequestFactory()
    small = factory.post("/", data=b"", content_type="application/octet-stream")
    small.META["CONTENT_LENGTH"] = str(1000 + MULTIPART_SLACK)
    big = factory.post("/", data=b"", content_type="application/octet-stream")
    big.META["CONTENT_LENGTH"] = str(1001 + MULTIPART_SLACK)
    odd = factory.post("/", data=b"", content_type="application/octet-stream")
    odd.META["CONTENT_LENGTH"] = "many"
    assert not too_big_request(small, 1000)
    assert too_big_request(big, 1000)
    assert not too_big_request(odd, 1000)
