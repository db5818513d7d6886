"""Filing bridged chats in Open WebUI the way its web UI shows them: a folder per
platform channel, tags, a link back to the platform thread, and ratings.

Only Open WebUI calls live here (through ``OpenWebUIClient.request``); which chat
goes where, and when, is the core's business. Shapes follow what the web UI
writes, so an admin sees the result in the sidebar, in the chat and in
Admin → Evaluations on 0.6.x and 0.12.x alike. The server quirks these
functions work around are written up next to each one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bridge.errors import AuthRejected, BridgeError, RequestRejected
from bridge.openwebui import tree
from bridge.openwebui.client import OpenWebUIClient, ServerInfo

Vote = Literal[1, -1]

FOLDERS = "/api/v1/folders"
EVALUATIONS = "/api/v1/evaluations"
# A name clash caused by LIKE wildcards (``_``, ``%``; before 0.11.1) is dodged with a suffix.
_MAX_NAME_SUFFIX = 5


class FolderNameTaken(RequestRejected):
    """Another top-level folder of the account already has this name (compared
    case-insensitively; before 0.11.1 ``_`` and ``%`` in the name are wildcards)."""


class FolderGone(RequestRejected):
    """The folder no longer exists (an admin deleted it in the web UI)."""


class FoldersDisabled(RequestRejected):
    """The admin turned folders off (0.12.x ``ENABLE_FOLDERS`` or the
    ``features.folders`` permission of a non-admin service account)."""


@dataclass(frozen=True)
class Folder:
    id: str
    name: str
    parent_id: str | None = None


@dataclass(frozen=True)
class Tag:
    id: str  # the server's key: the name lower-cased, spaces made underscores
    name: str  # as first written; later names with the same id reuse it


@dataclass(frozen=True)
class Rater:
    """The platform person a rating comes from: everyone shares the bridge's one
    Open WebUI account, so who rated lives in the feedback itself."""

    platform: str  # "slack", "discord"
    user_id: str
    name: str

    @property
    def platform_name(self) -> str:
        return self.platform[:1].upper() + self.platform[1:]


@dataclass(frozen=True)
class Rating:
    chat_id: str
    message_id: str  # the rated assistant message
    vote: Vote
    rater: Rater
    comment: str | None = None  # None: who rated, in words
    reason: str | None = None  # None: "<Platform> reaction by <name>"


@dataclass(frozen=True)
class Feedback:
    """One feedback record as Admin → Evaluations lists it."""

    id: str
    chat_id: str
    message_id: str
    model_id: str
    vote: int
    rater: Rater | None  # None: written by the web UI, not by the bridge
    reason: str
    comment: str
    updated_at: int


def tag_id(name: str) -> str:
    """The id Open WebUI files a tag name under (both versions)."""
    return name.replace(" ", "_").lower()


def taggable(name: str) -> bool:
    """Whether Open WebUI stores ``name`` as a useful tag: blanks are stored as
    empty tags and "None" (any case) is refused."""
    return bool(name.strip()) and tag_id(name) != "none"


def link_status(url: str, label: str) -> dict[str, Any]:
    """A status entry the web UI draws above an answer as ``label`` that unfolds
    into a clickable ``url``: ``urls`` for 0.6.x, ``items`` (titled) for 0.12.x."""
    return {
        "action": "web_search",
        "description": label,
        "urls": [url],
        "items": [{"title": label, "link": url}],
        "done": True,
    }


def linked_urls(chat: Mapping[str, Any], message_id: str) -> list[str]:
    """URLs already linked from ``message_id`` (to avoid linking twice)."""
    message = tree.message_in(dict(chat), message_id) or {}
    urls: list[str] = []
    for status in message.get("statusHistory") or []:
        if isinstance(status, dict):
            urls.extend(str(url) for url in status.get("urls") or [])
    return urls


def feedback_form(rating: Rating, chat: Mapping[str, Any]) -> dict[str, Any]:
    """The body the web UI's thumbs send for ``rating`` (``chat`` as
    ``GET /api/v1/chats/{id}`` returns it), plus who rated in ``meta``.

    0.12.x's feedback dialog shows the prompt and answer from ``snapshot`` and
    ``comment``; 0.6.x's shows ``reason``; both lists show ``data.rating``
    and ``data.model_id``."""
    history = tree.history_of(dict(chat))
    messages: dict[str, Any] = history.get("messages") or {}
    message = messages.get(rating.message_id)
    if not isinstance(message, dict):
        raise RequestRejected(f"message {rating.message_id} is not in chat {rating.chat_id}")
    model_id = _model_of(message)
    siblings = (messages.get(message.get("parentId") or "") or {}).get("childrenIds") or []
    data: dict[str, Any] = {
        "rating": rating.vote,
        "model_id": model_id,
        "reason": rating.reason if rating.reason is not None else _default_reason(rating),
        "comment": rating.comment if rating.comment is not None else _default_comment(rating),
    }
    if len(siblings) > 1:
        # As the web UI does: other answers to the same question are the "opponents".
        data["sibling_model_ids"] = [
            _model_of(messages.get(sid) or {}) for sid in siblings if sid != rating.message_id
        ]
    rater = rating.rater
    return {
        "type": "rating",
        "data": data,
        "meta": {
            "arena": bool(message.get("arena", False)),
            "model_id": message.get("model") or model_id,
            "message_id": rating.message_id,
            "message_index": len(tree.branch(history, rating.message_id)),
            "chat_id": rating.chat_id,
            "platform_user": {"platform": rater.platform, "id": rater.user_id, "name": rater.name},
        },
        "snapshot": {"chat": dict(chat)},
    }


def _model_of(message: Mapping[str, Any]) -> str:
    return str(message.get("selectedModelId") or message.get("model") or "")


def _default_reason(rating: Rating) -> str:
    return f"{rating.rater.platform_name} reaction by {rating.rater.name}"


def _default_comment(rating: Rating) -> str:
    thumb = "👍" if rating.vote > 0 else "👎"
    rater = rating.rater
    return f"{thumb} from {rater.name} on {rater.platform_name} ({rater.user_id})"


def status_of(error: BridgeError) -> int | None:
    """The HTTP status behind a refused request."""
    return error.status


class Organiser:
    """Folders, tags, links and ratings of the bridge's chats in Open WebUI.
    Needs a connected client (its ``server`` decides the version-specific calls)."""

    def __init__(self, client: OpenWebUIClient) -> None:
        self._client = client

    @property
    def server(self) -> ServerInfo:
        """The server's release (what it accepts differs by release)."""
        return self._client.server or ServerInfo("0")

    # -- folders --------------------------------------------------------------

    async def folders(self) -> list[Folder]:
        """Every folder of the account (one request)."""
        data = await self._folder_call("GET", f"{FOLDERS}/")
        return [_folder(item) for item in data or [] if isinstance(item, dict)]

    async def folder(self, folder_id: str) -> Folder | None:
        """The folder with this id, whatever it is called now; None if deleted."""
        try:
            data = await self._folder_call("GET", f"{FOLDERS}/{folder_id}")
        except FolderGone:
            return None
        return _folder(data)

    async def create_folder(self, name: str) -> Folder:
        """A new top-level folder; ``FolderNameTaken`` if the name is in use."""
        data = await self._folder_call("POST", f"{FOLDERS}/", json={"name": name})
        return _folder(data)

    async def ensure_folder(self, name: str) -> Folder:
        """The top-level folder called ``name``, created if missing (a lost
        mapping finds its folder again by name). Before 0.11.1 the server refuses
        names that match another folder as a LIKE pattern (``#dev_ops`` vs
        ``#dev-ops``): those get a " (2)"… suffix."""
        for attempt in range(1, _MAX_NAME_SUFFIX + 1):
            candidate = name if attempt == 1 else f"{name} ({attempt})"
            try:
                return await self.create_folder(candidate)
            except FolderNameTaken:
                found = _named(await self.folders(), candidate)
                if found is not None:
                    return found
        raise FolderNameTaken(f"no free folder name for {name!r}")

    async def rename_folder(self, folder_id: str, name: str) -> Folder:
        """Rename; ``FolderGone`` if deleted, ``FolderNameTaken`` if another
        folder has the name. Renaming to the current name is a no-op (0.6.x
        would refuse it; it cannot change only the case of a name either)."""
        try:
            data = await self._folder_call(
                "POST", f"{FOLDERS}/{folder_id}/update", json={"name": name}
            )
        except FolderNameTaken:
            current = await self.folder(folder_id)
            if current is None:
                raise FolderGone(f"folder {folder_id} not found") from None
            if current.name.casefold() == name.casefold():
                return current
            raise
        return _folder(data) if isinstance(data, dict) else Folder(folder_id, name)

    async def rename_free(self, folder_id: str, name: str) -> Folder:
        """Rename to ``name``, or to ``name (2)``… when another folder has it (an
        old folder of a channel that had this name, or a LIKE clash before 0.11.1)."""
        for attempt in range(1, _MAX_NAME_SUFFIX + 1):
            candidate = name if attempt == 1 else f"{name} ({attempt})"
            try:
                return await self.rename_folder(folder_id, candidate)
            except FolderNameTaken:
                continue
        raise FolderNameTaken(f"no free folder name for {name!r}")

    async def file_chat(self, chat_id: str, folder_id: str | None, *, exists: bool = False) -> None:
        """Move the chat into the folder (None: out of any folder). A filed chat
        leaves the sidebar's plain chat list and shows under its folder.
        ``FolderGone`` if the folder was deleted: before 0.11.4 the server accepts a stale
        id and hides the chat everywhere, so it is checked first there (one request
        more; 0.11.4 checks itself). ``exists``: the folder was just created or renamed,
        so it is not checked again."""
        unchecked = not (self.server.checks_folder_ids or exists)
        if folder_id is not None and unchecked and await self.folder(folder_id) is None:
            raise FolderGone(f"folder {folder_id} not found")
        await self._folder_call(
            "POST", f"/api/v1/chats/{chat_id}/folder", json={"folder_id": folder_id}
        )

    async def chats_in_folder(self, folder_id: str) -> list[str]:
        """Ids of the chats in the folder and its subfolders. Returns whole chats
        from the server: for checks, not for every turn."""
        data = await self._folder_call("GET", f"/api/v1/chats/folder/{folder_id}")
        return [str(chat["id"]) for chat in data or [] if isinstance(chat, dict)]

    async def _folder_call(self, method: str, path: str, *, json: Any = None) -> Any:
        """A folder request with the refusals named: 404 gone, 400 name taken,
        403 folders turned off (0.12.x answers that with 403, not 401)."""
        try:
            return await self._client.request(method, path, json=json)
        except AuthRejected as exc:
            if status_of(exc) == 403:
                raise FoldersDisabled(str(exc)) from None
            raise
        except RequestRejected as exc:
            status = status_of(exc)
            if status == 404:
                raise FolderGone(str(exc)) from None
            if status == 400 and "already exists" in str(exc).lower():
                raise FolderNameTaken(str(exc)) from None
            raise

    # -- tags -----------------------------------------------------------------

    async def tag_chat(self, chat_id: str, names: Iterable[str]) -> list[Tag]:
        """Add tags to the chat (one request per name; names already on it are
        no-ops on the server, names Open WebUI cannot keep are skipped). Returns
        the chat's tags."""
        tags: list[Tag] | None = None
        for name in dict.fromkeys(n for n in names if taggable(n)):
            data = await self._client.request(
                "POST", f"/api/v1/chats/{chat_id}/tags", json={"name": name}
            )
            tags = _tags(data)
        return tags if tags is not None else await self.chat_tags(chat_id)

    async def chat_tags(self, chat_id: str) -> list[Tag]:
        return _tags(await self._client.request("GET", f"/api/v1/chats/{chat_id}/tags"))

    async def all_tags(self) -> list[Tag]:
        """Every tag of the account, as the sidebar's tag search offers them."""
        return _tags(await self._client.request("GET", "/api/v1/chats/all/tags"))

    # -- link back to the platform ----------------------------------------------

    async def link_thread(self, chat_id: str, message_id: str, url: str, label: str) -> None:
        """Show ``label`` above the answer ``message_id``, unfolding into a link to
        ``url`` (the platform thread or message). One request; the server appends
        it to the answer's ``statusHistory`` itself, so nothing else in the chat is
        rewritten. Call once the answer is finished: a later whole-history write
        from a turn started before this call would drop it."""
        ok = await self._client.request(
            "POST",
            f"/api/v1/chats/{chat_id}/messages/{message_id}/event",
            json={"type": "status", "data": link_status(url, label)},
        )
        if ok is not True:
            raise RequestRejected(f"Open WebUI did not keep the link on message {message_id}")

    # -- ratings ----------------------------------------------------------------

    async def set_rating(self, rating: Rating, feedback_id: str | None = None) -> Feedback:
        """The person's rating of the answer: updates ``feedback_id`` (latest
        wins) or, if None or deleted meanwhile, creates a record. Two requests:
        the chat (for the snapshot the evaluations page shows) and the write."""
        chat = await self._client.get_chat(rating.chat_id)
        form = feedback_form(rating, chat)
        if feedback_id is not None:
            try:
                data = await self._client.request(
                    "POST", f"{EVALUATIONS}/feedback/{feedback_id}", json=form
                )
                return _feedback(data)
            except RequestRejected as exc:
                if status_of(exc) != 404:
                    raise
        return _feedback(await self._client.request("POST", f"{EVALUATIONS}/feedback", json=form))

    async def clear_rating(self, feedback_id: str) -> bool:
        """Delete the record; False if it was already gone."""
        try:
            await self._client.request("DELETE", f"{EVALUATIONS}/feedback/{feedback_id}")
        except RequestRejected as exc:
            if status_of(exc) == 404:
                return False
            raise
        return True

    async def feedback(self, feedback_id: str) -> Feedback | None:
        """One record of the account (0.12.x admins: of anyone); None if gone."""
        try:
            data = await self._client.request("GET", f"{EVALUATIONS}/feedback/{feedback_id}")
        except RequestRejected as exc:
            if status_of(exc) == 404:
                return None
            raise
        return _feedback(data)

    async def feedbacks(self, *, everyone: bool = False) -> list[Feedback]:
        """The account's own records, or (``everyone``, admin only) every record
        Admin → Evaluations lists. Paged lists come by 30: one request per page."""
        if not everyone:
            path = f"{EVALUATIONS}/feedbacks/user"
        elif self.server.lists_feedback_pages:
            path = f"{EVALUATIONS}/feedbacks/list"
        else:
            path = f"{EVALUATIONS}/feedbacks/all"
        return [_feedback(item) for item in await self._all_pages(path)]

    async def find_rating(self, message_id: str, rater: Rater) -> Feedback | None:
        """This person's latest record for the answer, found by reading every
        record of the account: for recovery, not per reaction (keep the id)."""
        mine = [
            f
            for f in await self.feedbacks()
            if f.message_id == message_id
            and f.rater is not None
            and (f.rater.platform, f.rater.user_id) == (rater.platform, rater.user_id)
        ]
        return max(mine, key=lambda f: f.updated_at, default=None)

    async def _all_pages(self, path: str) -> list[dict[str, Any]]:
        """A list endpoint's items: 0.6.x answers with a list, 0.12.x with pages
        of ``{"items", "total"}``."""
        items: dict[str, dict[str, Any]] = {}
        page = 1
        while True:
            data = await self._client.request("GET", path, params={"page": str(page)})
            if not isinstance(data, dict):
                return [item for item in data or [] if isinstance(item, dict)]
            batch = [item for item in data.get("items") or [] if isinstance(item, dict)]
            before = len(items)
            items.update((str(item.get("id")), item) for item in batch)
            # Records added while paging shift pages: stop when a page adds nothing.
            if len(items) == before or len(items) >= int(data.get("total") or 0):
                return list(items.values())
            page += 1


