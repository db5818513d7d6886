"""How a turn gets into an Open WebUI chat, per server generation (the boundaries
are ``ServerInfo``'s, in ``bridge/openwebui/client.py``; ``flow_for`` picks the flow).

- 0.9.0 and later: the server inserts the turn itself (``user_message`` +
  ``parent_id``): one request, nothing else in the chat is touched.
- 0.6.15 to 0.8.x: the tutorial's flow. We write the question and an empty answer
  into the chat (read-modify-write of the whole history, since a partial history
  replaces the stored one), trigger the completion, and afterwards mark the answer
  ``done`` ourselves where the server leaves that to the web UI. From 0.6.41 the
  completion must name the question as ``parent_id``: the server stores it as the
  answer's parent.

A new chat is created in its folder, with the link back above its first answer
(0.6.41 to 0.8.x), when filing knows them before the turn (``Placement``): filing
then has neither to move nor to link it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bridge.errors import AnswerFailed, ModelUnknown, RequestRejected
from bridge.openwebui import files, tree
from bridge.openwebui.client import OpenWebUIClient

log = logging.getLogger(__name__)

NEW_CHAT_TITLE = "New Chat"


@dataclass(frozen=True)
class Placement:
    """What a new chat carries from its creation (``ChatFiling.placement`` decides)."""

    # A folder known to exist, or checked by the server itself (0.11.4): a stale id
    # hides the chat before that. Only given where the server keeps it (0.6.41).
    folder_id: str | None = None
    # The link back, as a status above the first answer: written with the answer's
    # placeholder where the bridge writes it (0.6.x to 0.8.x).
    link: dict[str, Any] | None = None
    # Reported back: the folder the server refused as deleted (0.11.4), so filing
    # makes a new one instead of trying it again.
    gone_folder: str | None = None


@dataclass(frozen=True)
class TurnRequest:
    chat_id: str | None  # None: this turn creates the chat
    parent_id: str | None  # the thread's last answer; None for the first turn
    user_message_id: str
    assistant_message_id: str
    content: str
    model: str
    session_id: str
    title_generation: bool = True
    knowledge_ids: tuple[str, ...] = ()
    # The collections as Open WebUI describes them (``GET /api/v1/knowledge/{id}``), sent
    # whole as the web UI sends them: 0.6.15 in full-context mode reads the documents
    # only from their ``data.file_ids``. Empty: the bare ids.
    knowledge: tuple[dict[str, Any], ...] = field(default=(), compare=False, repr=False)
    filter_ids: tuple[str, ...] = ()
    features: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    system_prompt: str = ""  # the chat's system message (per channel)
    # The model to answer with instead when Open WebUI refuses ``model`` as unknown
    # (its backend restarting, or removed): for this turn only.
    fallback_model: str | None = None
    # Another answer to the existing question ``user_message_id`` (``parent_id`` is
    # then the question's parent), beside the answers it has.
    regenerate: bool = False
    # The chat's history as the turn read it just before (None: not read): the
    # client-written flow builds on it instead of reading the chat once more.
    history: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    # Where the chat goes when this turn creates it.
    placement: Placement = field(default_factory=Placement)
    # The files sent with the question, as the chat keeps them (``bridge.attachments``).
    files: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    def completion_payload(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        if self.system_prompt:
            messages = [{"role": "system", "content": self.system_prompt}, *messages]
        payload: dict[str, Any] = {
            "model": self.model,
            "stream": True,
            "messages": messages,
            "id": self.assistant_message_id,
            "session_id": self.session_id,
            "background_tasks": {"title_generation": self.title_generation and not self.chat_id},
            "features": self.features,
            "variables": self.variables,
            "filter_ids": list(self.filter_ids),
        }
        # Documents are read by Open WebUI's retrieval from the request's ``files``, beside
        # the channel's knowledge; images reach the model through ``messages``.
        documents = [f for f in self.files if f.get("type") == "file"]
        if self.knowledge:
            collections = [{**k, "type": "collection"} for k in self.knowledge]
        else:
            collections = [{"type": "collection", "id": k} for k in self.knowledge_ids]
        if collections or documents:
            payload["files"] = [*collections, *documents]
        if self.chat_id:
            payload["chat_id"] = self.chat_id
        return payload


# Told the chat id as soon as the chat exists (before the answer is started where the
# bridge creates it, so a refused completion still leaves the chat linked to its
# thread), and what of its placement the new chat got.
ChatCreated = Callable[[str, Placement], Awaitable[None]]


@dataclass(frozen=True)
class Started:
    chat_id: str
    model: str  # the model answering: the request's, or its fallback


class TurnFlow(Protocol):
    async def start(self, request: TurnRequest, created: ChatCreated) -> Started:
        """Put the turn into the chat and start the answer."""
        ...

    async def restart(self, request: TurnRequest) -> Started:
        """Start the answer of a turn already in the chat whose completion was never
        triggered (a restart cut in between); ``request.chat_id`` is set."""
        ...

    async def finalise(
        self,
        chat_id: str,
        assistant_message_id: str,
        *,
        cut_short: bool = False,
        files: Sequence[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        """Make the stored answer complete; returns the final chat object. ``cut_short``:
        the answer ended early (stopped, failed, cut off) and may lack ``done``.
        ``files``: what the live ``files`` events announced, stored on the answer where
        the client writes the history (0.6.x keeps them nowhere else)."""
        ...


async def mark_done(
    client: OpenWebUIClient,
    chat_id: str,
    message_id: str,
    stored: dict[str, Any] | None = None,
    *,
    files: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The chat with ``message_id`` marked ``done`` (the whole history written back if
    it was not), with ``files`` on it if it has none. ``stored``: the chat as just
    read, if it was."""
    if stored is None:
        stored = await client.get_chat(chat_id)
    message = tree.message_in(stored, message_id)
    add = {"files": list(files)} if files and message and not message.get("files") else {}
    if message is None or (message.get("done") is True and not add):
        return stored
    history = tree.with_message(tree.history_of(stored), message_id, done=True, **add)
    # Only history keys are sent: 0.6.x merges top-level chat keys.
    await client.update_chat(chat_id, tree.history_fields(history))
    return _with_history(stored, history)


