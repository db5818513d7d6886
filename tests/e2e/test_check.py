"""``owui-bridge check`` against real Open WebUI servers: one line per check,
exit 0 when all pass, 1 when one fails, 2 when the settings themselves are wrong."""

from __future__ import annotations

from tests.e2e.conftest import Cli, CliResult, signed_in, with_api_key
from tests.harness.openwebui import RunningOpenWebUI


def lines_starting(result: CliResult, prefix: str) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(prefix)]


def test_check_with_api_key(openwebui: RunningOpenWebUI, cli: Cli) -> None:
    result = cli("check", env=with_api_key(openwebui))

    assert result.returncode == 0, result.output
    assert lines_starting(result, "FAIL") == []
    assert f"version {openwebui.version}" in result.stdout
    assert "api key" in result.stdout
    assert "polling" in result.stdout
    assert "fake-model is available" in result.stdout
    assert openwebui.api_key not in result.output


def test_check_with_email_and_password(openwebui: RunningOpenWebUI, cli: Cli) -> None:
    result = cli("check", env=signed_in(openwebui))

    assert result.returncode == 0, result.output
    assert f"version {openwebui.version}" in result.stdout
    assert "jwt" in result.stdout
    assert "live events" in result.stdout
    assert "fake-model is available" in result.stdout
    assert openwebui.admin_password not in result.output


def test_check_reports_unknown_model(openwebui: RunningOpenWebUI, cli: Cli) -> None:
    result = cli("check", env=with_api_key(openwebui, OPENWEBUI_MODEL="nope"))

    assert result.returncode == 1, result.output
    [model_line] = lines_starting(result, "FAIL model")
    assert "nope" in model_line
    # The server itself was fine: only the model line failed.
    assert lines_starting(result, "FAIL") == [model_line]


def test_check_reports_wrong_password(openwebui: RunningOpenWebUI, cli: Cli) -> None:
    result = cli("check", env=signed_in(openwebui, "not-the-password"))

    assert result.returncode == 1, result.output
    [failure] = lines_starting(result, "FAIL")
    # The user learns that the credentials are wrong, not that the server is down.
    assert failure.startswith("FAIL auth"), failure
    assert "email or password" in failure.lower(), failure
    assert "not-the-password" not in result.output
    assert "Traceback" not in result.output


def test_check_rejects_invalid_settings(cli: Cli) -> None:
    result = cli("check", env={"OPENWEBUI_URL": "ftp://x", "OPENWEBUI_API_KEY": "sk-whatever"})

    assert result.returncode == 2, result.output
    assert "OPENWEBUI_URL" in result.stderr
    assert "ftp://x" not in result.output  # names the setting, never repeats the value
    assert "Traceback" not in result.output


def test_check_prints_who_can_use_the_bot(openwebui: RunningOpenWebUI, cli: Cli) -> None:
    env = with_api_key(
        openwebui,
        BRIDGE_ALLOWED_CHANNELS="C0SUPPORT,C0HELP",
        BRIDGE_DENIED_USERS="U0MALLORY",
        BRIDGE_USER_RATE_LIMIT="10",
    )
    result = cli("check", env=env)

    assert result.returncode == 0, result.output
    [line] = lines_starting(result, "ok   access:")
    assert line == (
        "ok   access: Answers in 2 channels, to everyone except 1 user; no guests;"
        " no external users; DMs on; 10 questions per user per minute;"
        " questions up to 32,000 characters; up to 5 questions waiting per thread;"
        " refused people get one short notice an hour."
    )
