"""Open WebUI's live events (Socket.IO), routed to whoever follows a message.

One connection per bridge. 0.6.x names the event ``chat-events`` and needs a
``user-join`` after connecting; 0.12.x names it ``events`` and joins the user's
room on connect. Both carry ``{chat_id, message_id, data: {type, data}}``.
Socket.IO accepts a JWT only, never an API key.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import socketio

log = logging.getLogger(__name__)

Event = dict[str, Any]


class LiveEvents:
    def __init__(self, base_url: str, token: str) -> None:
        self._base_url = base_url
        self._token = token
        self._queues: dict[str, asyncio.Queue[Event]] = {}
        self._sio = socketio.AsyncClient(reconnection=True, logger=False, engineio_logger=False)
        self._sio.on("events", self._on_event)
        self._sio.on("chat-events", self._on_event)
        self._sio.on("connect", self._on_connect)

    @property
    def session_id(self) -> str | None:
        sid = self._sio.get_sid()
        return str(sid) if sid else None

    @property
    def connected(self) -> bool:
        return bool(self._sio.connected)

    async def start(self, wait: float = 10.0) -> None:
        await self._sio.connect(
            self._base_url,
            socketio_path="/ws/socket.io",
            auth={"token": self._token},
            transports=["websocket"],
            wait_timeout=wait,
        )

    async def _on_connect(self) -> None:
        # 0.6.x only routes events to sockets that announced their user.
        await self._sio.emit("user-join", {"auth": {"token": self._token}})

    async def _on_event(self, payload: Any) -> None:
        if not isinstance(payload, dict):
            return
        queue = self._queues.get(str(payload.get("message_id")))
        data = payload.get("data")
        if queue is not None and isinstance(data, dict):
            queue.put_nowait({**data, "chat_id": payload.get("chat_id")})

    def subscribe(self, message_id: str) -> asyncio.Queue[Event]:
        """Events for one message. Subscribe before starting the answer, so none is missed."""
        return self._queues.setdefault(message_id, asyncio.Queue())

    def unsubscribe(self, message_id: str) -> None:
        self._queues.pop(message_id, None)

    async def close(self) -> None:
        if self._sio.connected:
            await self._sio.disconnect()
