#!/usr/bin/env python3
"""Dashboard latency of three alternatives to Footfall's embedded store, on the bench's data.

Usage:
    target/test-tools/bench-venv/bin/python scripts/bench-alternatives.py [--events 500000]
        [--workdir DIR] [--runs 3] [--threads 2] [--memory-gb 4] [--verbose] [--keep]

It generates the same synthetic pageviews as `tests/benches/dashboard.rs` (`events()`), then
for each engine loads them and times the ten questions a dashboard opens with (top stats,
daily series, top pages, sources, browsers, operating systems, countries, entry pages, exit
pages, UTM sources over 30 days), unfiltered and filtered to one source, best of `--runs`:

  datafusion  DataFusion over one Parquet file per UTC day (written with pyarrow, zstd),
              our two statement shapes (event level, session level), grouped by dimension
              and UTC day as `collector/src/query/sql.rs` plans them.
  duckdb      DuckDB over a native table with our schema (`schema/duckdb/0001_init.sql`),
              the same statements in DuckDB's dialect.
  liwan       DuckDB over a table with Liwan v1.6's event schema (session gaps precomputed
              with lag/lead per visitor group, as Liwan's ingest does) and Liwan's own report
              shapes: overall stats, the daily graph (ASOF JOIN over day bins) and eight
              dimension reports by unique visitors. SQL written here from the facts of Liwan's
              `src/app/core/reports/*.rs` and `src/migrations/events/*.sql` (tag liwan-v1.6.0).

It prints a markdown table: | engine | events | load s | ten queries ms | filtered ms | disk MB |
and checks that the datafusion and duckdb answers agree row for row.

Requirements (wheels only; a venv beside the Rust build's tools):
    python3 -m venv target/test-tools/bench-venv
    target/test-tools/bench-venv/bin/pip install --only-binary=:all: \\
        duckdb==1.5.5 datafusion==55.0.0 pyarrow==26.0.1 numpy==2.4.6
Licences: duckdb MIT, datafusion Apache-2.0, pyarrow Apache-2.0, numpy BSD-3-Clause (its
wheel bundles 0BSD/MIT/Zlib/CC0 parts); pulled in by datafusion: cloudpickle BSD-3-Clause,
typing_extensions PSF-2.0. None of them ships in Footfall; the script only measures.
duckdb 1.5.5 is the engine the Rust crate bundles (duckdb ~1.10505.0).
"""

import argparse
import calendar
import datetime as dt
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

try:
    import datafusion
    import duckdb
except ImportError as e:  # pragma: no cover - a hint, not a test
    sys.exit(f"{e}: install the packages listed in this script's header into a venv")

# --- The bench's data (tests/benches/dashboard.rs) -----------------------------------------

NOW = calendar.timegm((2026, 11, 20, 12, 0, 0))
START = NOW - 30 * 86_400
RANGE_FROM = START
RANGE_TO = NOW + 1
SPAN = 2_592_000

SOURCES = [
    ("", "", "Direct"),
    ("google.com", "Google", "Organic Search"),
    ("news.ycombinator.com/item", "Hacker News", "Organic Social"),
    ("github.com/org/repo", "GitHub", "Referral"),
    ("duckduckgo.com", "DuckDuckGo", "Organic Search"),
    ("t.co", "Twitter", "Organic Social"),
    ("bing.com", "Bing", "Organic Search"),
    ("reddit.com/r/rust", "Reddit", "Organic Social"),
    ("linkedin.com", "LinkedIn", "Organic Social"),
    ("ecosia.org", "Ecosia", "Organic Search"),
    ("lobste.rs", "Lobsters", "Referral"),
    ("news.google.com", "Google News", "Referral"),
]
UTM_SOURCES = ["", "", "newsletter", "mastodon", "partner"]
DEVICES = [("Desktop", "Windows"), ("Desktop", "Mac"), ("Mobile", "iOS"), ("Tablet", "Android")]
COUNTRIES = ["DK", "SE", "DE", "US", "GB", "FR", "NL", "NO"]
PAGES = [f"/page/{k}" for k in range(300)]
BROWSERS = [f"Browser {k}" for k in range(40)]

