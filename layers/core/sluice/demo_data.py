"""Deterministic sample e-commerce database for demos and tests."""

from __future__ import annotations

import json
import random
import re
import unicodedata
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pymysql.connections
    import pymysql.cursors

__all__ = ["create_demo_database"]

# Bump only on purpose: every byte of the demo data follows from it.
_SEED = "sluice-demo-v1"
_EPOCH = datetime(2024, 1, 1)
_MICROS_PER_DAY = 86_400 * 1_000_000
_CHUNK_ROWS = 5_000
_DATABASE_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")

# Row counts at scale=1.0; order_items follows from orders (1-4 lines each).
_BASE_ROWS = {"users": 10_000, "categories": 50, "products": 2_000, "orders": 25_000}

_TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"

_DDL = {
    "users": f"""
        CREATE TABLE {{db}}.`users` (
          `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
          `email` VARCHAR(191) NOT NULL,
          `full_name` VARCHAR(120) NOT NULL,
          `country` CHAR(2) NULL,
          `status` ENUM('active','suspended','closed') NOT NULL DEFAULT 'active',
          `balance` DECIMAL(12,2) NOT NULL,
          `created_at` DATETIME(6) NOT NULL,
          `profile` JSON NULL,
          PRIMARY KEY (`id`),
          UNIQUE KEY `uq_users_email` (`email`)
        ) {_TABLE_OPTIONS}""",
    "categories": f"""
        CREATE TABLE {{db}}.`categories` (
          `id` INT NOT NULL,
          `parent_id` INT NULL,
          `name` VARCHAR(80) NOT NULL,
          `slug` VARCHAR(80) NOT NULL,
          PRIMARY KEY (`id`),
          UNIQUE KEY `uq_categories_slug` (`slug`)
        ) {_TABLE_OPTIONS}""",
    "products": f"""
        CREATE TABLE {{db}}.`products` (
          `sku` VARCHAR(32) NOT NULL,
          `category_id` INT NOT NULL,
          `name` VARCHAR(200) NOT NULL,
          `price` DECIMAL(10,2) NOT NULL,
          `weight_grams` INT UNSIGNED NULL,
          `tags` SET('new','sale','eco','gift','limited') NOT NULL DEFAULT '',
          `thumbnail` BLOB NULL,
          `created_at` DATETIME(6) NOT NULL,
          PRIMARY KEY (`sku`),
          KEY `ix_products_category_id` (`category_id`)
        ) {_TABLE_OPTIONS}""",
    "orders": f"""
        CREATE TABLE {{db}}.`orders` (
          `id` BIGINT NOT NULL,
          `user_id` BIGINT UNSIGNED NOT NULL,
          `status` ENUM('pending','paid','shipped','delivered','cancelled') NOT NULL,
          `total` DECIMAL(14,2) NOT NULL,
          `currency` CHAR(3) NOT NULL,
          `placed_at` DATETIME(6) NOT NULL,
          `note` TEXT NULL,
          PRIMARY KEY (`id`),
          KEY `ix_orders_user_id` (`user_id`)
        ) {_TABLE_OPTIONS}""",
    "order_items": f"""
        CREATE TABLE {{db}}.`order_items` (
          `order_id` BIGINT NOT NULL,
          `line_no` SMALLINT UNSIGNED NOT NULL,
          `sku` VARCHAR(32) NOT NULL,
          `quantity` INT NOT NULL,
          `unit_price` DECIMAL(10,2) NOT NULL,
          PRIMARY KEY (`order_id`, `line_no`),
          KEY `ix_order_items_sku` (`sku`)
        ) {_TABLE_OPTIONS}""",
}

# INVOKER so the view does not depend on the account that happened to create it.
_VIEW_DDL = """
    CREATE SQL SECURITY INVOKER VIEW {db}.`order_totals` AS
    SELECT o.`id` AS order_id, o.`user_id` AS user_id, COUNT(*) AS items,
           SUM(i.`quantity` * i.`unit_price`) AS amount
    FROM {db}.`orders` AS o
    JOIN {db}.`order_items` AS i ON i.`order_id` = o.`id`
    GROUP BY o.`id`, o.`user_id`"""

