"""Bridged chats filed in real Open WebUI servers (both versions) by the real core:
a folder per platform channel and one for DMs, each holding exactly its chats;
tags naming the platform, the channel and the askers; the link back to the
platform thread on the first answer, kept by later turns; a channel renamed on
the platform renames its folder, an admin's rename is kept, and a folder deleted
in Open WebUI is created again. Every check reads what the server holds through
the endpoints the web UI loads, and what the bridge's database remembers."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from adapters.runtime import Runtime
from bridge.events import PlatformEvent, ThreadKey
from bridge.openwebui.client import ServerInfo
from bridge.store import TurnStatus
from tests import treecheck
from tests.conftest import ARTIFACTS
from tests.contract.bridge_fixtures import BridgeFactory, RecordingPlatform, history_of
from tests.harness.model_server import TITLE, expected_reply
from tests.harness.openwebui import RunningOpenWebUI

pytestmark = [pytest.mark.timeout(240), pytest.mark.every_release]

# The requests filing makes: folders, moving a chat, tags, the link (status event).
FILING_PATH = re.compile(
    r"^/api/v1/(folders(/.*)?|chats/[^/]+/(folder|tags)|chats/[^/]+/messages/[^/]+/event)$"
)


def suffix() -> str:
    return uuid.uuid4().hex[:8]


def raw(server: RunningOpenWebUI, method: str, path: str, **kwargs: Any) -> Any:
    """A request as the web UI sends it (independent of the code under test)."""
    with server.client() as http:
        response = http.request(method, path, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else None


class NamedPlatform(RecordingPlatform):
    """A recording platform under another name ("slack", "discord", …)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


@dataclass
class Place:
    """A channel (or the DMs) of a platform as an adapter describes it."""

    platform: str
    channel: str
    name: str = ""  # place_name
    direct: bool = False
    workspace: str = "T1"


@dataclass
class Counted:
    """The filing requests the bridge's client sent (method, path)."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    def take(self) -> list[tuple[str, str]]:
        taken, self.calls[:] = list(self.calls), []
        return taken


@dataclass
class Filed:
    """A bridge with recording platforms, and what it made on the server."""

    runtime: Runtime
    server: RunningOpenWebUI
    counted: Counted
    platforms: dict[str, NamedPlatform] = field(default_factory=dict)
    chats: set[str] = field(default_factory=set)

    async def ask(
        self, place: Place, thread: str, text: str, author: str, link: str = ""
    ) -> tuple[str, str]:
        """One question through the real core: (chat id, answer id)."""
        platform = self.platforms.get(place.platform)
        if platform is None:
            platform = self.platforms[place.platform] = NamedPlatform(place.platform)
            self.runtime.bridge.register(platform)
        message_id = str(uuid.uuid4())
        event = PlatformEvent(
            event_id=message_id,
            thread=ThreadKey(place.platform, place.workspace, place.channel, thread),
            message_id=message_id,
            author_id=f"id-{author}",
            author_name=author,
            text=text,
            place=place.channel,
            direct=place.direct,
            place_name=place.name,
            link=link,
        )
        pending = await self.runtime.bridge.submit(event)
        assert pending is not None
        result = await pending
        assert result.status is TurnStatus.DONE, result.error
        assert result.chat_id is not None
        self.chats.add(result.chat_id)
        # The question reaches the model with the asker's name, as speakers differ.
        asked = f"{author}: {text}" if author else text
        assert platform.replies[message_id].final == expected_reply(asked)
        conversation = await self.runtime.store.get_conversation(event.thread)
        assert conversation is not None
        turn = await self.runtime.store.find_turn(conversation.id, message_id)
        assert turn is not None
        return result.chat_id, turn.assistant_message_id

    def folders(self, tag: str) -> dict[str, str]:
        """Folder name → id, for the folders whose name holds ``tag`` (others
        belong to other tests on the shared server)."""
        return {
            f["name"]: f["id"]
            for f in raw(self.server, "GET", "/api/v1/folders/")
            if tag in f["name"]
        }

    def chats_in(self, folder_id: str) -> set[str]:
        return {c["id"] for c in raw(self.server, "GET", f"/api/v1/chats/folder/{folder_id}")}

    def tags_of(self, chat_id: str) -> set[str]:
        return {t["name"] for t in raw(self.server, "GET", f"/api/v1/chats/{chat_id}/tags")}

    def chat(self, chat_id: str) -> dict[str, Any]:
        data: dict[str, Any] = raw(self.server, "GET", f"/api/v1/chats/{chat_id}")
        return data


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Wraps a runtime's client so the filing requests it sends are counted."""

    def install(runtime: Runtime) -> Counted:
        counted = Counted()
        send = runtime.client.request

        async def request(method: str, path: str, **kwargs: Any) -> Any:
            if FILING_PATH.match(path):
                counted.calls.append((method, path))
            return await send(method, path, **kwargs)

        monkeypatch.setattr(runtime.client, "request", request)
        return counted

    yield install