K_VISIT = np.uint64(0x9E3779B97F4A7C15)
K_VISITOR = np.uint64(0xD6E8FEB86659FD93)

# Our schema's columns, in the order of schema/duckdb/0001_init.sql, with their Arrow types.
OUR_SCHEMA = pa.schema(
    [
        ("site_id", pa.uint32()),
        ("timestamp", pa.uint32()),
        ("name", pa.string()),
        ("hostname", pa.string()),
        ("pathname", pa.string()),
        ("visitor_id", pa.uint64()),
        ("session_id", pa.uint64()),
        ("referrer", pa.string()),
        ("referrer_source", pa.string()),
        ("channel", pa.string()),
        ("utm_medium", pa.string()),
        ("utm_source", pa.string()),
        ("utm_campaign", pa.string()),
        ("utm_content", pa.string()),
        ("utm_term", pa.string()),
        ("browser", pa.string()),
        ("browser_version", pa.string()),
        ("os", pa.string()),
        ("os_version", pa.string()),
        ("device", pa.string()),
        ("country_code", pa.string()),
        ("region", pa.string()),
        ("city", pa.string()),
        ("screen_width", pa.uint16()),
        ("props_keys", pa.list_(pa.string())),
        ("props_values", pa.list_(pa.string())),
        ("revenue_micros", pa.int64()),
        ("revenue_currency", pa.string()),
        ("interactive", pa.uint8()),
        ("engagement_ms", pa.uint32()),
        ("scroll_depth", pa.uint8()),
        ("entry_page", pa.string()),
        ("country_name", pa.string()),
        ("region_name", pa.string()),
        ("batch_id", pa.uint64()),
    ]
)


def visit_bases(n):
    """Seconds after START of each visit's first pageview (monotone in the visit)."""
    visits = (n + 3) // 4
    return np.arange(visits, dtype=np.uint64) * np.uint64(SPAN) // np.uint64(n // 4 + 1)


def generate(n, i_lo, i_hi):
    """The raw columns of events i_lo..i_hi as numpy arrays (indices for the text columns)."""
    i = np.arange(i_lo, i_hi, dtype=np.uint64)
    visit = i // np.uint64(4)
    visitor = visit // np.uint64(2)
    h = visit * K_VISIT  # uint64 arithmetic wraps, as Rust's wrapping_mul
    v = visitor * K_VISITOR
    ts = (
        np.uint64(START)
        + visit * np.uint64(SPAN) // np.uint64(n // 4 + 1)
        + (i % np.uint64(4)) * np.uint64(40)
    )
    return {
        "timestamp": ts.astype(np.uint32),
        "path": (((h >> np.uint64(16)) + i * np.uint64(7)) % np.uint64(300)).astype(np.int32),
        "entry": ((h >> np.uint64(16)) % np.uint64(300)).astype(np.int32),
        "visitor_id": v >> np.uint64(1),
        "session_id": h | np.uint64(1),
        "source": (h % np.uint64(12)).astype(np.int32),
        "utm": ((h >> np.uint64(40)) % np.uint64(5)).astype(np.int32),
        "browser": ((v >> np.uint64(12)) % np.uint64(40)).astype(np.int32),
        "device": ((v >> np.uint64(8)) % np.uint64(4)).astype(np.int32),
        "country": ((v >> np.uint64(32)) % np.uint64(8)).astype(np.int32),
    }


