"""``owui-bridge check``: one line per check (``ok   name: detail`` or
``FAIL name: detail``), exit 1 if any failed. Every configured token is tried
for real; none is ever printed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

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
from bridge.channels import ChannelRules, Channels, load_channels
from bridge.config import ConfigError, Settings, read_settings
from bridge.errors import AuthRejected, BridgeError, RequestRejected
from bridge.openwebui.client import JWT_FIX, OpenWebUIClient, describe_expiry, jwt_expiry
from bridge.policy import describe
from storage import DatabaseUnavailable, SchemaTooNew
from storage.migrations import LATEST_VERSION
from storage.postgres import is_postgres, masked, probe

Report = Callable[[str, bool, str], None]


async def run_check(
    settings: Settings,
    slack: SlackSettings,
    discord: DiscordSettings | None = None,
    channels: Channels | None = None,
) -> int:
    """Report each check on its own line; exit 1 if any failed."""
    ok = True
    channels = channels or load_channels(settings)

    def report(name: str, passed: bool, detail: str) -> None:
        nonlocal ok
        ok = ok and passed
        print(f"{'ok  ' if passed else 'FAIL'} {name}: {detail}", flush=True)

    inventory = await check_openwebui(settings, report, channels.defaults)
    try:
        report("access", True, describe(settings.access, settings.limits))
        await check_channels(inventory, channels, report)
    finally:
        if inventory is not None:
            await inventory.client.aclose()
    # Slack is checked even when Open WebUI failed: an operator fixes both at once.
    if slack.enabled:
        await check_slack_bot(slack, report, roles=bool(settings.bridge_allowed_roles))
    if slack.app_token is not None:
        await check_slack_app_token(slack, report)
    await check_discord_configured(discord, report)
    await check_database(settings, report)
    return 0 if ok else 1


async def check_database(settings: Settings, report: Report) -> None:
    """PostgreSQL only: reachable, and its schema one this release knows (nothing is
    written; the first start creates or upgrades the tables). An SQLite file is
    created by the first start and needs no check."""
    database = str(settings.bridge_database)
    if not is_postgres(database):
        return
    try:
        version = await probe(database)
    except DatabaseUnavailable as exc:
        report("database", False, str(exc))
        return
    except SchemaTooNew as exc:
        report("database", False, f"{masked(database)}: {exc}")
        return
    state = f"schema {version} of {LATEST_VERSION}" if version else "empty, tables made at start"
    report("database", True, f"PostgreSQL {masked(database)} ({state})")


async def check_openwebui(
    settings: Settings, report: Report, defaults: ChannelRules
) -> Inventory | None:
    """Reach and sign in to Open WebUI, then check the default model, knowledge
    and filters. Returns what the signed-in client finds (the caller closes the
    client), or None when Open WebUI cannot be used."""
    client = make_client(settings)
    try:
        if not await _signed_in(client, settings, report):
            await client.aclose()
            return None
        inventory = Inventory(client)
        await _check_defaults(inventory, defaults, report)
    except BaseException:
        await client.aclose()
        raise
    return inventory


async def _check_defaults(inventory: Inventory, defaults: ChannelRules, report: Report) -> None:
    """The model, knowledge and filters every channel without its own gets."""
    if not defaults.model:
        report("model", False, "no model: set OPENWEBUI_MODEL or [defaults] model")
    try:
        if defaults.model:
            problem = await inventory.model_problem(defaults.model)
            report("model", problem is None, problem or f"{defaults.model} is available")
        for knowledge_id in defaults.knowledge_ids:
            name, problem = await inventory.knowledge(knowledge_id)
            report("knowledge", problem is None, problem or f"{knowledge_id} ({name})")
        for filter_id in defaults.filter_ids:
            problem = await inventory.filter_problem(filter_id, defaults.model)
            report("filter", problem is None, problem or f"{filter_id} is on")
    except BridgeError as exc:
        report("open webui", False, f"cannot list models, knowledge or functions: {exc}")


async def _signed_in(client: OpenWebUIClient, settings: Settings, report: Report) -> bool:
    try:
        server = await client.connect()
    except AuthRejected as exc:
        # The server answered (its version is known); the sign-in did not work.
        version = client.server.version if client.server else "?"
        report("open webui", True, f"{settings.openwebui_url} version {version}")
        report("auth", False, str(exc))
        return False
    except BridgeError as exc:
        report("open webui", False, f"{settings.openwebui_url}: {exc}")
        return False
    report("open webui", True, f"{settings.openwebui_url} version {server.version}")
    report("turn flow", True, server.turn_flow)
    try:
        await client.models()
        live = await start_live_events(settings, client, warn_expiry=False)
        follow = "live events" if live else "polling"
        if not live and not server.polls_show_progress:
            follow += f" (Open WebUI {server.version} shows each answer only once it is complete)"
        if live:
            await live.close()
        report("auth", True, f"{client.auth_mode.replace('_', ' ')}; answers followed by {follow}")
    except BridgeError as exc:
        report("auth", False, str(exc))
        return False
    _report_pasted_jwt(client, report)
    await _check_files(client, report)
    return True


# No file has this id: the answer says whether the account may use the files API.
_NO_FILE = "/api/v1/files/00000000-0000-0000-0000-000000000000"


async def _check_files(client: OpenWebUIClient, report: Report) -> None:
    """Files sent with questions go through ``/api/v1/files``: an API key limited to
    some endpoints (Open WebUI's API key endpoint restrictions) must include it."""
    try:
        await client.request("GET", _NO_FILE, retry=False)
    except AuthRejected as exc:
        if exc.status != 403:
            raise
        report(
            "files",
            False,
            "Open WebUI does not let this API key use /api/v1/files (its allowed "
            "endpoints): files sent with questions cannot be read",
        )
        return
    except BridgeError:
        pass  # "not found": the account may use it
    report("files", True, "files sent with questions can be uploaded")


MODELS_LISTED = 10  # model ids named when the configured one is missing


class Inventory:
    """What Open WebUI has, each kind fetched once: the models, the functions,
    and each knowledge collection asked about."""

    def __init__(self, client: OpenWebUIClient) -> None:
        self.client = client
        self._models: dict[str, dict[str, Any]] | None = None
        self._functions: dict[str, dict[str, Any]] | None = None
        self._knowledge: dict[str, tuple[str, str | None]] = {}

    async def model_problem(self, model_id: str) -> str | None:
        models = await self._all_models()
        if model_id in models:
            return None
        # Name what there is, so the fix is one copy and paste away.
        shown = sorted(models)[:MODELS_LISTED]
        more = f" and {len(models) - len(shown)} more" if len(models) > len(shown) else ""
        there = f"; it has {', '.join(shown)}{more}" if shown else "; it lists no model"
        return f"model {model_id} is not available in Open WebUI{there}"

    async def knowledge(self, knowledge_id: str) -> tuple[str, str | None]:
        """(its name, what is wrong with it or None)."""
        if knowledge_id not in self._knowledge:
            try:
                found = await self.client.knowledge(knowledge_id)
                self._knowledge[knowledge_id] = (str(found.get("name") or "?"), None)
            except (RequestRejected, AuthRejected):  # 0.6.x answers a missing one with 401
                problem = f"knowledge {knowledge_id} does not exist or this account cannot see it"
                self._knowledge[knowledge_id] = ("", problem)
        return self._knowledge[knowledge_id]

    async def filter_problem(self, filter_id: str, model_id: str) -> str | None:
        """Why Open WebUI would not run the filter for ``model_id``: it runs only
        active filters that are global or attached to the model (the request's
        ``filter_ids`` switch on the toggleable ones among those)."""
        function = (await self._all_functions()).get(filter_id)
        if function is None:
            return f"filter {filter_id} does not exist"
        if function.get("type") != "filter":
            return f"{filter_id} is a {function.get('type')} function, not a filter"
        if not function.get("is_active"):
            return f"filter {filter_id} is turned off in Open WebUI (Admin → Functions)"
        model = (await self._all_models()).get(model_id) or {}
        attached = ((model.get("info") or {}).get("meta") or {}).get("filterIds") or []
        if not function.get("is_global") and filter_id not in attached:
            return f"filter {filter_id} is neither global nor attached to model {model_id}"
        return None

    async def _all_models(self) -> dict[str, dict[str, Any]]:
        if self._models is None:
            self._models = {str(m.get("id")): m for m in await self.client.models()}
        return self._models

    async def _all_functions(self) -> dict[str, dict[str, Any]]:
        if self._functions is None:
            data = await self.client.request("GET", "/api/v1/functions/")
            items = data if isinstance(data, list) else []
            self._functions = {str(f.get("id")): f for f in items if isinstance(f, dict)}
        return self._functions


async def check_channels(inventory: Inventory | None, channels: Channels, report: Report) -> None:
    """One line per configured channel with its effective settings; FAIL naming
    each model, knowledge collection or filter Open WebUI lacks."""
    entries = [
        (f"channel {_titled(cid, channels.names.get(cid, ''))}", r)
        for cid, r in channels.by_id.items()
    ]
    if entries or _has_rules(channels.defaults):
        entries.insert(0, ("defaults", channels.defaults))
    for name, rules in entries:
        if inventory is None:
            report(name, False, f"{describe_rules(rules)} (not verified: no Open WebUI)")
            continue
        try:
            problems = await _problems(inventory, rules)
        except BridgeError as exc:
            problems = [f"cannot verify: {exc}"]
        detail = describe_rules(rules)
        report(name, not problems, f"{'; '.join(problems)} ({detail})" if problems else detail)


async def _problems(inventory: Inventory, rules: ChannelRules) -> list[str]:
    problems: list[str] = []
    if not rules.model:
        problems.append("no model")
    elif (problem := await inventory.model_problem(rules.model)) is not None:
        problems.append(problem)
    for knowledge_id in rules.knowledge_ids:
        _, problem = await inventory.knowledge(knowledge_id)
        if problem is not None:
            problems.append(problem)
    for filter_id in rules.filter_ids:
        problem = await inventory.filter_problem(filter_id, rules.model)
        if problem is not None:
            problems.append(problem)
    return problems


def _titled(channel_id: str, name: str) -> str:
    return f"{channel_id} ({name})" if name else channel_id


def _has_rules(defaults: ChannelRules) -> bool:
    """Whether [defaults] set more than the model, knowledge and filters (which
    the model/knowledge/filter lines already show)."""
    plain = ChannelRules(
        model=defaults.model, knowledge_ids=defaults.knowledge_ids, filter_ids=defaults.filter_ids
    )
    return defaults != plain


def describe_rules(rules: ChannelRules) -> str:
    """What is set, e.g. "model X, respond to all, knowledge k1, filters f1,
    system prompt 52 chars, features web_search, update every 2 s"."""
    parts = [f"model {rules.model or '(none)'}", f"respond to {rules.respond_to}"]
    if rules.knowledge_ids:
        parts.append("knowledge " + " ".join(rules.knowledge_ids))
    if rules.filter_ids:
        parts.append("filters " + " ".join(rules.filter_ids))
    if rules.system_prompt:
        parts.append(f"system prompt {len(rules.system_prompt)} chars")
    if rules.features:
        shown = [n if on else f"no {n}" for n, on in sorted(rules.features.items())]
        parts.append("features " + " ".join(shown))
    if rules.update_interval is not None:
        parts.append(f"update every {rules.update_interval:g} s")
    if rules.suggested_prompts:
        parts.append(f"{len(rules.suggested_prompts)} suggested prompts")
    return ", ".join(parts)


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
    """Log in as the bot (REST only): who it is, its invite URL, the intent, and the
    shard count Discord recommends (``GET /gateway/bot``)."""
    if settings.bot_token is None:
        return
    point_at(settings)
    client = make_discord_client(discord_lib.Intents.none())
    gateway: tuple[int, dict[str, Any]] | None = None
    try:
        await client.login(settings.bot_token.get_secret_value())
        user, app_id, flags = client.user, client.application_id, client.application_flags
        try:
            shards, _, limits = await client.http.get_bot_gateway()
            gateway = (shards, dict(limits))
        except discord_lib.GatewayNotFound:
            gateway = None
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
    if gateway is None:
        report("discord shards", False, f"{settings.api_url}/gateway/bot did not answer")
    else:
        report("discord shards", True, describe_shards(settings, *gateway))


def describe_shards(settings: DiscordSettings, recommended: int, limits: dict[str, Any]) -> str:
    """What Discord recommends against what is set, and the session starts left; a
    count below the recommendation is a warning (Discord refuses only when a shard
    would hold over 2,500 servers: close code 4011)."""
    held = settings.held_shards
    if settings.shard_count is None:
        now = "DISCORD_SHARD_COUNT unset (one connection)"
    else:
        now = f"DISCORD_SHARD_COUNT={settings.shard_count}, this process holds {_shards(held)}"
    count = settings.shard_count or 1
    warning = ""
    if count < recommended:
        warning = f"warning: below the recommendation, set DISCORD_SHARD_COUNT={recommended}; "
    starts = (
        f"{limits.get('remaining', '?')} of {limits.get('total', '?')} session starts left "
        f"(reset in {_duration(float(limits.get('reset_after', 0)) / 1000)}), "
        f"{limits.get('max_concurrency', 1)} at once"
    )
    plural = "" if recommended == 1 else "s"
    return f"{warning}Discord recommends {recommended} shard{plural}; {now}; {starts}"


def _shards(held: list[int] | None) -> str:
    if not held:
        return "none"
    return ("shard " if len(held) == 1 else "shards ") + ",".join(map(str, held))
