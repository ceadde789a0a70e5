"""Counts an NCSA combined access log by the rules the README states for
`footfall import access-log`, without any of Footfall's code, for the test that imports a
public log (tests/tests/corpora.rs, `corpus_public_access_log`).

Usage: count_access_log.py LOG EXCLUDE... > counts.json

Rules, in the order the README gives them: a line that is not `host ident user [time]
"METHOD target [protocol]" status size "referrer" "user-agent"`, with a METHOD of capital
letters, is malformed; a pageview is a GET answered 2xx
or 304, not for an endpoint that answers scripts and not for a file with an asset extension,
and not under an --exclude pattern. Crawlers and HTTP clients are told by Matomo's
device-detector (PyPI `device-detector`, LGPL-3.0), a classifier Footfall does not use: a bot,
a `library` client, or no user-agent; and the user-agents in REVIEWED, which device-detector
takes for people and which we read one by one and judged to be programs (each with the
reason). Visitors are distinct (address, user-agent) pairs per
UTC day among the pageviews of people.
"""

import fnmatch
import json
import re
import sys
from collections import Counter, defaultdict
from datetime import datetime, timezone

from device_detector import DeviceDetector

LINE = re.compile(
    r'^(?P<ip>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<request>(?:[^"\\]|\\.)*)" '
    r'(?P<status>\d{3}) \S+ "(?P<referrer>(?:[^"\\]|\\.)*)" "(?P<ua>(?:[^"\\]|\\.)*)"'
)
ASSETS = set(
    "7z avi avif bmp br css csv doc docx eot epub exe flac gif gz ico jpeg jpg js json map "
    "mjs mov mp3 mp4 ogg otf pdf png ppt pptx rar rss svg tar tgz tif tiff ttf txt wasm wav "
    "webm webmanifest webp woff woff2 xls xlsx xml zip".split()
)
ENDPOINTS = [
    "/socket.io/*",
    "/sockjs-node/*",
    "/.well-known/*",
    "/wp-json/*",
    "/wp-admin/admin-ajax.php",
    "/wp-cron.php",
    "/xmlrpc.php",
    "/graphql",
    "/cdn-cgi/*",
]

# User-agents device-detector does not list, judged by reading them: programs, not people.
REVIEWED = [
    ("Reeder/", "a feed reader's app fetching an article, not a reader's visit"),
    ("Winds: Open Source RSS", "a feed and podcast aggregator's server"),
    ("Pleroma ", "a fediverse server fetching a link preview (it says `Bot`)"),
    ("ansible-httpget", "Ansible's HTTP module"),
    ("xbps-src-update-check", "Void Linux's package update checker"),
    ("Embed PHP library", "a PHP library reading a page's embed data"),
    ("favicon)", "a favicon fetcher (github.com/ArthurHoaro/favicon)"),
    ("SaaSHub", "a directory site's checker"),
]


def matches(pattern, path):
    # fnmatch's `*` is any run of characters, as in Footfall's patterns; `[` and `?` are
    # taken literally.
    return fnmatch.fnmatchcase(path, pattern.replace("[", "[[]").replace("?", "[?]"))


def main():
    log, excludes = sys.argv[1], sys.argv[2:]
    counts = Counter()
    bots = {}
    lines_of = Counter()
    detector = {}
    people = defaultdict(lambda: [0, set()])
    with open(log, "rb") as f:
        for raw in f:
            counts["lines"] += 1
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            m = LINE.match(line)
            parts = m["request"].split(" ") if m else []
            try:
                when = datetime.strptime(m["time"], "%d/%b/%Y:%H:%M:%S %z") if m else None
            except ValueError:
                when = None
            if (
                not m
                or when is None
                or len(parts) not in (2, 3)
                or not re.fullmatch(r"[A-Z]+", parts[0])
                or not parts[1]
            ):
                counts["malformed"] += 1
                continue
            method, target = parts[0], parts[1]
            status = int(m["status"])
            if method != "GET":
                counts["not_get"] += 1
                continue
            if not (200 <= status < 300 or status == 304):
                counts["not_success"] += 1
                continue
            path = re.split(r"[?#]", target, maxsplit=1)[0]
            if any(matches(e, path) for e in ENDPOINTS):
                counts["endpoint"] += 1
                continue
            last = path.rsplit("/", 1)[-1]
            if "." in last and last.rsplit(".", 1)[1].lower() in ASSETS:
                counts["asset"] += 1
                continue
            if any(matches(e, path) for e in excludes):
                counts["excluded"] += 1
                continue
            counts["candidates"] += 1
            ua = m["ua"]
            if ua not in bots:
                d = DeviceDetector(ua).parse()
                listed = ua in ("", "-") or d.is_bot() or d.client_type() == "library"
                reviewed = any(r in ua for r, _ in REVIEWED)
                bots[ua] = listed or reviewed
                detector[ua] = listed
            lines_of[ua] += 1
            if bots[ua]:
                counts["bots"] += 1
                continue
            day = when.astimezone(timezone.utc).date().isoformat()
            people[day][0] += 1
            people[day][1].add((m["ip"], ua))
    counts["user_agents"] = len(bots)
    counts["bot_user_agents"] = sum(bots.values())
    result = dict(counts)
    # Each user-agent of a page request: its lines, whether it is a bot, and whether
    # device-detector alone says so.
    result["user_agent_verdicts"] = {
        ua: [lines_of[ua], bots[ua], detector[ua]] for ua in sorted(bots)
    }
    result["days"] = {
        day: {"pageviews": pv, "visitors": len(visitors)}
        for day, (pv, visitors) in sorted(people.items())
    }
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