def day_slices(n):
    """Yield (UTC day number, raw columns of that day's events), one day at a time."""
    bases = visit_bases(n)
    first_day = START // 86_400
    last_day = (START + int(bases[-1]) + 120) // 86_400
    for day in range(first_day, last_day + 1):
        lo = day * 86_400 - START
        hi = (day + 1) * 86_400 - START
        # Visits with an event in the day: first pageview at most 120 s before it starts.
        v_lo = int(np.searchsorted(bases, np.uint64(max(lo - 120, 0)), side="left"))
        v_hi = int(np.searchsorted(bases, np.uint64(max(hi, 0)), side="left"))
        i_lo, i_hi = 4 * v_lo, min(4 * v_hi, n)
        if i_lo >= i_hi:
            continue
        cols = generate(n, i_lo, i_hi)
        ts = cols["timestamp"]
        keep = (ts >= day * 86_400) & (ts < (day + 1) * 86_400)
        if not keep.all():
            cols = {k: a[keep] for k, a in cols.items()}
        if len(cols["timestamp"]):
            yield day, cols


def text(indices, values):
    """A plain string column from indices into values."""
    dictionary = pa.array(values, pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), dictionary).dictionary_decode()


def const_text(value, m):
    return text(np.zeros(m, dtype=np.int32), [value])


def our_table(cols):
    """A day's events as Arrow rows with our schema (EventRow's defaults elsewhere)."""
    m = len(cols["timestamp"])
    zeros = np.zeros(m, dtype=np.int32)
    empty_lists = pa.ListArray.from_arrays(pa.array(np.zeros(m + 1, dtype=np.int32)), pa.array([], pa.string()))
    src = cols["source"]
    dev = cols["device"]
    arrays = {
        "site_id": pa.array(np.ones(m, dtype=np.uint32)),
        "timestamp": pa.array(cols["timestamp"]),
        "name": const_text("pageview", m),
        "hostname": const_text("example.com", m),
        "pathname": text(cols["path"], PAGES),
        "visitor_id": pa.array(cols["visitor_id"]),
        "session_id": pa.array(cols["session_id"]),
        "referrer": text(src, [s[0] for s in SOURCES]),
        "referrer_source": text(src, [s[1] for s in SOURCES]),
        "channel": text(src, [s[2] for s in SOURCES]),
        "utm_medium": const_text("", m),
        "utm_source": text(cols["utm"], UTM_SOURCES),
        "utm_campaign": const_text("", m),
        "utm_content": const_text("", m),
        "utm_term": const_text("", m),
        "browser": text(cols["browser"], BROWSERS),
        "browser_version": const_text("131", m),
        "os": text(dev, [d[1] for d in DEVICES]),
        "os_version": const_text("10", m),
        "device": text(dev, [d[0] for d in DEVICES]),
        "country_code": text(cols["country"], COUNTRIES),
        "region": const_text("", m),
        "city": const_text("", m),
        "screen_width": pa.array(zeros.astype(np.uint16)),
        "props_keys": empty_lists,
        "props_values": empty_lists,
        "revenue_micros": pa.array(zeros.astype(np.int64)),
        "revenue_currency": const_text("", m),
        "interactive": pa.array(zeros.astype(np.uint8)),
        "engagement_ms": pa.array(zeros.astype(np.uint32)),
        "scroll_depth": pa.array(np.full(m, 255, dtype=np.uint8)),
        "entry_page": text(cols["entry"], PAGES),
        "country_name": const_text("", m),
        "region_name": const_text("", m),
        "batch_id": pa.array(zeros.astype(np.uint64)),
    }
    return pa.Table.from_arrays([arrays[f.name] for f in OUR_SCHEMA], schema=OUR_SCHEMA)


BASE62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)


def group_ids(visitor_id):
    """16 base-62 characters per visitor, the form of Liwan's visitor_group_id."""
    m = len(visitor_id)
    out = np.empty((m, 16), dtype=np.uint8)
    x = visitor_id.copy()
    y = visitor_id * np.uint64(0xFF51AFD7ED558CCD)
    for k in range(16):
        src = x if k < 11 else y
        out[:, k] = BASE62[(src % np.uint64(62)).astype(np.intp)]
        src //= np.uint64(62)
    offsets = pa.py_buffer(np.arange(0, 16 * (m + 1), 16, dtype=np.int32).tobytes())
    return pa.StringArray.from_buffers(m, offsets, pa.py_buffer(out.tobytes()))