def _with_history(chat: dict[str, Any], history: Any) -> dict[str, Any]:
    return {**chat, "chat": {**chat.get("chat", {}), **tree.history_fields(history)}}


async def _start_completion(
    client: OpenWebUIClient, payload: dict[str, Any], fallback: str | None
) -> tuple[dict[str, Any], str]:
    """Start the answer; returns the server's reply and the model answering. A model
    refused as unknown gives way to ``fallback``, for this answer only: the same
    request again (same ids) with the other model."""
    model = str(payload["model"])
    try:
        return await client.start_completion(payload), model
    except ModelUnknown:
        if not fallback or fallback == model:
            raise
        log.warning("Open WebUI refused model %r; this answer comes from %r", model, fallback)
        return await _start_completion(client, payload | {"model": fallback}, None)
    except RequestRejected as exc:
        # With a chat id the server refuses the request only when the answer
        # itself could not start (upstream error, bad parameters).
        failed = AnswerFailed(str(exc))
        failed.status = exc.status
        raise failed from exc


async def _chat_exists(chat_id: str, placed: Placement) -> None:
    """``ChatCreated`` for a turn whose chat is already linked to its thread."""


class ServerManagedFlow:
    def __init__(self, client: OpenWebUIClient) -> None:
        self._client = client

    async def start(self, request: TurnRequest, created: ChatCreated) -> Started:
        # One request: the server creates the chat only if the answer could start.
        user = tree.user_message(
            request.user_message_id,
            request.parent_id,
            request.content,
            request.model,
            request.files,
        )
        payload = request.completion_payload([{"role": "user", "content": request.content}])
        payload["parent_id"] = request.parent_id
        # The server stores the question with its files and turns its images into
        # image input itself (from the files of every question in the chat).
        payload["user_message"] = {
            key: user[key]
            for key in ("id", "role", "content", "models", "parentId", "files")
            if key in user
        }
        new_chat = request.chat_id is None
        placed = Placement(folder_id=request.placement.folder_id if new_chat else None)
        if placed.folder_id is not None:
            payload["folder_id"] = placed.folder_id
        try:
            data, model = await _start_completion(self._client, payload, request.fallback_model)
        except AnswerFailed as exc:
            if placed.folder_id is None or exc.status != 404:
                raise
            # 0.11.4 refuses a deleted folder before creating anything: the question is
            # answered all the same, and filing makes the place a new folder afterwards.
            log.info("folder %s is gone; the new chat is filed after its answer", placed.folder_id)
            del payload["folder_id"]
            placed = Placement(gone_folder=placed.folder_id)
            data, model = await _start_completion(self._client, payload, request.fallback_model)
        chat_id = data.get("chat_id") or request.chat_id
        if not chat_id:
            raise AnswerFailed(f"Open WebUI did not return a chat id: {str(data)[:200]}")
        if new_chat:
            await created(str(chat_id), placed)
        if new_chat and request.system_prompt:
            # The server created the chat: show its system prompt where the web UI
            # keeps one (a top-level patch; the answer's own writes are not touched).
            await self._client.update_chat_params(
                str(chat_id), tree.system_params(request.system_prompt)
            )
        return Started(str(chat_id), model)

    async def restart(self, request: TurnRequest) -> Started:
        # An empty answer with no task behind it: the server lost the task (it
        # restarted). The same turn is sent again with the same ids (a bare re-trigger
        # would re-root the answer). 0.12 accepts an empty answer prepared before the
        # request and refuses one with text (409); 0.9 to 0.11 overwrite whatever is
        # there. So this runs only for an empty answer (``Bridge._where`` decides),
        # never one with text.
        return await self.start(request, _chat_exists)

    async def finalise(
        self,
        chat_id: str,
        assistant_message_id: str,
        *,
        cut_short: bool = False,
        files: Sequence[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        # The server marks finished answers done, and a failed one carries its error;
        # it stores the files its events announce itself.
        chat = await self._client.get_chat(chat_id)
        message = tree.message_in(chat, assistant_message_id)
        if not cut_short or message is None or message.get("done") is True:
            return chat
        if message.get("error"):
            return chat  # the server recorded the failure: that ends the answer
        # Stopped before its first words (the server closes one stopped later itself).
        server = self._client.server
        if server is not None and server.stop_closes_open_answers:
            # With no task running, a stop marks the open answers done one message at a
            # time: nothing else in the chat is written, so an admin's edit stands. A
            # running task is someone else's answer (ours has ended): it is left alone.
            if await self._client.running_tasks(chat_id):
                return chat
            await self._client.stop_chat_tasks(chat_id)
            history = tree.with_message(tree.history_of(chat), assistant_message_id, done=True)
            return _with_history(chat, history)
        # 0.9.0 has no request that closes one message: the whole history is written.
        return await mark_done(self._client, chat_id, assistant_message_id, chat)


class ClientTreeFlow:
    def __init__(self, client: OpenWebUIClient, *, names_parent: bool) -> None:
        self._client = client
        self._names_parent = names_parent

    async def start(self, request: TurnRequest, created: ChatCreated) -> Started:
        user = tree.user_message(
            request.user_message_id,
            request.parent_id,
            request.content,
            request.model,
            request.files,
        )
        placed = request.placement if request.chat_id is None else Placement()
        answer = tree.assistant_placeholder(
            request.assistant_message_id,
            request.user_message_id,
            request.model,
            [placed.link] if placed.link else None,
        )
        if request.chat_id is None:
            history = tree.add_turn(tree.empty_history(), user, answer)
            document = tree.chat_document(
                history, title=NEW_CHAT_TITLE, model=request.model, system=request.system_prompt
            )
            chat_id = str((await self._client.create_chat(document, placed.folder_id))["id"])
            await created(chat_id, placed)
        else:
            chat_id = request.chat_id
            stored = request.history or {}
            if not stored.get("messages"):
                stored = tree.history_of(await self._client.get_chat(chat_id))
            if request.regenerate:
                history = tree.add_answer(stored, user["id"], answer)
            else:
                history = tree.add_turn(stored, user, answer)
            await self._client.update_chat(chat_id, tree.history_fields(history))
        return await self._complete(request, chat_id, history)

    async def restart(self, request: TurnRequest) -> Started:
        chat_id = request.chat_id or ""
        history = tree.history_of(await self._client.get_chat(chat_id))
        return await self._complete(request, chat_id, history)

    async def _complete(self, request: TurnRequest, chat_id: str, history: Any) -> Started:
        messages = tree.completion_messages(
            history, request.user_message_id, await self._image_urls(history, request)
        )
        payload = request.completion_payload(messages) | {"chat_id": chat_id}
        if self._names_parent:
            payload["parent_id"] = request.user_message_id
        _, model = await _start_completion(self._client, payload, request.fallback_model)
        return Started(chat_id, model)

    async def _image_urls(self, history: Any, request: TurnRequest) -> dict[str, str]:
        """What each image of the branch is sent as: its id where the server reads ids
        (0.8.12), else its bytes as a data URL, read back from Open WebUI."""
        images = [
            image
            for message in tree.branch(history, request.user_message_id)
            for image in tree.images_of(message)
        ]
        server = self._client.server
        if not images or server is None or server.version_tuple >= (0, 8, 12):
            return {}
        return {str(i.get("id")): await files.image_data_url(self._client, i) for i in images}

    async def finalise(
        self,
        chat_id: str,
        assistant_message_id: str,
        *,
        cut_short: bool = False,
        files: Sequence[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        return await mark_done(self._client, chat_id, assistant_message_id, files=files)


def flow_for(client: OpenWebUIClient) -> TurnFlow:
    server = client.server
    if server is None:
        raise RuntimeError("flow_for needs a connected client (its server's release)")
    if server.server_managed_turns:
        return ServerManagedFlow(client)
    return ClientTreeFlow(client, names_parent=server.answer_parent_from_request)