def _named(folders: Iterable[Folder], name: str) -> Folder | None:
    wanted = name.casefold()
    return next((f for f in folders if f.parent_id is None and f.name.casefold() == wanted), None)


def _folder(data: Any) -> Folder:
    if not isinstance(data, dict) or not data.get("id"):
        raise RequestRejected(f"Open WebUI answered without a folder: {str(data)[:200]}")
    parent = data.get("parent_id")
    return Folder(str(data["id"]), str(data.get("name") or ""), str(parent) if parent else None)


def _tags(data: Any) -> list[Tag]:
    return [
        Tag(str(item.get("id", "")), str(item.get("name", "")))
        for item in data or []
        if isinstance(item, dict)
    ]


def _feedback(data: Any) -> Feedback:
    if not isinstance(data, dict) or not data.get("id"):
        raise RequestRejected(f"Open WebUI answered without a feedback: {str(data)[:200]}")
    body = data.get("data") or {}
    meta = data.get("meta") or {}
    person = meta.get("platform_user")
    rater = (
        Rater(
            str(person.get("platform", "")), str(person.get("id", "")), str(person.get("name", ""))
        )
        if isinstance(person, dict)
        else None
    )
    try:
        vote = int(body.get("rating") or 0)
    except (TypeError, ValueError):
        vote = 0  # the web UI also writes other scales; only ±1 counts here
    return Feedback(
        id=str(data["id"]),
        chat_id=str(meta.get("chat_id") or ""),
        message_id=str(meta.get("message_id") or ""),
        model_id=str(body.get("model_id") or ""),
        vote=vote,
        rater=rater,
        reason=str(body.get("reason") or ""),
        comment=str(body.get("comment") or ""),
        updated_at=int(data.get("updated_at") or 0),
    )
