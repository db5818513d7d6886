"""Files sent with a question, through the core, over the fake Open WebUI and a
stand-in platform serving bytes: what reaches the chat and the model, the notes
a thread shows for each file left out, bounds, dedupe and the rate limit."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.errors import QuestionRefused
from bridge.events import FileRef
from bridge.policy import AccessPolicy, Asker, Limits
from tests.bridge.test_intake import (
    BridgeMaker,
    Setup,
    each,
    make_any,
    make_bridge,
    question,
    regenerate,
    s,
    submit,
)

__all__ = ["each", "make_any", "make_bridge", "s"]  # fixtures shared with the core tests

pytestmark = pytest.mark.timeout(20)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
TEXT = b"the launch code is 4-7-1-1\n"


def serve(s: Setup, file_id: str, data: bytes) -> None:
    s.platform.served[file_id] = data


def user_files(s: Setup, chat_id: str) -> list[list[dict[str, Any]]]:
    messages = s.fake.history(chat_id)["messages"].values()
    return [m.get("files") or [] for m in messages if m.get("role") == "user"]


def shown(s: Setup, message_id: str) -> str:
    return s.platform.replies[message_id].final or ""


async def test_a_document_reaches_the_chat_and_the_completion_on_every_flow(each: Setup) -> None:
    s = each
    serve(s, "F1", TEXT)
    doc = FileRef("F1", "notes.txt", "text/plain", len(TEXT))
    result = await (await submit(s, question("what is the code?", files=(doc,))))
    assert result.status.value == "done"
    [[entry]] = user_files(s, await s.chat_id())
    assert entry["type"] == "file" and entry["name"] == "notes.txt"
    [uploaded] = s.fake.files.values()
    assert s.fake.file_bytes[uploaded["id"]] == TEXT and entry["id"] == uploaded["id"]
    [completion] = s.fake.completions
    assert [f["id"] for f in completion["files"]] == [uploaded["id"]]
    assert shown(s, "what is the code?") == "answer to what is the code?"


async def test_an_image_is_image_input_and_earlier_images_stay(each: Setup) -> None:
    s = each
    serve(s, "P1", PNG)
    picture = FileRef("P1", "shot.png", "image/png", len(PNG))
    await (await submit(s, question("what is this?", files=(picture,))))
    await (await submit(s, question("and now?")))
    chat_id = await s.chat_id()
    [[entry], []] = user_files(s, chat_id)
    assert entry["type"] == "image"
    [uploaded] = s.fake.files.values()
    assert uploaded["data"] == {}  # sent with ?process=false, as the web UI sends images
    if s.fake.managed_turns:
        # The server builds the image input from the question's files itself.
        first, _ = s.fake.completions
        assert first["user_message"]["files"][0]["id"] == uploaded["id"]
        return
    for completion in s.fake.completions:
        [asked] = [m for m in completion["messages"] if isinstance(m["content"], list)]
        image = asked["content"][1]["image_url"]["url"]
        assert image.startswith("data:image/png;base64,")  # 0.6.x: the bytes themselves


async def test_a_file_alone_is_a_question(s: Setup) -> None:
    serve(s, "F1", TEXT)
    event = question("", message_id="m1", files=(FileRef("F1", "notes.txt", "text/plain"),))
    result = await (await submit(s, event))
    assert result.status.value == "done" and s.fake.questions == [""]


async def test_each_file_left_out_is_one_note_and_the_question_is_answered(
    make_bridge: BridgeMaker,
) -> None:
    s = await make_bridge(max_file_mb=1)
    s.fake.refused_extensions.add("exe")
    s.fake.failing_names.add("broken.pdf")
    serve(s, "ok", TEXT)
    serve(s, "big", b"x" * (1024 * 1024 + 1))  # the platform did not say its size
    serve(s, "exe", b"MZ")
    serve(s, "pdf", b"%PDF-broken")
    files = (
        FileRef("ok", "notes.txt", "text/plain"),
        FileRef("big", "huge.log", "text/plain"),
        FileRef("exe", "tool.exe", "application/octet-stream"),
        FileRef("gone", "old.txt", "text/plain"),  # the platform will not give it
        FileRef("pdf", "broken.pdf", "application/pdf"),
        FileRef("no", "secret.txt", "text/plain", problem="it was shared from another workspace"),
    )
    result = await (await submit(s, question("read these", files=files)))
    assert result.status.value == "done"
    lines = shown(s, "read these").split("\n\n")
    assert lines[-1] == "answer to read these"
    assert sorted(lines[:-1]) == sorted(
        [
            "_huge.log was not read: it is larger than 1 MB._",
            "_tool.exe was not read: Open WebUI does not accept this type of file._",
            "_old.txt was not read: the link expired._",
            "_broken.pdf was not read: Open WebUI could not read it._",
            "_secret.txt was not read: it was shared from another workspace._",
        ]
    )
    # Nothing half stored: the over-size file never reached Open WebUI.
    assert "huge.log" not in s.fake.uploads
    [[entry]] = user_files(s, await s.chat_id())
    assert entry["name"] == "notes.txt"


async def test_a_size_the_platform_reports_over_the_bound_is_not_downloaded(
    make_bridge: BridgeMaker,
) -> None:
    s = await make_bridge(max_file_mb=1)
    serve(s, "big", b"x")
    await (await submit(s, question("q", files=(FileRef("big", "big.bin", size=2 << 20),))))
    assert s.platform.downloads == [] and s.fake.uploads == []
    assert shown(s, "q").startswith("_big.bin was not read: it is larger than 1 MB._")


async def test_too_many_files_reads_the_first_ones_and_says_so(make_bridge: BridgeMaker) -> None:
    s = await make_bridge(max_files=2)
    for n in range(4):
        serve(s, f"F{n}", TEXT)
    files = tuple(FileRef(f"F{n}", f"f{n}.txt", "text/plain") for n in range(4))
    await (await submit(s, question("q", files=files)))
    assert s.fake.uploads == ["f0.txt", "f1.txt"]
    assert shown(s, "q").startswith(
        "_2 more files were not read (f2.txt, f3.txt): at most 2 per message._"
    )


async def test_an_image_to_a_model_that_cannot_see_is_noted_and_the_text_answered(
    s: Setup,
) -> None:
    s.fake.blind_models.add("m")
    serve(s, "P1", PNG)
    await (await submit(s, question("q", files=(FileRef("P1", "shot.png", "image/png"),))))
    assert s.platform.downloads == [] and s.fake.uploads == []
    assert shown(s, "q") == "_shot.png was not read: m cannot see images._\n\nanswer to q"


async def test_a_file_sent_again_in_the_thread_is_uploaded_once(s: Setup) -> None:
    serve(s, "F1", TEXT)
    doc = FileRef("F1", "notes.txt", "text/plain")
    await (await submit(s, question("q1", files=(doc,))))
    await (await submit(s, question("q2", files=(doc,))))
    assert s.fake.uploads == ["notes.txt"] and s.platform.downloads == ["F1"]
    first, second = user_files(s, await s.chat_id())
    assert first[0]["id"] == second[0]["id"]


async def test_a_restart_before_the_answer_reuses_the_uploaded_file(
    make_bridge: BridgeMaker,
) -> None:
    s = await make_bridge()
    serve(s, "F1", TEXT)
    s.fake.models = []  # the completion is refused: the upload is all that happened
    doc = FileRef("F1", "notes.txt", "text/plain")
    await (await submit(s, question("q1", files=(doc,))))
    assert s.fake.uploads == ["notes.txt"]
    s.fake.models = ["m"]
    again = await make_bridge()  # a new process over the same database
    again.platform.served["F1"] = TEXT
    retry = question("q1", message_id="q1-again", event_id="ev-again", files=(doc,))
    await (await submit(again, retry))
    assert s.fake.uploads == ["notes.txt"] and again.platform.downloads == []


async def test_a_refused_questions_files_are_never_downloaded(make_bridge: BridgeMaker) -> None:
    s = await make_bridge(access=AccessPolicy(denied_users=frozenset({"u1"})))
    serve(s, "F1", TEXT)
    asker = Asker(workspace="w", channel="c", user="u1")
    with pytest.raises(QuestionRefused):
        await s.bridge.submit(question("q", files=(FileRef("F1", "a.txt"),)), asker)
    assert s.platform.downloads == [] and s.fake.uploads == []


async def test_each_file_counts_like_one_more_question(make_bridge: BridgeMaker) -> None:
    s = await make_bridge(limits=Limits(user_rate_limit=4))
    for n in range(3):
        serve(s, f"F{n}", TEXT)
    files = tuple(FileRef(f"F{n}", f"f{n}.txt") for n in range(3))
    await (await submit(s, question("q1", files=files)))  # counts 4: the limit
    with pytest.raises(QuestionRefused) as refused:
        await s.bridge.submit(question("q2"))
    assert refused.value.reason == "rate limit"


async def test_a_regenerate_keeps_the_questions_files(each: Setup) -> None:
    s = each
    serve(s, "F1", TEXT)
    doc = FileRef("F1", "notes.txt", "text/plain")
    first = await (await submit(s, question("q1", files=(doc,))))
    await s.store.set_reply_ids((await s.turns())[0].id, ["reply-q1"])
    acted = await s.bridge.act(regenerate("reply-q1", "ev-r1"))
    assert acted.answer is not None and (await acted.answer).status.value == "done"
    assert first.status.value == "done" and s.platform.downloads == ["F1"]
    [uploaded] = s.fake.files
    assert [[f["id"] for f in c.get("files") or []] for c in s.fake.completions] == [
        [uploaded],
        [uploaded],
    ]