def liwan_table(cols):
    """A day's events as Liwan stores them (before its session gaps are filled in)."""
    m = len(cols["timestamp"])
    src = cols["source"]
    dev = cols["device"]
    # Liwan keeps the referrer's host (None when absent) and None for a missing UTM source.
    hosts = [s[0].split("/")[0] or None for s in SOURCES]
    created = pa.array(cols["timestamp"].astype(np.int64) * 1_000_000, pa.timestamp("us"))
    none = pa.nulls(m, pa.string())
    return pa.table(
        {
            "entity_id": const_text("example", m),
            "visitor_group_id": group_ids(cols["visitor_id"]),
            "event": const_text("pageview", m),
            "created_at": created,
            "fqdn": const_text("example.com", m),
            "path": text(cols["path"], PAGES),
            "referrer": text(src, hosts),
            "platform": text(dev, [d[1] for d in DEVICES]),
            "browser": text(cols["browser"], BROWSERS),
            "mobile": pa.array(dev == 2),
            "country": text(cols["country"], COUNTRIES),
            "city": none,
            "utm_source": text(cols["utm"], [u or None for u in UTM_SOURCES]),
            "utm_medium": none,
            "utm_campaign": none,
            "utm_content": none,
            "utm_term": none,
            "screen_width": none,
            "orientation": none,
        }
    )


# --- Our statement shapes (collector/src/query/sql.rs) --------------------------------------

DIMENSIONS = [
    ("page", "pathname"),
    ("source", "referrer_source"),
    ("browser", "browser"),
    ("os", "os"),
    ("country", "country_code"),
    ("entry_page", "entry_page"),
    ("exit_page", None),
    ("utm_source", "utm_source"),
]


def our_questions(dialect, filtered):
    """The ten questions as (label, [SQL, ...]) in 'duckdb' or 'datafusion' dialect."""
    # DataFusion has no `//`; its `/` on integers truncates, DuckDB's `/` gives a double.
    day = "timestamp // 86400" if dialect == "duckdb" else "timestamp / 86400"
    where = (
        f"WHERE site_id = 1 AND timestamp >= {RANGE_FROM} AND timestamp < {RANGE_TO}"
        " AND name != 'engagement'"
    )
    if filtered:
        where += " AND (referrer_source = 'Google')"
    visits = f"site_id = 1 AND timestamp >= {RANGE_FROM} AND timestamp < {RANGE_TO} AND name = 'pageview'"
    # The visit's last pageview, ties to the larger path. DuckDB: the struct max our store
    # uses. DataFusion accepts max(named_struct(...))['p'] too, but has no fast accumulator
    # for a struct max (about 7x slower than this ordered aggregate, same answers).
    if dialect == "duckdb":
        last = "max({'t': timestamp, 'p': pathname}).p"
    else:
        last = "last_value(pathname ORDER BY timestamp, pathname)"
    exits = (
        f"events LEFT JOIN (SELECT session_id, {last} AS exit_page FROM events WHERE {visits}"
        " GROUP BY session_id) AS exits USING (session_id)"
    )

    def event_level(dims, source="events"):
        sel = [f"{d} AS d{k}" for k, d in enumerate(dims)]
        sel += [
            "count(DISTINCT visitor_id) AS visitors",
            "sum(CASE WHEN name = 'pageview' THEN 1 ELSE 0 END) AS pageviews",
            "count(*) AS events",
        ]
        group = ", ".join(f"d{k}" for k in range(len(dims)))
        return f"SELECT {', '.join(sel)} FROM {source} {where} GROUP BY {group}"

    def session_level(dims):
        inner = [f"{d} AS d{k}" for k, d in enumerate(dims)]
        inner += [
            "session_id",
            "sum(CASE WHEN name = 'pageview' THEN 1 ELSE 0 END) AS pv",
            "count(*) AS n",
            "CAST(max(timestamp) AS BIGINT) - CAST(min(timestamp) AS BIGINT) AS dur",
        ]
        group = ", ".join(f"d{k}" for k in range(len(dims)))
        return (
            f"SELECT {group}, count(*) AS visits,"
            " sum(CASE WHEN pv = 1 AND n = 1 THEN 1 ELSE 0 END) AS bounces, sum(dur) AS duration"
            f" FROM (SELECT {', '.join(inner)} FROM events {where} GROUP BY {group}, session_id) AS s"
            f" GROUP BY {group}"
        )

    questions = [
        ("top_stats", [event_level([day]), session_level([day])]),
        # time:day plus the day every statement groups by, as the Rust planner renders it.
        ("daily", [event_level([day, day])]),
    ]
    for label, column in DIMENSIONS:
        if column is None:
            questions.append((label, [event_level(["coalesce(exit_page, '')", day], exits)]))
        else:
            questions.append((label, [event_level([column, day])]))
    return questions