@asynccontextmanager
async def filed(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory, counting: Any, tag: str
) -> AsyncIterator[Filed]:
    """A bridge whose chats and folders (named with ``tag``) are removed afterwards."""
    async with make_bridge() as runtime:
        state = Filed(runtime, openwebui, counting(runtime))
        try:
            yield state
        finally:
            await asyncio.sleep(0)  # nothing of ours is still running: turns were awaited
            for chat_id in state.chats:
                # Deleting the chat also drops its tags once no other chat has them.
                raw(openwebui, "DELETE", f"/api/v1/chats/{chat_id}")
            for folder_id in state.folders(tag).values():
                raw(openwebui, "DELETE", f"/api/v1/folders/{folder_id}")


async def wait_for_title(state: Filed, chat_id: str, timeout: float = 30) -> str:
    """Open WebUI's own title generation names the chat (after the answer)."""
    deadline, title = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        title = state.chat(chat_id)["title"]
        if title == TITLE:
            break
        await asyncio.sleep(0.3)
    return title


# Filing requests of a thread's first turn, by release: in a new channel (with a link
# back), in a channel filed before (with a link), in a new channel without a link.
NEW_THREAD_FILING = {
    "0.6.15": (5, 5, 5),  # folder or check, move, 3 tags (the link rides in the chat)
    "0.6.41": (4, 4, 4),  # folder or check, 3 tags (created in the folder, with the link)
    "0.8.12": (4, 4, 4),
    "0.9.0": (5, 5, 4),  # folder or check, link, 3 tags
    "0.11.4": (5, 4, 4),  # a folder seen in this process is not checked: the server does
    "0.12.4": (5, 4, 4),
}


def link_of(chat: dict[str, Any], answer_id: str) -> list[dict[str, Any]]:
    """The link statuses above an answer (what the web UI draws as "… ⌄")."""
    message = history_of(chat)["messages"][answer_id]
    return [s for s in message.get("statusHistory") or [] if s.get("urls")]


