"""Wiring: settings → Open WebUI client, live events, storage, core.

Lives with the adapters because it is the one place that knows every layer;
the core and storage stay ignorant of each other's implementations.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from bridge.channels import Channels, load_channels
from bridge.config import ConfigError, Settings
from bridge.intake import Bridge
from bridge.leases import LeaseTimes
from bridge.openwebui.client import (
    JWT_FIX,
    Credentials,
    OpenWebUIClient,
    ServerInfo,
    describe_expiry,
    jwt_expiry,
)
from bridge.openwebui.filing import ChatFiling
from bridge.openwebui.flows import flow_for
from bridge.openwebui.live import LiveEvents
from bridge.openwebui.organise import Organiser
from bridge.options import CoreOptions
from bridge.policy import describe
from bridge.store import Store
from storage import DatabaseUnavailable, open_store
from storage import describe as describe_database

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    client: OpenWebUIClient
    server: ServerInfo
    store: Store
    bridge: Bridge
    live: LiveEvents | None


def make_client(settings: Settings) -> OpenWebUIClient:
    key = settings.openwebui_api_key
    password = settings.openwebui_password
    return OpenWebUIClient(
        settings.openwebui_url,
        Credentials(
            token=key.get_secret_value() if key else None,
            email=settings.openwebui_email,
            password=password.get_secret_value() if password else None,
        ),
        timeout=settings.openwebui_request_timeout,
        retries=settings.openwebui_retries,
    )


async def start_live_events(
    settings: Settings, client: OpenWebUIClient, *, warn_expiry: bool = True
) -> LiveEvents | None:
    """Live events when a JWT allows them; polling otherwise (or when asked).
    ``warn_expiry``: log when a pasted JWT will stop working (``check`` says it itself)."""
    if settings.openwebui_follow == "polling":
        return None
    jwt = client.current_jwt()
    if jwt is None:
        if settings.openwebui_follow == "events":
            log.warning("OPENWEBUI_FOLLOW=events needs a JWT (not an API key); polling instead")
        return None
    expiry = jwt_expiry(jwt)
    if warn_expiry and expiry is not None and not client.can_renew_jwt:
        log.warning(
            "the Open WebUI JWT expires at %s and cannot be renewed; before then, %s",
            describe_expiry(expiry),
            JWT_FIX,
        )
    # The client, not the token: every (re)connect takes its current JWT.
    live = LiveEvents(client.base_url, client)
    try:
        await live.start()
    except Exception as exc:
        log.warning("live events unavailable (%s); following answers by polling", exc)
        return None
    return live


PRUNE_EVERY = 3600.0  # seconds between two clean-ups of the delivery ledger


async def prune_events(store: Store, retention: float) -> None:
    """Forget delivery ids older than ``retention`` seconds, now and every hour."""
    while True:
        try:
            removed = await store.prune_events(time.time() - retention)
            if removed:
                log.info("forgot %d delivery id(s) older than %.0f s", removed, retention)
        except Exception as exc:  # the next round tries again
            log.warning("pruning the delivery ledger failed: %s", exc)
        await asyncio.sleep(PRUNE_EVERY)


@asynccontextmanager
async def open_runtime(
    settings: Settings, *, model: str | None = None, channels: Channels | None = None
) -> AsyncIterator[Runtime]:
    channels = channels or load_channels(settings)
    async with AsyncExitStack() as stack:
        client = make_client(settings)
        stack.push_async_callback(client.aclose)
        server = await client.connect()
        live = await start_live_events(settings, client)
        if live is not None:
            stack.push_async_callback(live.close)
        try:
            store = await open_store(settings.bridge_database)
        except DatabaseUnavailable as exc:  # one line for the operator, no password
            raise ConfigError(str(exc)) from None
        stack.push_async_callback(store.close)
        options = CoreOptions(
            default_model=model or channels.defaults.model,
            answer_timeout=settings.bridge_answer_timeout,
            max_concurrent_turns=settings.bridge_max_concurrent_turns,
            title_generation=settings.bridge_title_generation,
            poll_interval=settings.openwebui_poll_interval,
            channels=channels,
            reasoning=settings.bridge_show_reasoning,
            access=settings.access,
            limits=settings.limits,
            max_file_mb=settings.bridge_max_file_mb,
            max_files=settings.bridge_max_files,
            leases=LeaseTimes(lease=settings.bridge_lease_seconds),
        )
        # Folders, tags and the link back, for admins looking in Open WebUI.
        filing = ChatFiling(Organiser(client), store)
        bridge = Bridge(client, store, flow_for(client), options, live=live, filing=filing)
        # Leaving stops what is still running; the store keeps it for the next start.
        stack.push_async_callback(bridge.drain, 0)
        pruning = asyncio.create_task(prune_events(store, settings.bridge_event_retention))
        stack.callback(pruning.cancel)
        log.info(
            "connected to Open WebUI %s (%s auth, answers followed by %s)",
            server.version,
            client.auth_mode,
            bridge.follow_mode,
        )
        log.info("access: %s", describe(settings.access, settings.limits))
        log.info("database: %s", describe_database(settings.bridge_database))
        yield Runtime(settings, client, server, store, bridge, live)