# --- Liwan's report shapes (explodingcamera/liwan, liwan-v1.6.0) ----------------------------

LIWAN_DDL = """
CREATE TABLE events (
    entity_id TEXT NOT NULL,
    visitor_group_id TEXT NOT NULL,
    event TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    fqdn TEXT, path TEXT, referrer TEXT, platform TEXT, browser TEXT, mobile BOOLEAN,
    country TEXT, city TEXT,
    utm_source TEXT, utm_medium TEXT, utm_campaign TEXT, utm_content TEXT, utm_term TEXT,
    time_from_last_event INTERVAL, time_to_next_event INTERVAL,
    screen_width TEXT, orientation TEXT
)
"""
LIWAN_STAGE_COLUMNS = (
    "entity_id, visitor_group_id, event, created_at, fqdn, path, referrer, platform, browser,"
    " mobile, country, city, utm_source, utm_medium, utm_campaign, utm_content, utm_term,"
    " screen_width, orientation"
)
GAP = "INTERVAL 30 MINUTE"  # Liwan's session boundary
NEW_SESSION = f"(time_from_last_event IS NULL OR time_from_last_event > {GAP})"
LAST_IN_SESSION = f"(time_to_next_event IS NULL OR time_to_next_event > {GAP})"
L_VIEWS = "count(created_at)"
L_VISITORS = "count(DISTINCT visitor_group_id)"
L_BOUNCE = (
    f"coalesce(CAST(count(*) FILTER (WHERE {NEW_SESSION} AND {LAST_IN_SESSION}) AS DOUBLE)"
    f" / nullif(count(*) FILTER (WHERE {NEW_SESSION}), 0), 1)"
)
L_TIME = (
    "coalesce(avg(extract(epoch FROM time_to_next_event)) FILTER"
    f" (WHERE time_to_next_event IS NOT NULL AND time_to_next_event <= {GAP}), 0)"
)
LIWAN_DIMENSIONS = [
    ("page", "path", None),
    ("referrer", "referrer", None),
    ("browser", "browser", None),
    ("platform", "platform", None),
    ("country", "country", None),
    ("entry_page", "concat(fqdn, path)", NEW_SESSION),
    ("exit_page", "concat(fqdn, path)", LAST_IN_SESSION),
    ("utm_source", "utm_source", None),
]


def liwan_bins():
    """Daily buckets as Liwan's Rust code cuts them: from the UTC midnight at or before the
    range's start, one per day, the last one ending at the range's end."""
    lo = dt.datetime.fromtimestamp(RANGE_FROM, dt.timezone.utc).replace(tzinfo=None)
    hi = dt.datetime.fromtimestamp(RANGE_TO, dt.timezone.utc).replace(tzinfo=None)
    edge = lo.replace(hour=0, minute=0, second=0, microsecond=0)
    bins = []
    while edge < hi:
        nxt = edge + dt.timedelta(days=1)
        bins.append((edge, min(nxt, hi)))
        edge = nxt
    return bins