async def test_chats_are_filed_per_channel_with_tags_and_a_link_back(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory, counting: Any
) -> None:
    tag = suffix()
    # Platform names unique to this run keep the DMs folder ("Slack-… · DMs") ours.
    slack, discord = f"slack-{tag}", f"discord-{tag}"
    shown_slack, shown_discord = f"Slack-{tag}", f"Discord-{tag}"  # as Open WebUI shows them
    support = Place(slack, "C1", f"#support-{tag}")
    sales = Place(slack, "C2", f"#sales-{tag}")
    dms = Place(slack, "D9", direct=True)
    helpdesk = Place(discord, "111", f"Acme › #help-{tag}", workspace="G1")  # noqa: RUF001
    alice, bob, carol, dave = (f"{n} {tag}" for n in ("Alice", "Bob", "Carol", "Dave"))
    link_a = f"https://example.slack.com/archives/C1/p{tag}1"
    link_dm = f"https://example.slack.com/archives/D9/p{tag}2"
    link_d = f"https://discord.com/channels/G1/222/{tag}"

    async with filed(openwebui, make_bridge, counting, tag) as state:
        costs: dict[str, int] = {}
        chat_a, answer_a = await state.ask(support, "ta", "Where is my invoice?", alice, link_a)
        costs["first turn, new channel"] = len(state.counted.take())
        chat_a2, answer_a2 = await state.ask(support, "ta", "And the receipt?", alice, link_a)
        costs["later turn, same asker"] = len(state.counted.take())
        chat_a3, _ = await state.ask(support, "ta", "Me too, please", bob, link_a)
        costs["later turn, new asker"] = len(state.counted.take())
        chat_b, _ = await state.ask(support, "tb", "Opening hours?", carol, f"{link_a}b")
        costs["first turn, known channel"] = len(state.counted.take())
        chat_c, _ = await state.ask(sales, "tc", "A quote, please", alice)
        costs["first turn, new channel, no link"] = len(state.counted.take())
        chat_d, answer_d = await state.ask(dms, "td", "Private question", dave, link_dm)
        chat_e, _ = await state.ask(helpdesk, "te", "Discord question", carol, link_d)
        assert chat_a == chat_a2 == chat_a3
        assert len({chat_a, chat_b, chat_c, chat_d, chat_e}) == 5

        # The sidebar: exactly these folders, each with exactly its chats.
        folders = state.folders(tag)
        assert set(folders) == {
            f"{shown_slack} · #support-{tag}",
            f"{shown_slack} · #sales-{tag}",
            f"{shown_slack} · DMs",
            f"{shown_discord} · Acme › #help-{tag}",  # noqa: RUF001
        }
        assert state.chats_in(folders[f"{shown_slack} · #support-{tag}"]) == {chat_a, chat_b}
        assert state.chats_in(folders[f"{shown_slack} · #sales-{tag}"]) == {chat_c}
        assert state.chats_in(folders[f"{shown_slack} · DMs"]) == {chat_d}
        assert state.chats_in(folders[f"{shown_discord} · Acme › #help-{tag}"]) == {chat_e}  # noqa: RUF001
        for chat_id in (chat_a, chat_b, chat_c, chat_d, chat_e):
            assert state.chat(chat_id)["folder_id"] in folders.values()
        # Filed chats leave the plain chat list (they show under their folder).
        plain = {c["id"] for c in raw(openwebui, "GET", "/api/v1/chats/")}
        assert plain.isdisjoint({chat_a, chat_b, chat_c, chat_d, chat_e})

        # Tags: platform, channel (without "#"), each asker; exactly those.
        assert state.tags_of(chat_a) == {shown_slack, f"support-{tag}", alice, bob}
        assert state.tags_of(chat_b) == {shown_slack, f"support-{tag}", carol}
        assert state.tags_of(chat_c) == {shown_slack, f"sales-{tag}", alice}
        assert state.tags_of(chat_d) == {shown_slack, "DMs", dave}
        assert state.tags_of(chat_e) == {shown_discord, f"Acme › help-{tag}", carol}  # noqa: RUF001
        everyone = {t["name"] for t in raw(openwebui, "GET", "/api/v1/chats/all/tags")}
        ours = {
            shown_slack, shown_discord, f"support-{tag}", f"sales-{tag}", f"Acme › help-{tag}",  # noqa: RUF001
            alice, bob, carol, dave,
        }  # fmt: skip
        assert {name for name in everyone if tag in name} == ours
        assert "DMs" in everyone
        # The sidebar's tag search finds Bob's chat by his name.
        found = raw(openwebui, "POST", "/api/v1/chats/tags", json={"name": bob})
        assert [c["id"] for c in found] == [chat_a]

        # The link back sits on the first answer only, and later turns kept it
        # (0.6.x rewrites the whole history on each turn).
        thread_a = state.chat(chat_a)
        [status] = link_of(thread_a, answer_a)
        assert status["urls"] == [link_a]
        assert status["description"] == f"Slack-{tag} thread · #support-{tag}"
        assert status["items"] == [{"title": status["description"], "link": link_a}]
        assert link_of(thread_a, answer_a2) == []
        assert treecheck.problems(history_of(thread_a)) == []
        [dm_status] = link_of(state.chat(chat_d), answer_d)
        assert (dm_status["description"], dm_status["urls"]) == (f"{shown_slack} DM", [link_dm])
        # Open WebUI's own title generation still names the chats, and its
        # whole-chat title write kept the link and the tags.
        assert await wait_for_title(state, chat_d) == TITLE
        assert link_of(state.chat(chat_d), answer_d) == [dm_status]
        assert state.tags_of(chat_d) == {shown_slack, "DMs", dave}
        assert state.chat(chat_c)["title"] != f"{shown_slack} · #sales-{tag}"

        # What the bridge remembers: the folder per place, and per chat what it has.
        conversation = await state.runtime.store.get_conversation(
            ThreadKey(slack, "T1", "C1", "ta")
        )
        assert conversation is not None
        remembered = await state.runtime.store.get_filing(conversation.id)
        assert remembered["folder"] == folders[f"{shown_slack} · #support-{tag}"]
        assert remembered["linked"] is True
        record = await state.runtime.store.get_folder(slack, "T1", "dm")
        assert record is not None and record.folder_id == folders[f"{shown_slack} · DMs"]

        # Requests: a later turn by the same person costs none; a new asker one. A new
        # thread: its folder (created; a known one checked where the server would take a
        # deleted one, before 0.11.4), three tags, and what its creation could not carry:
        # the move into the folder (0.6.15 drops a folder given at creation) and the link
        # (from 0.9.0 the server writes the answer's placeholder).
        assert costs["later turn, same asker"] == 0
        assert costs["later turn, new asker"] == 1
        new_channel, known_channel, no_link = NEW_THREAD_FILING[openwebui.version]
        assert costs["first turn, new channel"] == new_channel
        assert costs["first turn, known channel"] == known_channel
        assert costs["first turn, new channel, no link"] == no_link
        figures = ARTIFACTS / f"filing-requests-{openwebui.version}.json"
        figures.write_text(json.dumps(costs, indent=2))


