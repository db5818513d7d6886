"""Where an answer's images are found, and what the thread shows for a relative one."""

from __future__ import annotations

from bridge.openwebui.images import ImageRef, image_refs, unlink_relative_images

URL = "/api/v1/files/abc/content"


def test_stored_files_and_live_ones_each_once() -> None:
    message = {
        "files": [
            {"type": "image", "url": URL},
            {"type": "file", "url": "/api/v1/files/doc/content"},  # not an image
            {"type": "image", "url": "https://cdn.example.org/x.png"},  # the platform opens it
        ]
    }
    live = [{"type": "image", "url": URL}, {"type": "image", "url": "/api/v1/files/def/content"}]
    assert image_refs(message, live) == [ImageRef(URL), ImageRef("/api/v1/files/def/content")]
    assert image_refs({}, []) == []


def test_a_relative_image_link_shows_its_alt_text_and_its_file_goes_along() -> None:
    text, refs = unlink_relative_images(f"Here:\n\n![a cat]({URL})\n\n![x](/static/logo.png)")
    assert text == "Here:\n\n_(a cat, attached)_\n\n![x](/static/logo.png)"
    assert refs == [ImageRef(URL, "a cat")]
