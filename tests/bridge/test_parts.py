"""Where a reply's failure notice goes (bridge.parts)."""

from __future__ import annotations

from bridge.parts import NoticePlace, Part, notice_place

NOTICE = "⚠️ Open WebUI is not reachable."


def test_below_the_last_part_when_it_fits() -> None:
    parts = [Part("1", "first half"), Part("2", "second half")]
    assert notice_place(parts, NOTICE, 100) == NoticePlace(
        parts[1], f"second half\n\n{NOTICE}", keep=(parts[0],)
    )


def test_in_a_new_message_when_it_does_not_fit_or_there_is_none() -> None:
    parts = [Part("1", "x" * 90)]
    assert notice_place(parts, NOTICE, 100) == NoticePlace(None, NOTICE, keep=(parts[0],))
    assert notice_place([], NOTICE, 100) == NoticePlace(None, NOTICE)


def test_messages_of_unknown_text_become_the_notice() -> None:
    parts = [Part("1", None), Part("2", "known"), Part("3", None)]
    assert notice_place(parts, NOTICE, 100) == NoticePlace(
        parts[0], NOTICE, drop=(parts[1], parts[2])
    )


def test_a_failed_regenerate_leaves_the_answer_it_was_to_replace_whole() -> None:
    old_answer = [Part("1", None), Part("2", None)]
    assert notice_place(old_answer, NOTICE, 100, replacing=True) == NoticePlace(None, NOTICE)
    # Once the new answer showed words, its messages are its own: as any failure.
    started = [Part("1", "new words"), Part("2", None)]
    assert notice_place(started, NOTICE, 100, replacing=True).edit == started[0]
