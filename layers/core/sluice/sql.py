"""SQL identifier checking and quoting: the one place identifiers enter SQL text."""

import re

_IDENT = re.compile(r"^[A-Za-z0-9_$]{1,64}$")


def check_ident(name: str, what: str = "identifier") -> str:
    """Return `name` if it is a plain MySQL identifier, else raise ValueError naming it."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ValueError(
            f"{what} {name!r} is not a plain MySQL identifier (letters, digits, _ and $, "
            "at most 64 characters); rename it or map it through a view"
        )
    return name


def q(name: str) -> str:
    """Backtick-quote an identifier after checking it."""
    return f"`{check_ident(name)}`"


def qualified(database: str, table: str) -> str:
    return f"{q(database)}.{q(table)}"
