"""Open WebUI's live events (Socket.IO), routed to whoever follows a message.

One connection per bridge. 0.6.x names the event ``chat-events`` and needs a
``user-join`` after connecting; 0.12.x names it ``events`` and joins the user's
room on connect. Both carry ``{chat_id, message_id, data: {type, data}}``.
Socket.IO accepts a JWT only, never an API key.

Neither version refuses a connection whose JWT expired: it is accepted but
joins no user, so no event ever arrives (and 0.12.x drops sockets whose token
expired every 30 s). So every (re)connect authenticates with the current
token, renewed first when it is about to expire.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import socketio

from bridge.errors import BridgeError
from bridge.openwebui.client import jwt_expired

log = logging.getLogger(__name__)

Event = dict[str, Any]

# Renew a JWT this close to its expiry before connecting with it: the server
# would accept the connection and then never route an event to it.
RENEW_MARGIN = 2.0
MAX_RECONNECT_DELAY = 30.0


class TokenSource(Protocol):
    """Where the connection gets its JWT (``OpenWebUIClient`` is one)."""

    @property
    def can_renew_jwt(self) -> bool: ...

    def current_jwt(self) -> str | None: ...

    async def renew_jwt(self, stale: str | None = None) -> str: ...


class FixedToken:
    """A JWT nothing can renew."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "FixedToken(<hidden>)"

    @property
    def can_renew_jwt(self) -> bool:
        return False

    def current_jwt(self) -> str | None:
        return self._token

    async def renew_jwt(self, stale: str | None = None) -> str:
        return self._token


class LiveEvents:
    def __init__(self, base_url: str, tokens: TokenSource | str) -> None:
        self._base_url = base_url
        self._tokens: TokenSource = FixedToken(tokens) if isinstance(tokens, str) else tokens
        self._queues: dict[str, asyncio.Queue[Event]] = {}
        self._wait = 10.0
        # Set by a refused connect: the next attempt renews whatever the token says.
        self._refused = False
        self._reported_failure = False
        self._reported_outage = False
        self._closing = False
        self._rejoin: asyncio.Task[None] | None = None
        self._sio = socketio.AsyncClient(reconnection=True, logger=False, engineio_logger=False)
        self._sio.on("events", self._on_event)
        self._sio.on("chat-events", self._on_event)
        self._sio.on("connect", self._on_connect)
        self._sio.on("connect_error", self._on_connect_error)
        self._sio.on("disconnect", self._on_disconnect)

    def __repr__(self) -> str:
        return f"LiveEvents({self._base_url!r}, connected={self.connected})"

    @property
    def session_id(self) -> str | None:
        sid = self._sio.get_sid()
        return str(sid) if sid else None

    @property
    def connected(self) -> bool:
        return bool(self._sio.connected)

    async def start(self, wait: float = 10.0) -> None:
        self._wait = wait
        await self._sio.connect(
            self._base_url,
            socketio_path="/ws/socket.io",
            # A callable: python-socketio calls it on every connection attempt,
            # reconnections included, so a renewed token is always the one sent.
            auth=self._auth,
            transports=["websocket"],
            wait_timeout=wait,
        )

    async def _auth(self) -> dict[str, str]:
        token = self._tokens.current_jwt()
        expired = token is None or jwt_expired(token, margin=RENEW_MARGIN)
        refused, self._refused = self._refused, False
        # A refusal may just be the network: a JWT nothing can renew is kept then.
        if expired or (refused and self._tokens.can_renew_jwt):
            token = await self._renewed(token)
        return {"token": token or ""}

    async def _renewed(self, stale: str | None) -> str | None:
        try:
            # Single flight in the client: a renewal by a request that got a 401
            # at the same moment is reused, not repeated.
            token = await self._tokens.renew_jwt(stale)
        except BridgeError as exc:
            # Connect anyway: answers are still followed through the stored chat.
            if not self._reported_failure:
                self._reported_failure = True
                log.error("live events cannot renew the Open WebUI sign-in: %s", exc)
            return stale
        self._reported_failure = False
        return token

    async def _on_connect(self) -> None:
        if self._reported_outage:
            log.info("live events: connected to Open WebUI again")
        self._reported_outage = False
        # 0.6.x only routes events to sockets that announced their user.
        await self._sio.emit("user-join", {"auth": {"token": self._tokens.current_jwt() or ""}})

    async def _on_connect_error(self, data: Any = None) -> None:
        # Possibly a server refusing an expired token: renew before the next
        # attempt (python-socketio keeps reconnecting on its own).
        self._refused = True
        self._report_outage(f"connection failed ({data})")

    async def _on_disconnect(self, reason: Any = None) -> None:
        if self._closing:
            return
        self._report_outage(f"connection lost ({reason}); reconnecting")
        # python-socketio reconnects after a lost transport, but never after the
        # server ended the session, which 0.12.x does when the token expired.
        if reason == self._sio.reason.SERVER_DISCONNECT and self._rejoin is None:
            self._rejoin = asyncio.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = 1.0
        try:
            while not self._closing:
                await asyncio.sleep(delay)
                if self._sio.connected or self._closing:
                    return
                try:
                    await self.start(self._wait)
                    return
                except (socketio.exceptions.ConnectionError, ValueError) as exc:
                    log.debug("live events: reconnect failed: %s", exc)
                    delay = min(delay * 2, MAX_RECONNECT_DELAY)
        finally:
            self._rejoin = None

    def _report_outage(self, what: str) -> None:
        # Once per outage: reconnect attempts repeat every few seconds.
        if not self._reported_outage:
            self._reported_outage = True
            log.warning("live events: %s", what)

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
        self._closing = True
        if self._rejoin is not None:
            self._rejoin.cancel()
        if self._sio.connected:
            await self._sio.disconnect()
