"""Errors about a media file or part: fit to print, and to send as an OpenAI-shaped 400."""

from agentmill.errors import AgentmillError


class MediaError(AgentmillError):
    """A file or content part we cannot use. `param` names the request field (e.g.
    ``messages.[0].content.[1]``) when it came from the API; `status` is the HTTP status."""

    def __init__(self, message: str, param: str | None = None, status: int = 400, code: str = "invalid_media"):
        super().__init__(message)
        self.param, self.status, self.code = param, status, code

    def at(self, param: str) -> "MediaError":
        """The same error, naming where in a request it happened (kept if already named)."""
        if self.param is None:
            self.param = param
        return self


class MissingEngine(MediaError):
    """A backend whose engine is not installed: the message says what to install."""

    def __init__(self, what: str, install: str):
        super().__init__(f"{what} is not installed here: {install}", code="engine_not_installed")
