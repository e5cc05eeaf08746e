"""The migration contract: what moves where, loaded, validated and typed."""

from __future__ import annotations

import difflib
import json
import string
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from .db import url_has_password
from .errors import ContractError

DEFAULT_PAGE_SIZE = 10_000
DEFAULT_BULK_THRESHOLD = 50_000_000


FILTERS = {"lower": False, "upper": False, "trim": False, "date": True}  # name: takes an argument


@dataclass(frozen=True, slots=True)
class KeyTemplate:
    """A template such as `ORDER#{order_id}` or `{email|lower}`: literal pieces and fields.

    `parts` pairs each literal with the column that follows it (or None); `filters` holds,
    for the same positions, the filters applied to that column's text in order, each a
    (name, argument) pair: lower, upper, trim, date:<strftime format>.
    """

    text: str
    parts: tuple[tuple[str, str | None], ...]  # (literal, column or None)
    filters: tuple[tuple[tuple[str, str | None], ...], ...] = ()

    @classmethod
    def parse(cls, text: str) -> KeyTemplate:
        parts, filters = [], []
        for literal, name, spec, conv in string.Formatter().parse(text):
            if conv:
                raise ValueError(
                    f"template {text!r}: conversions (!{conv}) are not supported: remove !{conv}"
                )
            if name is not None and not name:
                raise ValueError(
                    f"template {text!r}: empty {{}} field: name a column inside, as in {{id}}"
                )
            field_filters: list[tuple[str, str | None]] = []
            if name is not None:
                full = name + (":" + spec if spec else "")
                if "|" not in full and spec:
                    raise ValueError(
                        f"template {text!r}: format specs are not supported in {{{name}}}; "
                        "use a filter such as {col|date:%Y-%m}"
                    )
                name, *chain = full.split("|")
                for f in chain:
                    fname, _, arg = f.partition(":")
                    if fname not in FILTERS:
                        raise ValueError(
                            f"template {text!r}: unknown filter {fname!r} (known: {', '.join(FILTERS)})"
                        )
                    if FILTERS[fname] != bool(arg):
                        need = (
                            "needs an argument, as in date:%Y-%m-%d"
                            if FILTERS[fname]
                            else f"takes no argument: remove ':{arg}'"
                        )
                        raise ValueError(f"template {text!r}: filter {fname!r} {need}")
                    field_filters.append((fname, arg or None))
                if not name:
                    raise ValueError(
                        f"template {text!r}: a filter without a column: "
                        "put the column first, as in {email|lower}"
                    )
            parts.append((literal, name))
            filters.append(tuple(field_filters))
        return cls(text, tuple(parts), tuple(filters))

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for _, c in self.parts if c)


@dataclass(frozen=True, slots=True)
class Gsi:
    """A global secondary index an import creates: string keys, every attribute projected."""

    name: str
    partition_key: str
    sort_key: str | None = None


@dataclass(frozen=True, slots=True)
class WriteRate:
    """A cap on the write capacity units a second all of a run's workers together spend on a
    table: a number of units, or a share of the table's provisioned write capacity."""

    units_per_second: float | None = None
    share_of_provisioned: float | None = None


@dataclass(frozen=True, slots=True)
class DynamoTable:
    """A DynamoDB target table and how its items arrive (`load`).

    "write": BatchWriteItem pages into a table that exists (a local run creates it), under
    `write_rate` when given.
    "import": Import from S3 creates the table from the run's staged items, with the key
    schema, `gsis`, `billing_mode` and `capacity` (read, write units) given here.
    """

    name: str
    partition_key: str
    sort_key: str | None
    billing_mode: str = "PAY_PER_REQUEST"
    load: str = "write"
    gsis: tuple[Gsi, ...] = ()
    capacity: tuple[int, int] | None = None  # (read units, write units) when PROVISIONED
    write_rate: WriteRate | None = None

    @property
    def imports(self) -> bool:
        return self.load == "import"


@dataclass(frozen=True, slots=True)
class TableSpec:
    source: str
    kind: str  # "table" | "view"
    key: tuple[str, ...]
    page_size: int
    include: tuple[str, ...] | None
    exclude: tuple[str, ...]
    rename: dict[str, str]
    target_table: str
    partition_key: KeyTemplate | None = None
    sort_key: KeyTemplate | None = None
    attributes: dict[str, KeyTemplate] = field(default_factory=dict)
    on_conflict: str = "replace"
    types: dict[str, str] = field(default_factory=dict)  # column: DynamoDB encoding override
    transform: str | None = None  # module:function applied to each page
    path: str | None = None  # "lambda" | "bulk" forces the path; None: by bulk_threshold_rows


