"""End-to-end fixtures: Sakila loaded once per session, and one local run per target kind."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest

ROOT_CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"

# Columns whose values are bytes: compared as bytes, never as text.
BINARY_TYPES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
SPATIAL_TYPES = {
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
}


@dataclass(frozen=True)
class Run:
    """One finished local run: its summary, the contract it ran and where its target is."""

    summary: dict[str, Any]
    contract: dict[str, Any]
    target: str  # MySQL database name, or DynamoDB endpoint URL


@contextmanager
def restored_environ() -> Iterator[None]:
    """The local runtime sets process-wide variables (AWS_*, SLUICE_BUCKET...): undo them."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def server_connection(mysql_info, database: str | None = None) -> pymysql.connections.Connection:
    """A UTC session (as sluice's own), so TIMESTAMP values read the same on both sides."""
    return pymysql.connect(
        host=mysql_info.host,
        port=mysql_info.port,
        user=mysql_info.user,
        password=mysql_info.password,
        database=database,
        charset="utf8mb4",
        autocommit=True,
        init_command="SET time_zone = '+00:00'",
    )


def columns_of(cur, database: str, table: str) -> list[tuple[str, str, str, bool]]:
    """(name, DATA_TYPE, COLUMN_TYPE, nullable) of a table or view, in order."""
    cur.execute(
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE = 'YES' "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
        "ORDER BY ORDINAL_POSITION",
        (database, table),
    )
    return [(n, d.lower(), t, bool(nullable)) for n, d, t, nullable in cur.fetchall()]


def database_exists(cur, name: str) -> bool:
    cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
    return cur.fetchone() is not None


# ---------------------------------------------------------------- Sakila


def _root_conftest(config: pytest.Config):
    """tests/conftest.py as pytest loaded it (every conftest is a module named `conftest`)."""
    for plugin in config.pluginmanager.get_plugins():
        file = getattr(plugin, "__file__", None)
        if file and Path(file).resolve() == ROOT_CONFTEST:
            return plugin
    raise LookupError(f"{ROOT_CONFTEST} is not loaded")


def _sakila_script(sakila_dir: Path, database: str) -> bytes:
    """Sakila's schema and data with every hard-coded `sakila` schema name replaced."""
    schema = (sakila_dir / "sakila-schema.sql").read_bytes()
    data = (sakila_dir / "sakila-data.sql").read_bytes()
    name = f"`{database}`".encode()
    for pattern, repl in (
        (rb"(?m)^DROP SCHEMA IF EXISTS sakila;", b"DROP SCHEMA IF EXISTS " + name + b";"),
        (rb"(?m)^CREATE SCHEMA sakila;", b"CREATE SCHEMA " + name + b";"),
        (rb"(?m)^USE sakila;", b"USE " + name + b";"),
        (rb"\bsakila\.", name + b"."),  # the actor_info view qualifies its tables
    ):
        schema = re.sub(pattern, repl, schema)
    data = re.sub(rb"(?m)^USE sakila;", b"USE " + name + b";", data)
    assert b"USE " + name in schema and b"USE " + name in data, "Sakila files changed shape"
    return schema + b"\n" + data


# What later Sakila versions and real data have and Sakila 0.8 lacks, added so the runs
# meet them: address.location GEOMETRY with a spatial index (Sakila 1.x), and a film whose
# SET column is empty. `last_update = last_update` keeps ON UPDATE timestamps as loaded.
EMPTY_SET_FILM_ID = 1000
_SAKILA_EXTRAS = (
    "ALTER TABLE address ADD COLUMN location GEOMETRY NULL AFTER phone",
    "UPDATE address SET location = ST_PointFromText(CONCAT('POINT(', city_id, ' ', "
    "address_id / 10, ')')), last_update = last_update",
    "ALTER TABLE address MODIFY location GEOMETRY NOT NULL, ADD SPATIAL KEY idx_location (location)",
    "UPDATE film SET special_features = '', last_update = last_update "
    f"WHERE film_id = {EMPTY_SET_FILM_ID}",
)


