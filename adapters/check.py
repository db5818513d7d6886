"""``owui-bridge check``: one line per check (``ok   name: detail`` or
``FAIL name: detail``), exit 1 if any failed. Every configured token is tried
for real; none is ever printed."""

from __future__ import annotations

import time
from collections.abc import Callable

import aiohttp
import discord as discord_lib
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.discord.app import make_client as make_discord_client
from adapters.discord.app import point_at
from adapters.discord.invite import INTENT_MISSING, invite_url, message_content_granted
from adapters.discord.settings import DiscordSettings
from adapters.runtime import make_client, start_live_events
from adapters.slack.app import ROLES_SCOPE, identify
from adapters.slack.app import make_client as make_slack_client
from adapters.slack.settings import SlackSettings
from bridge.config import ConfigError, Settings, read_settings
from bridge.errors import AuthRejected, BridgeError
from bridge.openwebui import JWT_FIX, OpenWebUIClient, describe_expiry, jwt_expiry
from bridge.policy import describe

Report = Callable[[str, bool, str], None]


async def run_check(
    settings: Settings, slack: SlackSettings, discord: DiscordSettings | None = None
) -> int:
    """Report each check on its own line; exit 1 if any failed."""
    ok = True

    def report(name: str, passed: bool, detail: str) -> None:
        nonlocal ok
        ok = ok and passed
        print(f"{'ok  ' if passed else 'FAIL'} {name}: {detail}", flush=True)

    await check_openwebui(settings, report)
    report("access", True, describe(settings.access, settings.limits))
    # Slack is checked even when Open WebUI failed: an operator fixes both at once.
    if slack.enabled:
        await check_slack_bot(slack, report, roles=bool(settings.bridge_allowed_roles))
    if slack.app_token is not None:
        await check_slack_app_token(slack, report)
    await check_discord_configured(discord, report)
    return 0 if ok else 1


async def check_openwebui(settings: Settings, report: Report) -> None:
    client = make_client(settings)
    try:
        try:
            server = await client.connect()
        except AuthRejected as exc:
            # The server answered (its version is known); the sign-in did not work.
            version = client.server.version if client.server else "?"
            report("open webui", True, f"{settings.openwebui_url} version {version}")
            report("auth", False, str(exc))
            return
        except BridgeError as exc:
            report("open webui", False, f"{settings.openwebui_url}: {exc}")
            return
        report("open webui", True, f"{settings.openwebui_url} version {server.version}")
        try:
            await client.models()
            live = await start_live_events(settings, client, warn_expiry=False)
            follow = "live events" if live else "polling"
            if live:
                await live.close()
            report(
                "auth", True, f"{client.auth_mode.replace('_', ' ')}; answers followed by {follow}"
            )
        except BridgeError as exc:
            report("auth", False, str(exc))
            return
        _report_pasted_jwt(client, report)
        if settings.openwebui_model:
            try:
                await client.model(settings.openwebui_model)
                report("model", True, f"{settings.openwebui_model} is available")
            except BridgeError as exc:
                report("model", False, str(exc))
        else:
            report("model", False, "OPENWEBUI_MODEL is not set")
        for knowledge_id in settings.openwebui_knowledge_ids:
            try:
                knowledge = await client.knowledge(knowledge_id)
                report("knowledge", True, f"{knowledge_id} ({knowledge.get('name', '?')})")
            except BridgeError as exc:
                report("knowledge", False, str(exc))
    finally:
        await client.aclose()


def _report_pasted_jwt(client: OpenWebUIClient, report: Report) -> None:
    """When a JWT nothing can renew stops working (an expired one already failed)."""
    if client.auth_mode != "jwt" or client.can_renew_jwt:
        return
    expiry = jwt_expiry(client.current_jwt())
    if expiry is None:
        report("jwt", True, "the pasted token has no expiry")
        return
    left = _duration(expiry.timestamp() - time.time())
    report(
        "jwt",
        True,
        f"the pasted token expires at {describe_expiry(expiry)} (in {left}); "
        f"to keep answering after that, {JWT_FIX}",
    )


def _duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"


async def check_slack_bot(slack: SlackSettings, report: Report, *, roles: bool = False) -> None:
    try:
        identity = await identify(make_slack_client(slack))
    except SlackApiError as exc:
        report("slack", False, f"auth.test failed: {exc.response.get('error')}")
        return
    except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
        report("slack", False, f"cannot reach {slack.api_url}: {type(exc).__name__}")
        return
    report("slack", True, f"bot {identity.user_id} in team {identity.team_id}")
    if identity.missing_scopes:
        report("slack scopes", False, "missing " + ", ".join(identity.missing_scopes))
    if roles and identity.lacks(ROLES_SCOPE):
        report("slack scopes", False, f"BRIDGE_ALLOWED_ROLES needs {ROLES_SCOPE}")


async def check_slack_app_token(slack: SlackSettings, report: Report) -> None:
    """Socket Mode starts with ``apps.connections.open``: try exactly that."""
    if slack.app_token is None:
        return
    app_token = slack.app_token.get_secret_value()
    client = AsyncWebClient(token=app_token, base_url=slack.api_url)
    try:
        await client.apps_connections_open(app_token=app_token)
    except SlackApiError as exc:
        error = exc.response.get("error")
        hint = {
            "invalid_auth": "SLACK_APP_TOKEN is not a valid app-level token",
            "not_authed": "SLACK_APP_TOKEN is empty",
            "not_allowed_token_type": "SLACK_APP_TOKEN must be an app-level token (xapp-…)",
        }.get(str(error), "Socket Mode cannot connect")
        report("slack app token", False, f"apps.connections.open failed: {error} ({hint})")
        return
    except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
        report("slack app token", False, f"cannot reach {slack.api_url}: {type(exc).__name__}")
        return
    report("slack app token", True, "Socket Mode can connect")


async def check_discord_configured(discord: DiscordSettings | None, report: Report) -> None:
    """Discord, when DISCORD_BOT_TOKEN is set (settings read from the environment
    when the caller passed none)."""
    if discord is None:
        try:
            discord = read_settings(DiscordSettings)
        except ConfigError as exc:
            report("discord", False, str(exc))
            return
    if discord.enabled:
        await check_discord_bot(discord, report)


async def check_discord_bot(settings: DiscordSettings, report: Report) -> None:
    """Log in as the bot (REST only): who it is, its invite URL, and the intent."""
    if settings.bot_token is None:
        return
    point_at(settings)
    client = make_discord_client(discord_lib.Intents.none())
    try:
        await client.login(settings.bot_token.get_secret_value())
        user, app_id, flags = client.user, client.application_id, client.application_flags
    except discord_lib.LoginFailure:
        report("discord", False, "DISCORD_BOT_TOKEN was rejected by Discord (401)")
        return
    except discord_lib.HTTPException as exc:
        report("discord", False, f"{settings.api_url} answered {exc.status}: {exc.text}")
        return
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        report("discord", False, f"cannot reach {settings.api_url}: {type(exc).__name__}")
        return
    finally:
        await client.close()
    bot_id = user.id if user is not None else "?"
    report("discord", True, f"bot {user} ({bot_id})")
    report("discord invite", True, invite_url(app_id or bot_id))
    if message_content_granted(flags):
        report("discord intent", True, "Message Content intent enabled")
    else:
        report("discord intent", False, INTENT_MISSING)
