"""The bridge's exceptions: one root, a few kinds, one sentence each.

    BridgeError
    ├── OpenWebUIUnavailable   Open WebUI cannot be reached (after retries)
    ├── AuthRejected           Open WebUI refused our credentials
    ├── RequestRejected        Open WebUI refused a request (4xx we cannot fix by retrying)
    │   └── ModelUnknown       the configured model does not exist
    ├── AnswerFailed           the model or Open WebUI reported an error for this answer
    ├── AnswerTimedOut         the answer did not finish within the configured time
    ├── TurnInterrupted        a restart cut the answer off before it was complete
    ├── PlatformRateLimited    the chat platform asked us to slow down beyond our patience
    ├── PlatformFailed         the chat platform refused to show the answer
    ├── ReplyStopped           the person stopped the answer from the platform (not a failure)
    ├── FileUnavailable        a file sent with a question cannot be fetched from its platform
    └── QuestionRefused        the question is not taken (access, limits, bounds); never stored

Third-party errors are translated where they enter (the Open WebUI client,
the adapters); the core only sees these. ``user_message`` is what the thread
shows; ``str(error)`` is for logs and never contains a secret.
"""

from __future__ import annotations


class BridgeError(Exception):
    user_message = "Something went wrong while answering. Please try again."
    status: int | None = None  # the HTTP status behind it, when Open WebUI answered


class OpenWebUIUnavailable(BridgeError):
    user_message = "Open WebUI is not reachable right now. Please try again in a few minutes."


class ReleaseUnsupported(BridgeError):
    """The server's Open WebUI release is older than the oldest one the bridge knows."""

    user_message = "This Open WebUI release is too old for the bridge. An admin must upgrade it."


class AuthRejected(BridgeError):
    user_message = (
        "The bridge could not sign in to Open WebUI. An admin needs to check its credentials."
    )


class RequestRejected(BridgeError):
    user_message = (
        "Open WebUI rejected the request. An admin can find the details in the bridge log."
    )


class ChatGone(RequestRejected):
    """The chat no longer exists in Open WebUI (an admin deleted it, or its folder)."""


class ModelUnknown(RequestRejected):
    user_message = "The configured model is not available in Open WebUI."


class AnswerFailed(BridgeError):
    user_message = "The model could not answer this message. Please try again."


class AnswerTimedOut(BridgeError):
    user_message = "The answer took too long and was stopped. Please try again."


class TurnInterrupted(BridgeError):
    user_message = "The bridge restarted before this answer was complete. Please ask again."


class PlatformRateLimited(BridgeError):
    user_message = "The chat platform is rate limiting the bridge. Please try again shortly."


def user_message(error: BaseException) -> str:
    """The one short sentence a user sees for ``error``."""
    if isinstance(error, BridgeError):
        return error.user_message
    return BridgeError.user_message


class PlatformFailed(BridgeError):
    user_message = "The answer could not be shown here. Please try again."


class ReplyStopped(BridgeError):
    """Raised by a reply handle; the core stops the answer and keeps what was shown."""

    user_message = "The answer was stopped."


class QuestionRefused(BridgeError):
    """Raised by ``submit``: nothing was stored and nothing reached Open WebUI.
    ``notice`` is what the asker is told (None: stay silent); ``reason`` is for logs."""

    def __init__(self, reason: str, notice: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.notice = notice


class FileUnavailable(BridgeError):
    """Raised by ``Platform.download``: the file cannot be fetched (not allowed, expired,
    gone). ``reason`` is the short phrase the thread's note shows ("the link expired")."""

    user_message = "A file sent with this message could not be read."

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
