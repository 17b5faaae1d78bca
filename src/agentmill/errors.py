"""User-facing errors: the CLI prints these as one clear message, never a stack trace."""


class AgentmillError(Exception):
    """An error caused by the user's input (recipe, data, model id) with a message fit to print."""


class DataError(AgentmillError):
    """One or more bad records. `problems` holds "FILE:LINE: reason" strings."""

    def __init__(self, problems: list[str], total: int | None = None, limit: int = 20):
        self.problems = problems
        self.total = total if total is not None else len(problems)
        shown = problems[:limit]
        more = self.total - len(shown)
        msg = "\n".join(shown)
        if more > 0:
            msg += f"\n... and {more} more problem(s)"
        super().__init__(msg)
