"""Checks of a contract against the live source schema, reported with JSON paths."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable

from . import user_transform
from .contract import Contract
from .errors import ContractError, SluiceError
from .source import SourceTable
from .sql import check_ident


def check_against_source(contract: Contract, sources: dict[str, SourceTable]) -> None:
    """Raise ContractError listing every table, column and key the source does not have."""
    problems = []
    for i, spec in enumerate(contract.tables):
        where = f"$.tables[{i}]"
        src = sources.get(spec.source)
        if src is None:
            hint = (
                _did_you_mean(spec.source, sources) or ": check its spelling, or remove this entry"
            )
            problems.append(
                f"{where}.source: no table or view {spec.source!r} in {contract.source_database}{hint}"
            )
            continue
        names = set(src.column_names)

        def col(path: str, name: str, names=names, src=src) -> None:
            if name not in names:
                problems.append(
                    f"{path}: {src.name} has no column {name!r}{_did_you_mean(name, names)}: "
                    f"use one of {_listing(names)}"
                )

        moved = [
            c
            for c in src.column_names
            if c not in spec.exclude
            and (spec.include is None or c in spec.include or c in spec.key)
        ]
        for c in moved:
            try:
                check_ident(c)
            except ValueError:
                problems.append(
                    f"{where}.columns: column {c!r} of {src.name} is not a plain identifier; "
                    "exclude it ($.tables[].columns.exclude) or move the table through a view that renames it"
                )
        for j, k in enumerate(spec.key):
            col(f"{where}.key[{j}]", k)
        if src.kind == "table" and src.primary_key and tuple(spec.key) != src.primary_key:
            problems.append(
                f"{where}.key: {json.dumps(list(spec.key))} is not the primary key of {src.name}; "
                f"pages need a unique key: set it to {json.dumps(list(src.primary_key))}"
            )
        for j, c in enumerate(spec.include or ()):
            col(f"{where}.columns.include[{j}]", c)
        for j, c in enumerate(spec.exclude):
            col(f"{where}.columns.exclude[{j}]", c)
        for c in spec.rename:
            col(f"{where}.columns.rename.{c}", c)
        templates = [("partition_key", spec.partition_key), ("sort_key", spec.sort_key)]
        templates += [(f"attributes.{a}", t) for a, t in spec.attributes.items()]
        for path, tmpl in templates:
            for c in tmpl.columns if tmpl else ():
                # A user transform may add the column; what it returns is checked per page.
                if c not in names and not spec.transform:
                    problems.append(
                        f"{where}.target.{path}: template {tmpl.text!r} names column {c!r}, "
                        f"which {src.name} does not have{_did_you_mean(c, names)}: "
                        f"use one of {_listing(names)}"
                    )
        for c, enc in spec.types.items():
            if c not in names:
                col(f"{where}.target.types.{c}", c)
                continue
            kind = src.column(c).kind
            if enc not in ENCODINGS_FOR.get(kind, ENCODINGS_FOR["text"]):
                allowed = ", ".join(sorted(ENCODINGS_FOR.get(kind, ENCODINGS_FOR["text"])))
                problems.append(
                    f"{where}.target.types.{c}: {src.name}.{c} is {src.column(c).column_type}, "
                    f"which cannot be written as {enc!r} (choose one of: {allowed})"
                )
        if spec.transform:
            try:
                user_transform.load(spec.transform)
            except SluiceError as exc:
                problems.append(f"{where}.transform: {exc}")
    if problems:
        raise ContractError(problems)


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the same name in another case or a near spelling, else ''."""
    known = sorted(known)
    near = [n for n in known if n.lower() == name.lower()]
    near = near or difflib.get_close_matches(name, known, n=1, cutoff=0.7)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _listing(names: Iterable[str], most: int = 20) -> str:
    names = sorted(names)
    more = f", ... ({len(names) - most} more)" if len(names) > most else ""
    return ", ".join(names[:most]) + more


# Which DynamoDB encodings a source kind may be given in $.tables[].target.types.
_DATES = {"string", "iso8601", "epoch_seconds", "epoch_millis"}
ENCODINGS_FOR = {
    "int": {"number", "string"},
    "decimal": {"number", "string"},
    "float": {"number", "string"},
    "bit": {"number", "string"},
    "year": {"number", "string"},
    "date": _DATES,
    "datetime": _DATES,
    "timestamp": _DATES,
    "time": {"string"},
    "text": {"string", "number", "json"},
    "enum": {"string"},
    "set": {"string_set", "string"},
    "json": {"json", "string"},
    "binary": {"binary"},
    "spatial": {"binary"},
    "bool": {"bool", "number", "string"},
}
