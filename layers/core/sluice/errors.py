"""Exception types whose messages a user can act on."""


class SluiceError(Exception):
    """Base class: the message names the culprit (table, column, JSON path) and the fix."""


class ContractError(SluiceError):
    """The migration contract is invalid; `problems` holds one line per JSON path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid contract:\n" + "\n".join(f"  - {p}" for p in problems))


class SchemaMismatch(SluiceError):
    """A target table exists but cannot hold what the source sends."""


class PageError(SluiceError):
    """A page could not complete a stage; the message names run, table and page."""