def liwan_questions(filtered):
    """Liwan's ten reports as (label, [(SQL, params)])."""
    lo = dt.datetime.fromtimestamp(RANGE_FROM, dt.timezone.utc).replace(tzinfo=None)
    hi = dt.datetime.fromtimestamp(RANGE_TO, dt.timezone.utc).replace(tzinfo=None)
    scope = "event = ?::TEXT AND created_at >= ?::TIMESTAMP AND created_at < ?::TIMESTAMP AND entity_id IN (?)"
    params = ["pageview", lo, hi, "example"]
    extra = ""
    if filtered:
        # Liwan's equality filter on its referrer host (case-insensitive unless strict).
        extra = " AND (referrer ILIKE ?)"
        params = params + ["google.com"]
    rows = (
        "SELECT visitor_group_id, created_at, time_from_last_event, time_to_next_event"
        f" FROM events WHERE {scope}{extra}"
    )
    stats = (
        f"WITH s AS ({rows}) SELECT {L_VIEWS} AS views, {L_VISITORS} AS visitors,"
        f" {L_BOUNCE} AS bounce_rate, {L_TIME} AS avg_time FROM s"
    )
    bins = liwan_bins()
    bin_values = ", ".join(f"({k}, ?::TIMESTAMP, ?::TIMESTAMP)" for k in range(len(bins)))
    bin_params = [t for pair in bins for t in pair]
    graph = (
        f"WITH bins(idx, lo, hi) AS (VALUES {bin_values}), s AS ({rows}),"
        " binned AS (SELECT b.idx, x.* FROM (SELECT * FROM s ORDER BY created_at) AS x"
        " ASOF JOIN (SELECT * FROM bins ORDER BY lo) AS b ON x.created_at >= b.lo"
        " WHERE x.created_at < b.hi),"
        f" per_bin AS (SELECT idx, {L_VISITORS} AS val FROM binned GROUP BY idx)"
        " SELECT b.lo, coalesce(p.val, 0) AS val FROM bins AS b LEFT JOIN per_bin AS p"
        " ON b.idx = p.idx ORDER BY b.idx"
    )
    questions = [("overall_stats", [(stats, params)]), ("graph", [(graph, bin_params + params)])]
    for label, column, only in LIWAN_DIMENSIONS:
        restrict = f" AND ({only})" if only else ""
        sql = (
            f"WITH s AS (SELECT coalesce({column}, 'Unknown') AS value, visitor_group_id, created_at,"
            f" time_from_last_event, time_to_next_event FROM events WHERE {scope}{extra}{restrict})"
            f" SELECT value, {L_VISITORS} AS metric FROM s GROUP BY value ORDER BY metric DESC"
        )
        questions.append((label, [(sql, params)]))
    return questions


# --- Running ---------------------------------------------------------------------------------


def size_of(path):
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def best_of(runs, run_once, verbose, label):
    """Best total wall time in ms over `runs` runs of the ten questions, and the last answers."""
    best, answers = float("inf"), None
    for _ in range(max(runs, 1)):
        started = time.perf_counter()
        answers, times = run_once()
        best = min(best, (time.perf_counter() - started) * 1000)
        if verbose:
            print(f"  {label}: " + ", ".join(f"{q} {t:.0f}" for q, t in times), file=sys.stderr)
    return best, answers


def time_engine(args, label, execute, questions, answers):
    """Best times of the unfiltered and filtered questions (`questions(filtered)`); the
    answers are kept under `label` and `label + "_f"`."""
    ms, answers[label] = best_of(
        args.runs, lambda: timed_questions(execute, questions(False)), args.verbose, label)
    f_ms, answers[label + "_f"] = best_of(
        args.runs, lambda: timed_questions(execute, questions(True)), args.verbose, f"{label} filtered")
    return ms, f_ms


def timed_questions(execute, questions):
    answers, times = {}, []
    for label, statements in questions:
        t = time.perf_counter()
        answers[label] = [execute(s) for s in statements]
        times.append((label, (time.perf_counter() - t) * 1000))
    return answers, times


