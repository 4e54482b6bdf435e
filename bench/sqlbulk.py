"""Fast, untimed loading of W3's future rows: copy the seed rows an implementation wrote through its
own API ``factor`` times over in one ``INSERT ... SELECT``, with new ids.

Works on any table whose id column is a string (the seeds' ids get ``-0000001``... appended) or an
auto-increment integer (left out, so the database numbers the copies). Every other column is
copied as it is, so the copies are rows the implementation itself would have written, whatever
columns its current schema has; only their ids differ, and the start times repeat (each of the
seeds' start times ``factor`` times).
"""

from __future__ import annotations

import sqlite3
from typing import Any


def multiply_mysql(conn: Any, table: str, id_column: str, factor: int) -> None:
    """MariaDB/MySQL, on a PyMySQL connection: ``table`` ends with ``factor`` times its rows."""
    if factor <= 1:
        return
    with conn.cursor() as cur:
        cur.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = %s ORDER BY ordinal_position",
            (table,),
        )
        columns = [row[0] for row in cur.fetchall()]
        if id_column not in columns:
            raise RuntimeError(f"table {table!r} has no column {id_column!r}: {columns}")
        cur.execute("DROP TEMPORARY TABLE IF EXISTS bench_seeds, bench_numbers")
        cur.execute(f"CREATE TEMPORARY TABLE bench_seeds AS SELECT * FROM `{table}`")
        cur.execute("CREATE TEMPORARY TABLE bench_numbers (n INT PRIMARY KEY)")
        cur.executemany("INSERT INTO bench_numbers VALUES (%s)", [(n,) for n in range(1, factor)])
        exprs = ", ".join(
            f"CONCAT(s.`{c}`, '-', LPAD(q.n, 7, '0'))" if c == id_column else f"s.`{c}`"
            for c in columns
        )
        names = ", ".join(f"`{c}`" for c in columns)
        # Seeds outside, numbers inside: the new ids arrive in primary-key order (faster).
        cur.execute(
            f"INSERT INTO `{table}` ({names}) SELECT {exprs} "
            "FROM bench_seeds s STRAIGHT_JOIN bench_numbers q ORDER BY NULL"
        )
        cur.execute("DROP TEMPORARY TABLE bench_seeds, bench_numbers")
    conn.commit()


def multiply_sqlite(
    conn: sqlite3.Connection, table: str, id_column: str, factor: int, *, autoincrement: bool
) -> None:
    """SQLite: ``table`` ends with ``factor`` times its rows (``autoincrement``: ids renumbered)."""
    if factor <= 1:
        return
    columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]
    if id_column not in columns:
        raise RuntimeError(f"table {table!r} has no column {id_column!r}: {columns}")
    if autoincrement:
        columns.remove(id_column)
    exprs = ", ".join(
        f"s.\"{c}\" || '-' || printf('%07d', q.n)" if c == id_column else f's."{c}"'
        for c in columns
    )
    names = ", ".join(f'"{c}"' for c in columns)
    conn.execute("BEGIN")
    conn.execute(f'CREATE TEMP TABLE bench_seeds AS SELECT * FROM "{table}"')
    conn.execute(
        f"WITH RECURSIVE q(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM q WHERE n < {factor - 1}) "
        f'INSERT INTO "{table}" ({names}) SELECT {exprs} FROM bench_seeds s CROSS JOIN q'
    )
    conn.execute("DROP TABLE bench_seeds")
    conn.execute("COMMIT")