@dataclass(frozen=True, slots=True)
class Contract:
    raw: dict[str, Any]
    source_database: str
    source_url: str | None
    target_kind: str  # "dynamodb" | "mysql"
    target_database: str | None
    target_url: str | None
    endpoint_url: str | None
    null_values: str
    dates: str
    dynamo_tables: dict[str, DynamoTable]
    tables: tuple[TableSpec, ...]
    bulk_threshold_rows: int

    @property
    def import_tables(self) -> tuple[DynamoTable, ...]:
        """The DynamoDB target tables that Import from S3 creates, in contract order."""
        return tuple(t for t in self.dynamo_tables.values() if t.imports)

    def sources_of(self, target_table: str) -> tuple[TableSpec, ...]:
        """The source tables whose rows go to `target_table`."""
        return tuple(t for t in self.tables if t.target_table == target_table)

    def table(self, name: str) -> TableSpec:
        for t in self.tables:
            if t.source == name:
                return t
        raise KeyError(f"table {name!r} is not in the contract")

    def to_json(self) -> str:
        return json.dumps(self.raw, indent=2, sort_keys=False)


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(resources.files("sluice").joinpath("schemas/contract-v1.json").read_text())


def _path(parts) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def load_document(path: str | Path) -> dict[str, Any]:
    text = Path(path).read_text()
    if str(path).endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_load(text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContractError([f"$: not valid JSON ({exc.msg} at line {exc.lineno})"]) from exc


def problems(doc: Any) -> list[str]:
    """Every problem in `doc`, each as `<JSON path>: <what is wrong and what to do>`."""
    found = []
    validator = jsonschema.Draft202012Validator(schema())
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        found.extend(_describe(err))
    if found:
        return found
    found.extend(_semantic_problems(doc))
    return found


def _describe(err: jsonschema.ValidationError) -> list[str]:
    """One schema error as `<JSON path>: <what is wrong>: <what to do>` lines."""
    where = _path(err.absolute_path)
    inst, value = err.instance, err.validator_value
    if err.validator == "oneOf" and list(err.absolute_path) == ["target"]:
        if not isinstance(inst, dict):
            return [f"{where}: must be an object with a kind, 'dynamodb' or 'mysql'"]
        branch = {"dynamodb": 0, "mysql": 1}.get(inst.get("kind"))
        if "kind" not in inst:
            return [f"{where}.kind: required: set it to 'dynamodb' or 'mysql'"]
        if branch is None:
            return [
                f"{where}.kind: {_show(inst['kind'])} is not a target kind: use 'dynamodb' or 'mysql'"
            ]
        subs = [e for e in err.context if e.relative_schema_path[0] == branch]
        return [line for e in subs for line in _describe(e)]
    if err.validator == "required":
        # One error per missing property; its message names it ("'key' is a required property").
        prop = err.message.split(" is a required property")[0].strip("'\"")
        hint = _REQUIRED_HINTS.get((_shape(err.absolute_path), prop), f"add {prop!r}")
        return [f"{where}: {prop!r} is required: {hint}"]
    if err.validator == "additionalProperties":
        allowed = list(err.schema.get("properties", {}))
        out = []
        for extra in (k for k in inst if k not in allowed):
            near = difflib.get_close_matches(extra, allowed, n=1, cutoff=0.6)
            hint = f"did you mean {near[0]!r}?" if near else f"allowed here: {', '.join(allowed)}"
            out.append(
                f"{where}: {extra!r} was unexpected: remove it, or check its spelling ({hint})"
            )
        return out
    if err.validator == "pattern":
        if "A-Za-z0-9_$" in str(value):
            fix = "" if where.endswith(".database") else "; read it through a view that renames it"
            return [
                f"{where}: {inst!r} is not a plain MySQL identifier: use letters, digits, _ "
                f"and $ (at most 64){fix}"
            ]
        if "A-Za-z0-9_.-" in str(value):
            what = "table" if "propertyNames" in err.relative_schema_path else "index"
            return [
                f"{where}: {inst!r} is not a DynamoDB {what} name: use 3 to 255 letters, "
                "digits, _, . and -"
            ]
        if list(err.absolute_path)[-1:] == ["transform"]:
            return [f"{where}: {inst!r} is not module:function: write it as my_module:my_function"]
        if "mysql|mariadb" in str(value):
            return [
                f"{where}: must start with mysql:// or mariadb://, as in mysql://user@host:3306"
            ]
    if err.validator == "type":
        return [
            f"{where}: must be {_type_wanted(value)}, not {_what(inst)}{_type_fix(value, inst)}"
        ]
    if err.validator == "enum":
        choices = ", ".join(_show(v) for v in value)
        return [f"{where}: {_show(inst)} is not one of the allowed values: use one of {choices}"]
    if err.validator == "const":
        if list(err.absolute_path) == ["version"]:
            return [f"{where}: {_show(inst)} is not supported: set it to 1 (this contract format)"]
        return [f"{where}: must be {_show(value)}, not {_show(inst)}"]
    if err.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        lo, hi = err.schema.get("minimum"), err.schema.get("maximum")
        above = err.schema.get("exclusiveMinimum")
        if above is not None:
            top = f" and at most {hi}" if hi is not None else ""
            return [f"{where}: {_show(inst)} is out of range: use a number above {above}{top}"]
        if lo is not None and hi is not None:
            return [f"{where}: {_show(inst)} is out of range: use a number from {lo} to {hi}"]
        bound = f"{lo} or more" if lo is not None else f"at most {hi}"
        return [f"{where}: {_show(inst)} is out of range: use {bound}"]
    if err.validator == "minItems":
        last = _shape(err.absolute_path).rsplit(".", 1)[-1]
        hint = _EMPTY_HINTS.get(last, f"list at least {value}")
        return [f"{where}: [] is empty: {hint}" if not inst else f"{where}: too short: {hint}"]
    if err.validator == "maxItems":
        return [f"{where}: more than {value} entries: DynamoDB allows at most {value}"]
    if err.validator == "minProperties":
        hint = _EMPTY_HINTS.get(_shape(err.absolute_path), "add an entry")
        return [f"{where}: {{}} is empty: {hint}"]
    if err.validator == "minLength":
        return [f"{where}: must not be empty: give a value, or remove the property"]
    if err.validator == "maxLength":
        return [f"{where}: longer than {value} characters: shorten it"]
    if err.validator == "uniqueItems":
        return [f"{where}: lists the same value twice: list each once"]
    return [f"{where}: {err.message}"]


def _shape(path) -> str:
    """A path with list indexes and DynamoDB table names generalized: `$.tables[]`, `$.target.tables.*`."""
    out, parts = "$", list(path)
    for i, p in enumerate(parts):
        if isinstance(p, int):
            out += "[]"
        elif parts[:i] == ["target", "tables"]:
            out += ".*"
        else:
            out += f".{p}"
    return out


# What to write when a required property is missing, by where it is missing.
_REQUIRED_HINTS = {
    ("$", "version"): 'add "version": 1',
    ("$", "source"): 'add {"database": ...}, the MySQL database to read',
    (
        "$",
        "target",
    ): 'add {"kind": "dynamodb", "tables": {...}} or {"kind": "mysql", "database": ...}',
    ("$", "tables"): 'list the tables to move, each {"source": ..., "key": [...], "target": {...}}',
    ("$.source", "database"): "name the MySQL database to read",
    ("$.target", "tables"): 'declare the DynamoDB tables, as in {"shop": {"partition_key": "PK"}}',
    ("$.target", "database"): "name the MySQL database to write",
    ("$.target.tables.*", "partition_key"): 'name its partition key attribute, such as "PK"',
    ("$.tables[]", "source"): "name the table or view to read",
    ("$.tables[]", "key"): (
        "list the columns that identify a row; a view has no primary key, so declare them"
    ),
    ("$.tables[]", "target"): 'say where its rows go, as in {"table": ...}',
}

# What to write when a list or object must not be empty, by its name or path shape.
_EMPTY_HINTS = {
    "tables": "list at least one table to move",
    "key": "list the columns that identify a row",
    "$.target.tables": 'declare a DynamoDB table, as in {"shop": {"partition_key": "PK"}}',
    "$.target.tables.*.write_rate": (
        'give {"units_per_second": 500} or {"share_of_provisioned": 0.5}, or remove it'
    ),
}

_TYPE_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "object": "an object {...}",
    "array": "an array [...]",
    "boolean": "true or false",
    "null": "null",
}


