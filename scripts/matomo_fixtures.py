#!/usr/bin/env python3
"""Turns Matomo device-detector's YAML test fixtures (inside the PyPI wheel
`device-detector`) into JSON lines for tests/tests/corpora.rs:

- matomo-browsers.jsonl: {"ua", "browser", "os", "device"} for every fixture whose client is a
  browser, with Matomo's names (those Plausible stores); fixtures that need client-hint headers
  to be read are left out, as are apps, media players, feed readers and bots;
- matomo-bots.jsonl: {"ua", "name", "category"} for every bot fixture.

usage: matomo_fixtures.py WHEEL OUT_DIR
"""
import json
import pathlib
import sys
import zipfile

import yaml

PREFIX = "device_detector/tests/fixtures/upstream/"
NOT_BROWSERS = ("bots", "feed_reader", "podcasting", "mobile_apps", "mediaplayer",
                "clienthints", "clienthints-app", "unknown", "peripheral")


def main() -> None:
    wheel, out = sys.argv[1], pathlib.Path(sys.argv[2])
    browsers, bots, seen = [], [], set()
    with zipfile.ZipFile(wheel) as z:
        for name in sorted(z.namelist()):
            if not (name.startswith(PREFIX) and name.endswith(".yml")):
                continue
            stem = name[len(PREFIX):-len(".yml")]
            cases = yaml.safe_load(z.read(name)) or []
            if stem == "bots":
                for c in cases:
                    bot = c.get("bot") or {}
                    bots.append({"ua": c["user_agent"], "name": bot.get("name") or "",
                                 "category": bot.get("category") or ""})
                continue
            if stem in NOT_BROWSERS:
                continue
            for c in cases:
                client = c.get("client") or {}
                ua = c.get("user_agent")
                if not ua or c.get("headers") or client.get("type") != "browser" or ua in seen:
                    continue
                seen.add(ua)
                browsers.append({
                    "ua": ua,
                    "browser": client.get("name") or "",
                    "os": (c.get("os") or {}).get("name") or "",
                    "device": (c.get("device") or {}).get("type") or "",
                })
    for file, rows in (("matomo-browsers.jsonl", browsers), ("matomo-bots.jsonl", bots)):
        with open(out / file, "w") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(browsers)} browser and {len(bots)} bot user-agents from {pathlib.Path(wheel).name}")


if __name__ == "__main__":
    main()