@pytest.fixture(scope="session")
def sakila(pytestconfig, mysql_info) -> Iterator[str]:
    """A database holding Sakila (16 base tables, 7 views, triggers), loaded with the
    `mariadb` client once per session under a unique name, dropped at the end."""
    shared = _root_conftest(pytestconfig)
    shared.require_shared()
    database = f"sluice_test_sakila_{uuid.uuid4().hex[:8]}"
    env = dict(os.environ)
    if mysql_info.password:
        env["MYSQL_PWD"] = mysql_info.password
    cmd = [
        "mariadb",
        f"--host={mysql_info.host}",
        f"--port={mysql_info.port}",
        f"--user={mysql_info.user}",
        "--default-character-set=utf8mb4",
        "--batch",
    ]
    try:
        proc = subprocess.run(
            cmd,
            input=_sakila_script(shared.SAKILA, database),
            env=env,
            capture_output=True,
            timeout=300,
        )
    except FileNotFoundError:
        pytest.skip("needs the `mariadb` command-line client to load Sakila")
    conn = server_connection(mysql_info)
    try:
        assert proc.returncode == 0, f"loading Sakila failed: {proc.stderr.decode()[-2000:]}"
        with conn.cursor() as cur:
            cur.execute(f"USE `{database}`")
            for sql in _SAKILA_EXTRAS:
                cur.execute(sql)
        yield database
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        conn.close()


@pytest.fixture(scope="session")
def sakila_url(mysql_url, sakila) -> str:
    return f"{mysql_url.rstrip('/')}/{sakila}"


def init_contract(source_url: str, target: str, path: Path) -> dict[str, Any]:
    """`sluice init --source URL --target TARGET -o PATH`, as a user runs it."""
    from sluice import cli

    assert cli.main(["init", "--source", source_url, "--target", target, "-o", str(path)]) == 0
    return json.loads(path.read_text())


@contextmanager
def database_env(mysql_url: str) -> Iterator[None]:
    """Source and target credentials as a user gives them, restored afterwards."""
    with restored_environ():
        os.environ["SLUICE_SOURCE_URL"] = mysql_url
        os.environ["SLUICE_TARGET_URL"] = mysql_url
        yield


def run_contract(contract_path: Path, state_dir: Path, label: str) -> dict[str, Any]:
    """`sluice run --local` as the CLI runs it: stage consumers in worker processes."""
    from sluice.local.run import run_local

    return run_local(
        contract_path,
        run_id=f"e2e-{label}-{uuid.uuid4().hex[:8]}",
        state_dir=state_dir,
        out=io.StringIO(),
        err=io.StringIO(),
        timeout=600,
        workers="processes",
    )


# ---------------------------------------------------------------- the two runs


@pytest.fixture(scope="session")
def mysql_run(tmp_path_factory, mysql_url, mysql_info, sakila_url) -> Iterator[Run]:
    """All of Sakila into a MySQL database that does not exist before the run."""
    work = tmp_path_factory.mktemp("sakila-mysql")
    target = f"sluice_test_sakila_copy_{uuid.uuid4().hex[:8]}"
    conn = server_connection(mysql_info)
    try:
        with conn.cursor() as cur:
            assert not database_exists(cur, target)
        contract = init_contract(
            sakila_url, f"{mysql_url.rstrip('/')}/{target}", work / "contract.json"
        )
        with database_env(mysql_url):
            summary = run_contract(work / "contract.json", work / "state", "mysql")
        yield Run(summary, contract, target)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{target}`")
        conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server in its own process: DynamoDB over HTTP, as a real endpoint is."""
    port = _free_port()
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(exe), "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, f"moto_server exited with {proc.returncode}"
                assert time.monotonic() < deadline, "moto_server did not start in 30 s"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def dynamodb_run(tmp_path_factory, mysql_url, sakila_url, moto_endpoint) -> Run:
    """All of Sakila into DynamoDB at an HTTP endpoint given by AWS_ENDPOINT_URL_DYNAMODB
    (the write way: with the endpoint set, init keeps "load": "write")."""
    work = tmp_path_factory.mktemp("sakila-dynamodb")
    with database_env(mysql_url):
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = moto_endpoint
        contract = init_contract(sakila_url, "dynamodb", work / "contract.json")
        (table,) = contract["target"]["tables"].values()
        assert table["load"] == "write", contract.get("notes")
        summary = run_contract(work / "contract.json", work / "state", "dynamodb")
    return Run(summary, contract, moto_endpoint)


@pytest.fixture(scope="session")
def dynamodb_reader(moto_endpoint):
    """A boto3 client on the moto server, independent of sluice's own clients."""
    import boto3

    return boto3.client(
        "dynamodb",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="e2e",
        aws_secret_access_key="e2e",
    )
