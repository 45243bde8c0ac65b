#!/usr/bin/env python3
"""What recording an impression costs SQLite, per table layout (issue 5's recommendation path).

Every recommendation response is stored as one `impressions` row (migrations/sqlite/0003), in
batches of 20,000 per transaction as the server's writer gathers them, in WAL mode with
synchronous=FULL and the writer's 64 MiB page cache. This inserts the same synthetic rows
(ULID-ordered ids, ten items each, users drawn at random) into each layout and prints the time
per row, so the layouts compare within one run on a noisy machine:

  current          the schema as migrated: rowid table, primary-key index, (user_id, shown_ms)
                   and (shown_ms) indexes
  without_rowid    the same with the row kept in the primary key's tree
  no_user_index    the current schema without (user_id, shown_ms): what that index costs
  pk_only          only the row in its primary key's tree: the floor of any layout that keeps
                   a row per response (it cannot answer "this user's newest responses")
  grouped          pk_only, plus one row per user per transaction listing that user's
                   responses, indexed by (user_id, time): a per-user read at one random index
                   entry per user and flush instead of per response (timed with the Python
                   that groups the batch, so it is a little pessimistic)

Python's sqlite3 module links its own SQLite, so the absolute times differ from the server's;
the ratios are the point.

  python3 scripts/impression-write-cost.py [USERS] [BATCHES]    # defaults: 943 users, 15 batches
"""
import os
import random
import sqlite3
import sys
import tempfile
import time

COLUMNS = """recommendation_id TEXT PRIMARY KEY, user_id TEXT NOT NULL,
    model_version INTEGER NOT NULL, arm TEXT NOT NULL, experiment INTEGER NOT NULL,
    source TEXT NOT NULL, items TEXT NOT NULL, shown_ms INTEGER NOT NULL"""
USER_INDEX = "CREATE INDEX impressions_user ON impressions (user_id, shown_ms);"
SHOWN_INDEX = "CREATE INDEX impressions_shown ON impressions (shown_ms);"
LAYOUTS = {
    "current": f"CREATE TABLE impressions ({COLUMNS}); {USER_INDEX} {SHOWN_INDEX}",
    "without_rowid": f"CREATE TABLE impressions ({COLUMNS}) WITHOUT ROWID; {USER_INDEX} {SHOWN_INDEX}",
    "no_user_index": f"CREATE TABLE impressions ({COLUMNS}); {SHOWN_INDEX}",
    "pk_only": f"CREATE TABLE impressions ({COLUMNS}) WITHOUT ROWID;",
    "grouped": f"CREATE TABLE impressions ({COLUMNS}) WITHOUT ROWID; "
    "CREATE TABLE impression_groups (user_id TEXT NOT NULL, flushed_ms INTEGER NOT NULL, "
    "responses TEXT NOT NULL); "
    "CREATE INDEX impression_groups_user ON impression_groups (user_id, flushed_ms);"
    "CREATE INDEX impression_groups_flushed ON impression_groups (flushed_ms);",
}
BATCH = 20_000
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(ms, rng):
    time_part = "".join(CROCKFORD[(ms >> (5 * (9 - i))) & 31] for i in range(10))
    return time_part + "".join(rng.choice(CROCKFORD) for _ in range(16))


def batches(users, count):
    """The same rows for every layout: ~30 responses per millisecond, as under load."""
    rng = random.Random(1)
    ms = 1_790_000_000_000
    out = []
    for _ in range(count):
        rows = []
        for j in range(BATCH):
            ms += j % 30 == 0
            items = "\n".join(f"i{rng.randrange(1682)}" for _ in range(10))
            rows.append((ulid(ms, rng) + "-v1", f"u{rng.randrange(users)}", 1, "champion", 0,
                         "personalized", items, ms))
        out.append(rows)
    return out


def per_row_us(layout, rows_by_batch, directory):
    path = os.path.join(directory, f"{layout}.db")
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "cache_size=-65536"):
        db.execute(f"PRAGMA {pragma}")
    db.executescript(LAYOUTS[layout])
    spent = 0.0
    for rows in rows_by_batch:
        start = time.perf_counter()
        db.execute("BEGIN")
        db.executemany("INSERT OR IGNORE INTO impressions VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        if layout == "grouped":
            by_user = {}
            for r in rows:
                by_user.setdefault(r[1], []).append(f"{r[0]}\t{r[7]}\t{r[6]}")
            db.executemany("INSERT INTO impression_groups VALUES (?, ?, ?)",
                           [(u, rows[-1][7], "\x1e".join(v)) for u, v in by_user.items()])
        db.execute("COMMIT")
        spent += time.perf_counter() - start
    db.close()
    return spent / (len(rows_by_batch) * BATCH) * 1e6


def main():
    users = int(sys.argv[1]) if len(sys.argv) > 1 else 943
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    rows_by_batch = batches(users, count)
    print(f"{count} batches of {BATCH} impressions, {users} users, SQLite {sqlite3.sqlite_version}")
    with tempfile.TemporaryDirectory() as directory:
        # Two rounds, interleaved, so a noisy minute hits every layout.
        for round_ in (1, 2):
            for layout in LAYOUTS:
                for suffix in ("", "-wal", "-shm"):
                    try:
                        os.remove(os.path.join(directory, f"{layout}.db{suffix}"))
                    except FileNotFoundError:
                        pass
                us = per_row_us(layout, rows_by_batch, directory)
                print(f"round {round_}  {layout:<14} {us:6.2f} µs per impression")


if __name__ == "__main__":
    main()