async def test_channel_rename_renames_its_folder_and_admin_names_are_kept(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory, counting: Any
) -> None:
    tag = suffix()
    async with filed(openwebui, make_bridge, counting, tag) as state:
        old = Place("slack", f"C{tag}", f"#old-{tag}")
        chat_a, _ = await state.ask(old, "ra", "First question", "Erin")
        [folder_id] = state.folders(tag).values()
        assert state.folders(tag) == {f"Slack · #old-{tag}": folder_id}

        # Renamed on the platform: the next turn renames the folder (same id).
        renamed = Place("slack", f"C{tag}", f"#new-{tag}")
        chat_b, _ = await state.ask(renamed, "rb", "After the rename", "Erin")
        assert state.folders(tag) == {f"Slack · #new-{tag}": folder_id}
        assert state.chats_in(folder_id) == {chat_a, chat_b}
        assert f"new-{tag}" in state.tags_of(chat_b)
        # A later turn of the earlier thread keeps its chat where it is.
        state.counted.take()
        await state.ask(renamed, "ra", "Still here?", "Erin")
        assert state.counted.take() == [("POST", f"/api/v1/chats/{chat_a}/tags")]  # the new name
        assert state.chats_in(folder_id) == {chat_a, chat_b}

        # An admin renames it in Open WebUI: the bridge keeps using it by id,
        # under the admin's name, without renaming it back.
        admin_name = f"Support desk {tag}"
        raw(openwebui, "POST", f"/api/v1/folders/{folder_id}/update", json={"name": admin_name})
        chat_c, _ = await state.ask(renamed, "rc", "Filed by id", "Erin")
        assert state.folders(tag) == {admin_name: folder_id}
        assert state.chats_in(folder_id) == {chat_a, chat_b, chat_c}

        # Until the channel is renamed on the platform again.
        newer = Place("slack", f"C{tag}", f"#newer-{tag}")
        await state.ask(newer, "rc", "Renamed again", "Erin")
        assert state.folders(tag) == {f"Slack · #newer-{tag}": folder_id}
        record = await state.runtime.store.get_folder("slack", "T1", f"C{tag}")
        assert record is not None
        assert (record.folder_id, record.name) == (folder_id, f"Slack · #newer-{tag}")


