"""The benchmark table: N deterministic rows of mixed types, about 100 bytes each."""

from __future__ import annotations

from .common import sql

TABLE = "orders"

DDL = f"""
CREATE TABLE `{TABLE}` (
  `id` BIGINT NOT NULL,
  `customer_id` INT NOT NULL,
  `status` ENUM('new','paid','shipped','delivered','cancelled','refunded') NOT NULL,
  `amount` DECIMAL(12,2) NOT NULL,
  `currency` CHAR(3) NOT NULL,
  `note` VARCHAR(80) NULL,
  `placed_at` DATETIME(3) NOT NULL,
  `attrs` JSON NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""

# Keys start past 2^32 and step by 3 (sparse, BIGINT); every other value is a function of
# seq, so two runs build the same table. Notes are NULL in 1 row of 5, attrs in 1 of 3; a
# few notes carry a tab, a quote, a backslash or a 4-byte character to keep writers honest.
FILL = f"""
INSERT INTO `{TABLE}`
SELECT
  5000000000 + seq * 3,
  1 + (seq * 7919) % 200000,
  ELT(1 + seq % 6, 'new','paid','shipped','delivered','cancelled','refunded'),
  ((seq * 104729) % 10000000) / 100,
  ELT(1 + seq % 3, 'EUR','USD','GBP'),
  CASE
    WHEN seq % 5 = 0 THEN NULL
    WHEN seq % 997 = 0 THEN CONCAT('gift\\tnote "', seq, '" \\\\ 🎁')
    ELSE CONCAT('order ', seq, ' ', LEFT(SHA1(seq), 4 + seq % 24))
  END,
  TIMESTAMPADD(MICROSECOND, (seq % 1000) * 1000,
               TIMESTAMPADD(SECOND, seq * 17, '2021-01-01 00:00:00')),
  CASE
    WHEN seq % 3 = 0 THEN NULL
    ELSE JSON_OBJECT('sku', CONCAT('SKU-', seq % 9973), 'qty', 1 + seq % 7,
                     'price', CAST(((seq * 31) % 100000) / 100 AS DECIMAL(10,2)))
  END
FROM seq_1_to_{{rows}}
"""  # noqa: S608 - constant identifiers; rows is an int


def create(info, database: str, rows: int) -> None:
    """Create `database` with the table of `rows` rows (the SEQUENCE engine feeds it)."""
    sql(
        info,
        f"DROP DATABASE IF EXISTS `{database}`",
        f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4",
    )
    sql(
        info,
        DDL,
        "SET SESSION unique_checks = 0, foreign_key_checks = 0",
        FILL.format(rows=int(rows)),
        f"ANALYZE TABLE `{TABLE}`",
        database=database,
    )


def count(info, database: str) -> int:
    """The table's rows in `database`."""
    return int(sql(info, f"SELECT COUNT(*) FROM `{TABLE}`", database=database)[0][0])  # noqa: S608


def rows_in(info, database: str) -> int | None:
    """The table's rows in `database`, or None when there is no such table yet."""
    try:
        return count(info, database)
    except Exception:  # no such database or table
        return None


def stats(info, database: str) -> dict:
    """Row count and average row length as the server reports them."""
    (count,) = sql(info, f"SELECT COUNT(*) FROM `{TABLE}`", database=database)[0]  # noqa: S608
    ((avg, data),) = sql(
        info,
        "SELECT AVG_ROW_LENGTH, DATA_LENGTH FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        params=(database, TABLE),
    )
    return {"rows": int(count), "avg_row_length": int(avg), "data_length": int(data)}