def normalise(table):
    """An answer as sorted tuples of plain Python values, for comparing engines."""
    rows = [tuple(int(v) if hasattr(v, "as_integer_ratio") and not isinstance(v, float) else v
                  for v in r.values()) for r in table.to_pylist()]
    return sorted(rows, key=repr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--memory-gb", type=float, default=4.0, help="each engine's memory cap")
    ap.add_argument("--workdir", help="where the stores go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the stores afterwards")
    ap.add_argument("--verbose", action="store_true", help="per-question times on stderr")
    args = ap.parse_args()
    n = args.events
    root = Path(tempfile.mkdtemp(prefix="footfall-alt-", dir=args.workdir))
    pq_dir = root / "parquet"
    pq_dir.mkdir()
    our_db = root / "ours.duckdb"
    liwan_db = root / "liwan.duckdb"
    stage_db = root / "liwan-stage.duckdb"
    mem = f"{int(args.memory_gb * 1024)}MB"
    load = {"datafusion": 0.0, "duckdb": 0.0, "liwan": 0.0}
    schema_sql = (Path(__file__).resolve().parent.parent / "schema/duckdb/0001_init.sql").read_text()

    try:
        # One pass over the days: generate a day, then hand it to each store in turn.
        ours = duckdb.connect(str(our_db), config={"threads": args.threads, "memory_limit": mem})
        ours.execute(schema_sql)
        stage = duckdb.connect(str(stage_db), config={"threads": args.threads, "memory_limit": mem})
        stage.execute(LIWAN_DDL.replace("time_from_last_event INTERVAL, time_to_next_event INTERVAL,", ""))
        gen_s, rows = 0.0, 0
        for day, cols in day_slices(n):
            t = time.perf_counter()
            table = our_table(cols)
            gen_s += time.perf_counter() - t
            rows += table.num_rows

            t = time.perf_counter()
            stamp = dt.datetime.fromtimestamp(day * 86_400, dt.timezone.utc).strftime("%Y%m%d")
            pq.write_table(table, pq_dir / f"events-{stamp}.parquet", compression="zstd")
            load["datafusion"] += time.perf_counter() - t

            t = time.perf_counter()
            ours.register("day_rows", table)
            ours.execute("INSERT INTO events BY NAME SELECT * FROM day_rows")
            ours.unregister("day_rows")
            load["duckdb"] += time.perf_counter() - t

            t = time.perf_counter()
            liwan_rows = liwan_table(cols)
            gen_s += time.perf_counter() - t
            t = time.perf_counter()
            stage.register("day_rows", liwan_rows)
            stage.execute(f"INSERT INTO events ({LIWAN_STAGE_COLUMNS}) SELECT {LIWAN_STAGE_COLUMNS} FROM day_rows")
            stage.unregister("day_rows")
            load["liwan"] += time.perf_counter() - t
        assert rows == n, (rows, n)
        t = time.perf_counter()
        ours.execute("CHECKPOINT")
        ours.close()
        load["duckdb"] += time.perf_counter() - t
        stage.close()

        # Liwan's ingest fills the gaps to the visitor group's previous and next events with
        # lag/lead; done here once over all rows, in time order as events arrive.
        t = time.perf_counter()
        lw = duckdb.connect(str(liwan_db), config={"threads": args.threads, "memory_limit": mem})
        lw.execute(LIWAN_DDL)
        lw.execute(f"ATTACH '{stage_db}' AS stage (READ_ONLY)")
        lw.execute(
            f"INSERT INTO events ({LIWAN_STAGE_COLUMNS}, time_from_last_event, time_to_next_event)"
            f" SELECT {LIWAN_STAGE_COLUMNS},"
            " created_at - lag(created_at) OVER w, lead(created_at) OVER w - created_at"
            " FROM stage.events WINDOW w AS (PARTITION BY visitor_group_id ORDER BY created_at)"
            " ORDER BY created_at"
        )
        lw.execute("DETACH stage")
        lw.execute("CHECKPOINT")
        lw.close()
        load["liwan"] += time.perf_counter() - t
        stage_db.unlink()
        print(f"generated {n} events in {gen_s:.1f} s (not in load s); peak RSS {rss_mb():.0f} MB",
              file=sys.stderr)

        results = []
        answers = {}

        # (a) DataFusion over the Parquet files.
        runtime = datafusion.RuntimeEnvBuilder().with_greedy_memory_pool(int(args.memory_gb * 2**30))
        config = datafusion.SessionConfig().with_target_partitions(args.threads)
        ctx = datafusion.SessionContext(config, runtime)
        ctx.register_parquet("events", str(pq_dir))

        def df_exec(sql):
            return ctx.sql(sql).to_arrow_table()

        df_ms, df_f_ms = time_engine(
            args, "datafusion", df_exec, lambda f: our_questions("datafusion", f), answers)
        results.append(("datafusion + parquet", load["datafusion"], df_ms, df_f_ms, size_of(pq_dir)))
        del ctx

        # (b) DuckDB, our schema and statements.
        con = duckdb.connect(str(our_db), config={"threads": args.threads, "memory_limit": mem})

        def dd_exec(sql):
            return con.execute(sql).to_arrow_table()

        dd_ms, dd_f_ms = time_engine(
            args, "duckdb", dd_exec, lambda f: our_questions("duckdb", f), answers)
        con.close()
        results.append(("duckdb (our schema)", load["duckdb"], dd_ms, dd_f_ms, size_of(our_db)))

        # (c) DuckDB, Liwan's schema and reports.
        con = duckdb.connect(str(liwan_db), config={"threads": args.threads, "memory_limit": mem})

        def lw_exec(statement):
            sql, params = statement
            return con.execute(sql, params).to_arrow_table()

        lw_ms, lw_f_ms = time_engine(args, "liwan", lw_exec, liwan_questions, answers)
        con.close()
        results.append(("liwan shapes (duckdb)", load["liwan"], lw_ms, lw_f_ms, size_of(liwan_db)))

        # The two engines running our statements must agree on every answer.
        problems = []
        for suffix in ("", "_f"):
            a, b = answers["datafusion" + suffix], answers["duckdb" + suffix]
            for q in a:
                for k, (ta, tb) in enumerate(zip(a[q], b[q])):
                    if normalise(ta) != normalise(tb):
                        problems.append(f"{q}{suffix} statement {k + 1}")
        for suffix, what in (("", "unfiltered"), ("_f", "filtered")):
            totals = []
            for engine in ("datafusion", "duckdb"):
                ev, se = answers[engine + suffix]["top_stats"]
                ev_rows = ev.to_pylist()
                se_rows = se.to_pylist()
                totals.append((
                    engine,
                    sum(int(r["visitors"]) for r in ev_rows),
                    sum(int(r["pageviews"]) for r in ev_rows),
                    sum(int(r["visits"]) for r in se_rows),
                    sum(int(r["bounces"]) for r in se_rows),
                ))
            lw_stats = answers["liwan" + suffix]["overall_stats"][0].to_pylist()[0]
            print(f"top stats {what}: " + "; ".join(
                f"{e}: visitors {v} (sum of daily), pageviews {p}, visits {s}, bounces {b}" for e, v, p, s, b in totals)
                + f"; liwan: unique visitors {lw_stats['visitors']} (whole range), views {lw_stats['views']},"
                f" bounce rate {lw_stats['bounce_rate']:.3f}, avg time {lw_stats['avg_time']:.1f} s", file=sys.stderr)
            if totals[0][1:] != totals[1][1:]:
                problems.append(f"top stats totals ({what})")
        print(f"peak RSS {rss_mb():.0f} MB", file=sys.stderr)

        print("| engine | events | load s | ten queries ms | filtered ms | disk MB |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, load_s, ms, f_ms, size in results:
            print(f"| {name} | {n} | {load_s:.1f} | {ms:.0f} | {f_ms:.0f} | {size / 1e6:.1f} |")
        if problems:
            print("datafusion and duckdb disagree on: " + ", ".join(problems), file=sys.stderr)
            return 1
        print("datafusion and duckdb agree on all ten questions, unfiltered and filtered", file=sys.stderr)
        return 0
    finally:
        if args.keep:
            print(f"stores kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