async def test_a_folder_deleted_in_open_webui_is_created_again(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory, counting: Any
) -> None:
    tag = suffix()
    name = f"Discord · Acme › #gone-{tag}"  # noqa: RUF001
    place = Place("discord", f"9{tag}", f"Acme › #gone-{tag}", workspace="G1")  # noqa: RUF001
    async with filed(openwebui, make_bridge, counting, tag) as state:
        chat_a, _ = await state.ask(place, "ga", "Before the delete", "Finn")
        first = state.folders(tag)[name]
        # Deleting a folder in the web UI deletes the chats in it (both versions' default).
        raw(openwebui, "DELETE", f"/api/v1/folders/{first}")
        state.chats.discard(chat_a)
        assert state.folders(tag) == {}

        state.counted.take()
        chat_b, _ = await state.ask(place, "gb", "After the delete", "Finn")

        # Answered all the same, and filed in a new folder.
        second = state.folders(tag)[name]
        assert second != first
        assert state.folders(tag) == {name: second}
        assert state.chats_in(second) == {chat_b}
        assert state.chat(chat_b)["folder_id"] == second
        # Before 0.11.4 the known folder is checked before the chat is created (a deleted
        # id would hide it), found gone, and a new one made for the chat to be created
        # in (0.6.15 drops it there: moved after). From 0.11.4 the server refuses the
        # deleted folder at creation; the chat is created outside it, then filed.
        check = [("GET", f"/api/v1/folders/{first}")]
        create = [("POST", "/api/v1/folders/")]
        move = [("POST", f"/api/v1/chats/{chat_b}/folder")]
        tags = [("POST", f"/api/v1/chats/{chat_b}/tags")] * 3
        release = ServerInfo(openwebui.version).version_tuple
        if release < (0, 6, 41):
            expected = check + create + move + tags
        elif release < (0, 11, 4):
            expected = check + create + tags
        else:
            expected = create + move + tags
        assert state.counted.take() == expected
        record = await state.runtime.store.get_folder("discord", "G1", f"9{tag}")
        assert record is not None and record.folder_id == second


@pytest.mark.since((0, 6, 41))  # 0.6.15 always deletes the chats with their folder
async def test_a_chat_moved_out_of_a_deleted_folder_is_filed_again(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory, counting: Any
) -> None:
    """Open WebUI can delete a folder and keep its chats (0.6.41 can; 0.6.15 cannot);
    their next turn refiles them."""
    tag = suffix()
    name = f"Slack · #kept-{tag}"
    place = Place("slack", f"K{tag}", f"#kept-{tag}")
    async with filed(openwebui, make_bridge, counting, tag) as state:
        chat_a, _ = await state.ask(place, "ka", "Keep me", "Gus")
        first = state.folders(tag)[name]
        raw(openwebui, "DELETE", f"/api/v1/folders/{first}", params={"delete_contents": "false"})
        assert state.chat(chat_a)["folder_id"] is None

        chat_b, _ = await state.ask(place, "kb", "A new thread", "Gus")
        second = state.folders(tag)[name]
        assert state.chats_in(second) == {chat_b}
        await state.ask(place, "ka", "Back again", "Gus")
        assert state.chats_in(second) == {chat_a, chat_b}


async def test_unnamed_places_are_tagged_not_filed(
    openwebui: RunningOpenWebUI, make_bridge: BridgeFactory, counting: Any
) -> None:
    """The console (no place name) gets its platform tag and no folder."""
    tag = suffix()
    console = Place(f"console{tag}", "terminal")
    async with filed(openwebui, make_bridge, counting, tag) as state:
        chat_id, _ = await state.ask(console, "c1", "Hello from the terminal", "")
        assert state.folders(tag) == {}
        assert state.chat(chat_id)["folder_id"] is None
        assert state.tags_of(chat_id) == {f"Console{tag}"}
        assert state.counted.take() == [("POST", f"/api/v1/chats/{chat_id}/tags")]