def _type_wanted(value) -> str:
    kinds = [value] if isinstance(value, str) else list(value)
    return " or ".join(_TYPE_NAMES.get(k, k) for k in kinds)


def _what(inst: Any) -> str:
    if isinstance(inst, bool) or inst is None:
        return json.dumps(inst)
    if isinstance(inst, str):
        return f"the string {inst!r}"
    if isinstance(inst, int | float):
        return f"the number {inst}"
    return "an object" if isinstance(inst, dict) else "an array"


def _type_fix(value, inst: Any) -> str:
    kinds = [value] if isinstance(value, str) else list(value)
    if isinstance(inst, str) and {"integer", "number"} & set(kinds):
        try:
            float(inst)
        except ValueError:
            return ""
        return ": write it without quotes"
    if "array" in kinds and isinstance(inst, str):
        return f": write [{json.dumps(inst)}]"
    return ""


def _show(v: Any) -> str:
    """A value as the contract spells it: strings quoted, others as JSON."""
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, dict | list):
        return _what(v)
    return json.dumps(v)


def _template_problems(text: str, where: str) -> list[str]:
    try:
        KeyTemplate.parse(text)
    except ValueError as exc:
        return [f"{where}: {exc}"]
    return []


def _semantic_problems(doc: dict[str, Any]) -> list[str]:
    found = []
    for url_path, url, env in (
        ("$.source.url", doc["source"].get("url"), "SLUICE_SOURCE_URL"),
        ("$.target.url", doc["target"].get("url"), "SLUICE_TARGET_URL"),
    ):
        if url and url_has_password(url):
            found.append(
                f"{url_path}: holds a password: remove it; credentials never go in the "
                f"contract (pass them in {env} or a Secrets Manager secret)"
            )
    target = doc["target"]
    if target["kind"] == "dynamodb":
        found.extend(_import_problems(doc))
    seen_sources = {}
    seen_keys: dict[tuple, str] = {}
    for i, t in enumerate(doc["tables"]):
        where = f"$.tables[{i}]"
        if t["source"] in seen_sources:
            found.append(
                f"{where}.source: {t['source']!r} is listed twice (also at "
                f"{seen_sources[t['source']]}): keep one entry per source"
            )
        seen_sources[t["source"]] = where
        tgt = t["target"]
        if target["kind"] == "dynamodb":
            name = tgt.get("table")
            declared = ", ".join(repr(n) for n in target["tables"])
            if not name:
                found.append(
                    f"{where}.target.table: required: name one of $.target.tables ({declared})"
                )
                continue
            if name not in target["tables"]:
                found.append(
                    f"{where}.target.table: {name!r} is not declared in $.target.tables: "
                    f"declare it there, or use one of {declared}"
                )
                continue
            decl = target["tables"][name]
            if "partition_key" not in tgt:
                found.append(
                    f"{where}.target.partition_key: required: give a template such as 'USER#{{id}}'"
                )
            if decl.get("sort_key") and "sort_key" not in tgt:
                found.append(
                    f"{where}.target.sort_key: required: table {name!r} has sort key "
                    f"{decl['sort_key']!r}; give a template such as 'ORDER#{{id}}' or 'PROFILE'"
                )
            if "sort_key" in tgt and not decl.get("sort_key"):
                found.append(
                    f"{where}.target.sort_key: table {name!r} declares no sort key: remove it, "
                    f"or declare one at $.target.tables.{name}.sort_key"
                )
            for k in ("partition_key", "sort_key"):
                if k in tgt:
                    found.extend(_template_problems(tgt[k], f"{where}.target.{k}"))
            for attr, text in tgt.get("attributes", {}).items():
                found.extend(_template_problems(text, f"{where}.target.attributes.{attr}"))
            if "on_conflict" in tgt:
                found.append(f"{where}.target.on_conflict: only for MySQL targets: remove it")
            sig = (
                name,
                _literal_shape(tgt.get("partition_key", "")),
                _literal_shape(tgt.get("sort_key", "")),
            )
            if sig in seen_keys:
                found.append(
                    f"{where}.target: keys {tgt.get('partition_key')!r}/{tgt.get('sort_key')!r} can collide "
                    f"with {seen_keys[sig]} in table {name!r}: give each entity its own prefix"
                )
            seen_keys[sig] = where
        else:
            for k in ("partition_key", "sort_key", "attributes", "types"):
                if k in tgt:
                    found.append(f"{where}.target.{k}: only for DynamoDB targets: remove it")
    return found