_COLUMNS = {
    "users": ("id", "email", "full_name", "country", "status", "balance", "created_at", "profile"),
    "categories": ("id", "parent_id", "name", "slug"),
    "products": (
        "sku",
        "category_id",
        "name",
        "price",
        "weight_grams",
        "tags",
        "thumbnail",
        "created_at",
    ),
    "orders": ("id", "user_id", "status", "total", "currency", "placed_at", "note"),
    "order_items": ("order_id", "line_no", "sku", "quantity", "unit_price"),
}

# (display name, ASCII handle for the e-mail address)
_FIRST_NAMES = (
    ("Anna", "anna"),
    ("José", "jose"),
    ("Zoë", "zoe"),
    ("Łukasz", "lukasz"),
    ("Søren", "soren"),
    ("Ngozi", "ngozi"),
    ("Αλέξης", "alexis"),
    ("Дмитрий", "dmitry"),
    ("美咲", "misaki"),
    ("Ahmed", "ahmed"),
    ("Priya", "priya"),
    ("Chloé", "chloe"),
    ("Mateo", "mateo"),
    ("Aoife", "aoife"),
    ("Li", "li"),
    ("Olga", "olga"),
    ("Sam", "sam"),
    ("Grace", "grace"),
)
_LAST_NAMES = (
    "Smith",
    "García",
    "Müller",
    "Nowak",
    "O'Brien",
    "Nguyễn",
    "Øberg",
    "Kowalski",
    "Rossi",
    "Dubois",
    "田中",
    "Иванов",
    "Papadopoulos",
    "van der Berg",
    "Silva",
    "Okafor",
)
# 4-byte UTF-8: these break a utf8mb3 column or connection.
_EMOJI = ("🚀", "🌍", "😀", "🐙", "🎉")
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example")
_COUNTRIES = ("US", "GB", "DE", "FR", "ES", "PL", "JP", "BR", "IN", "NG", "SE", "GR")
_CITIES = ("London", "Zürich", "São Paulo", "Kraków", "Tōkyō", "Lagos", "Austin", "Malmö")
_LANGUAGES = ("en", "de", "fr", "es", "pl", "ja", "pt", "el")
_INTERESTS = ("books", "garden", "gaming", "running", "cooking", "travel", "music")
_USER_STATUSES = (("active", "suspended", "closed"), (90, 6, 4))

_TOP_CATEGORIES = (
    "Books",
    "Electronics",
    "Home & Kitchen",
    "Garden",
    "Toys & Games",
    "Sports",
    "Clothing",
    "Beauty",
    "Food & Drink",
    "Crafts",
)
_SUB_CATEGORIES = (
    "Accessories",
    "Essentials",
    "Outdoor",
    "Kids",
    "Vintage",
    "Café & Thé",
    "Storage",
    "Lighting",
    "Audio",
    "Tools",
    "Fitness",
    "Décor",
    "Travel",
    "Gifts",
)

_ADJECTIVES = ("Classic", "Compact", "Deluxe", "Eco", "Smart", "Vintage", "Ultra", "Nordic", "Café")
_MATERIALS = ("Bamboo", "Steel", "Cotton", "Oak", "Glass", "Ceramic", "Leather", "Wool")
_NOUNS = ("Mug", "Lamp", "Backpack", "Notebook", "Chair", "Kettle", "Scarf", "Speaker", "Bottle")
_NAME_SUFFIXES = ("", "", "", "", " – 2 pack", ' "Pro"', " (XL)", " 🎁")
_PRODUCT_TAGS = ("new", "sale", "eco", "gift", "limited")
_PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"