def _import_problems(doc: dict[str, Any]) -> list[str]:
    """The import settings of each DynamoDB target table: capacity, indexes and their keys."""
    found = []
    for name, decl in doc["target"]["tables"].items():
        where = f"$.target.tables.{name}"
        imports = decl.get("load", "write") == "import"
        provisioned = decl.get("billing_mode") == "PROVISIONED"
        for k in ("gsis", "capacity"):
            if k in decl and not imports:
                found.append(
                    f'{where}.{k}: only for a table that an import creates ("load": "import"); '
                    "an existing table keeps its own: remove it"
                )
        if imports and provisioned and "capacity" not in decl:
            found.append(
                f"{where}.capacity: required with billing_mode PROVISIONED: give "
                '{"read_units": ..., "write_units": ...}, or use PAY_PER_REQUEST'
            )
        if "capacity" in decl and not provisioned:
            found.append(
                f"{where}.capacity: only with billing_mode PROVISIONED: remove it, or set "
                f"{where}.billing_mode to PROVISIONED"
            )
        rate = decl.get("write_rate")
        if rate is not None and imports:
            found.append(
                f"{where}.write_rate: an import uses no write capacity, so there is nothing to "
                'cap: remove it, or set load to "write"'
            )
        elif rate is not None and len(rate) > 1:
            found.append(
                f"{where}.write_rate: give units_per_second or share_of_provisioned, not both"
            )
        # Attributes some entry of this table computes from a template (always strings).
        computed = {decl["partition_key"], decl.get("sort_key")}
        for t in doc["tables"]:
            if t["target"].get("table") == name:
                computed.update(t["target"].get("attributes", {}))
        seen: dict[str, int] = {}
        for i, g in enumerate(decl.get("gsis", [])):
            if g["name"] in seen:
                found.append(
                    f"{where}.gsis[{i}].name: {g['name']!r} is also {where}.gsis[{seen[g['name']]}]: "
                    "give each index its own name"
                )
            seen.setdefault(g["name"], i)
            for k in ("partition_key", "sort_key"):
                attr = g.get(k)
                if attr and attr not in computed:
                    found.append(
                        f"{where}.gsis[{i}].{k}: no entry of table {name!r} computes attribute "
                        f"{attr!r}: index keys are strings made by templates; add it to an entry's "
                        f'target.attributes, as in {{"{attr}": "..."}}'
                    )
    return found


def _literal_shape(text: str) -> tuple:
    """The literal skeleton of a template: equal skeletons mean keys of two entities can collide."""
    try:
        return tuple((lit, name is not None) for lit, name in KeyTemplate.parse(text).parts)
    except ValueError:
        return (text,)


def parse(doc: dict[str, Any]) -> Contract:
    """Validate and type a contract document; raise ContractError listing every problem."""
    found = problems(doc)
    if found:
        raise ContractError(found)
    defaults = doc.get("defaults", {})
    target = doc["target"]
    dynamo_tables = (
        {
            name: DynamoTable(
                name,
                d["partition_key"],
                d.get("sort_key"),
                d.get("billing_mode", "PAY_PER_REQUEST"),
                load=d.get("load", "write"),
                gsis=tuple(
                    Gsi(g["name"], g["partition_key"], g.get("sort_key")) for g in d.get("gsis", [])
                ),
                capacity=(d["capacity"]["read_units"], d["capacity"]["write_units"])
                if "capacity" in d
                else None,
                write_rate=WriteRate(**{k: float(v) for k, v in d["write_rate"].items()})
                if "write_rate" in d
                else None,
            )
            for name, d in target.get("tables", {}).items()
        }
        if target["kind"] == "dynamodb"
        else {}
    )
    tables = []
    for t in doc["tables"]:
        tgt = t["target"]
        cols = t.get("columns", {})
        tables.append(
            TableSpec(
                source=t["source"],
                kind=t.get("kind", "table"),
                key=tuple(t["key"]),
                page_size=t.get("page_size", defaults.get("page_size", DEFAULT_PAGE_SIZE)),
                include=tuple(cols["include"]) if "include" in cols else None,
                exclude=tuple(cols.get("exclude", ())),
                rename=dict(cols.get("rename", {})),
                target_table=tgt.get("table", t["source"]),
                partition_key=KeyTemplate.parse(tgt["partition_key"])
                if "partition_key" in tgt
                else None,
                sort_key=KeyTemplate.parse(tgt["sort_key"]) if "sort_key" in tgt else None,
                attributes={a: KeyTemplate.parse(v) for a, v in tgt.get("attributes", {}).items()},
                on_conflict=tgt.get("on_conflict", "replace"),
                types=dict(tgt.get("types", {})),
                transform=t.get("transform"),
                path=t.get("path"),
            )
        )
    return Contract(
        raw=doc,
        source_database=doc["source"]["database"],
        source_url=doc["source"].get("url"),
        target_kind=target["kind"],
        target_database=target.get("database"),
        target_url=target.get("url"),
        endpoint_url=target.get("endpoint_url"),
        null_values=target.get("null_values", "omit"),
        dates=target.get("dates", "iso8601"),
        dynamo_tables=dynamo_tables,
        tables=tuple(tables),
        bulk_threshold_rows=defaults.get("bulk_threshold_rows", DEFAULT_BULK_THRESHOLD),
    )


def load(path: str | Path) -> Contract:
    return parse(load_document(path))


def from_json(text: str) -> Contract:
    return parse(json.loads(text))