_ORDER_STATUSES = (("pending", "paid", "shipped", "delivered", "cancelled"), (5, 10, 15, 62, 8))
_CURRENCIES = (("EUR", "USD", "GBP", "JPY"), (40, 35, 15, 10))
_QUANTITIES = ((1, 2, 3, 4, 5, 10), (60, 20, 10, 5, 3, 2))
_NOTES = (
    "Leave at the door",
    "Gift wrap, please 🎁",
    'He said "ring twice"\nSecond line',
    "Deliver to C:\\Users\\back\\slash",
    "It's for mum's birthday",
    "Tab\tseparated\tnote",
    "Livraison après 18h, merci",
    "",
)
# Past INT's range, so 32-bit assumptions about BIGINT keys show up.
_FIRST_ORDER_ID = 2_147_483_648


def create_demo_database(
    conn: pymysql.connections.Connection, database: str, *, scale: float = 1.0
) -> dict[str, int]:
    """(Re)create `database` with the demo tables and view; return {table: row count}.

    The data depends only on `scale`: the same call writes byte-identical rows. Any existing
    database of that name is dropped first.
    """
    if not _DATABASE_NAME.fullmatch(database):
        raise ValueError(
            f"demo database name {database!r} must be 1-64 characters of A-Z, a-z, 0-9 or _"
        )
    if not (isinstance(scale, (int, float)) and 0 < scale < float("inf")):
        raise ValueError(f"demo scale must be a positive finite number, got {scale!r}")
    if not str(getattr(conn, "charset", "")).startswith("utf8mb4"):
        raise ValueError(
            "demo data needs a utf8mb4 connection (it contains 4-byte emoji); "
            "connect with charset='utf8mb4'"
        )

    counts = {table: max(1, round(base * scale)) for table, base in _BASE_ROWS.items()}
    categories = _category_rows(counts["categories"])
    users = _user_rows(counts["users"])
    products = _product_rows(counts["products"], categories)
    orders, order_items = _order_rows(counts["orders"], len(users), products)
    rows = {
        "users": users,
        "categories": categories,
        "products": products,
        "orders": orders,
        "order_items": order_items,
    }

    db = f"`{database}`"
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {db}")
        cur.execute(f"CREATE DATABASE {db} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        for table, ddl in _DDL.items():
            cur.execute(ddl.format(db=db))
            _insert(cur, db, table, rows[table])
            conn.commit()
        cur.execute(_VIEW_DDL.format(db=db))
    return {table: len(rows[table]) for table in _DDL}


def _insert(cur: pymysql.cursors.Cursor, db: str, table: str, rows: list[tuple]) -> None:
    columns = _COLUMNS[table]
    # pymysql turns executemany of this exact shape into multi-row INSERT statements.
    # Identifiers are this module's constants and the validated database name.
    sql = (
        f"INSERT INTO {db}.`{table}` ({', '.join(f'`{c}`' for c in columns)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    for start in range(0, len(rows), _CHUNK_ROWS):
        cur.executemany(sql, rows[start : start + _CHUNK_ROWS])


def _rng(table: str) -> random.Random:
    # One generator per table, so resizing one table does not reshuffle the others.
    return random.Random(f"{_SEED}:{table}")


def _cents(amount: int) -> Decimal:
    return Decimal(amount).scaleb(-2)


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def _category_rows(count: int) -> list[tuple]:
    rng = _rng("categories")
    top = min(len(_TOP_CATEGORIES), max(1, count // 5))
    rows = []
    for cid in range(1, count + 1):
        if cid <= top:
            parent, name = None, _TOP_CATEGORIES[cid - 1]
        else:
            # Mostly two levels, some three, so the tree is not uniform.
            parent = (
                rng.randint(top + 1, cid - 1)
                if cid > top + 1 and rng.random() < 0.25
                else rng.randint(1, top)
            )
            name = rng.choice(_SUB_CATEGORIES)
        rows.append((cid, parent, name, f"{_slug(name)}-{cid}"))
    return rows


def _user_rows(count: int) -> list[tuple]:
    rng = _rng("users")
    span = 3 * 365 * _MICROS_PER_DAY
    rows = []
    for uid in range(1, count + 1):
        first, handle = rng.choice(_FIRST_NAMES)
        full_name = f"{first} {rng.choice(_LAST_NAMES)}"
        if rng.random() < 0.03:
            full_name = f"{full_name} {rng.choice(_EMOJI)}"
        roll = rng.random()
        balance = (
            0 if roll < 0.05 else -rng.randint(1, 5_000) if roll < 0.07 else rng.randint(1, 500_000)
        )
        rows.append(
            (
                uid,
                f"{handle}.{uid}@{rng.choice(_EMAIL_DOMAINS)}",
                full_name,
                None if rng.random() < 0.02 else rng.choice(_COUNTRIES),
                rng.choices(*_USER_STATUSES)[0],
                _cents(balance),
                _EPOCH - timedelta(microseconds=rng.randrange(1, span)),
                None if rng.random() < 0.2 else _profile(rng),
            )
        )
    return rows


def _profile(rng: random.Random) -> str:
    profile: dict[str, Any] = {
        "language": rng.choice(_LANGUAGES),
        "newsletter": rng.random() < 0.4,
        "address": {
            "city": rng.choice(_CITIES),
            "postcode": f"{rng.randint(1000, 99999)}",
            "line2": None if rng.random() < 0.7 else f"Flat {rng.randint(1, 80)}",
        },
        "interests": rng.sample(_INTERESTS, rng.randint(0, 3)),
        "loyalty": {
            "tier": rng.choice(("bronze", "silver", "gold")),
            "points": rng.randint(0, 20_000),
        },
    }
    return json.dumps(profile, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _product_rows(count: int, categories: list[tuple]) -> list[tuple]:
    rng = _rng("products")
    leaves = [row[0] for row in categories if row[1] is not None] or [row[0] for row in categories]
    span = 2 * 365 * _MICROS_PER_DAY
    rows = []
    number = 0
    for _ in range(count):
        number += rng.randint(1, 3)  # gaps, so SKUs are not a dense range
        name = (
            f"{rng.choice(_ADJECTIVES)} {rng.choice(_MATERIALS)} {rng.choice(_NOUNS)}"
            f"{rng.choice(_NAME_SUFFIXES)}"
        )
        thumbnail = None
        if rng.random() >= 0.4:
            thumbnail = _PNG_HEADER + rng.randbytes(rng.randint(16, 240))
        rows.append(
            (
                f"SKU-{number:06d}",
                rng.choice(leaves),
                name,
                _cents(rng.randint(99, 99_999)),
                None if rng.random() < 0.1 else rng.randint(5, 25_000),
                ",".join(tag for tag in _PRODUCT_TAGS if rng.random() < 0.2),
                thumbnail,
                _EPOCH - timedelta(microseconds=rng.randrange(1, span)),
            )
        )
    return rows


def _order_rows(
    count: int, user_count: int, products: list[tuple]
) -> tuple[list[tuple], list[tuple]]:
    rng = _rng("orders")
    prices = [(row[0], int(row[3].scaleb(2))) for row in products]
    span = 365 * _MICROS_PER_DAY
    orders = []
    items = []
    order_id = _FIRST_ORDER_ID
    for _ in range(count):
        order_id += rng.randint(1, 3)
        total = 0
        lines = rng.sample(prices, min(len(prices), rng.randint(1, 4)))
        for line_no, (sku, price) in enumerate(lines, start=1):
            quantity = rng.choices(*_QUANTITIES)[0]
            unit_price = price * 9 // 10 if rng.random() < 0.15 else price
            total += quantity * unit_price
            items.append((order_id, line_no, sku, quantity, _cents(unit_price)))
        orders.append(
            (
                order_id,
                rng.randint(1, user_count),
                rng.choices(*_ORDER_STATUSES)[0],
                _cents(total),  # equals the view's amount: a free consistency check
                rng.choices(*_CURRENCIES)[0],
                _EPOCH + timedelta(microseconds=rng.randrange(span)),
                None if rng.random() < 0.85 else rng.choice(_NOTES),
            )
        )
    return orders, items
