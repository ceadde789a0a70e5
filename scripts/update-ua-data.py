#!/usr/bin/env python3
"""Refreshes the user-agent data Footfall compiles in (collector/data/), from package registries.

    python3 scripts/update-ua-data.py

- crawler-user-agents.txt: the `pattern` of every entry of monperrus/crawler-user-agents
  (MIT; PyPI `crawler-user-agents`), one per line, matched case-sensitively.
- uap-regexes.json: the ua-parser project's uap-core rules (Apache-2.0), rebuilt in
  regexes.yaml's shape from PyPI `ua-parser-builtins`, which ships them as Python calls.

- isbot-patterns.txt is edited by hand (isbot's patterns need rewriting where they use
  look-around, which Rust's `regex` lacks): the script fetches npm `isbot` and prints the
  patterns it has that the file neither uses nor names in its header, and those it dropped.

Pin new versions below, run, review the diff, run the tests (the corpus tests measure recall,
false positives and accuracy again), commit. Footfall's own additions
(extra-bot-patterns.txt, crawler-user-agents.skip.txt) are edited by hand.
"""
import json
import pathlib
import subprocess
import sys
import tempfile
import types
import zipfile

CRAWLER_USER_AGENTS = "1.67.0"
UA_PARSER_BUILTINS = "202610"
ISBOT = "5.2.3"
DATA = pathlib.Path(__file__).resolve().parent.parent / "collector" / "data"


def download(package: str, version: str, into: str) -> pathlib.Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "-d", into, f"{package}=={version}"],
        check=True,
    )
    return next(pathlib.Path(into).glob("*.whl"))


def crawler_patterns(wheel: pathlib.Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        entries = json.loads(z.read("crawleruseragents/crawler-user-agents.json"))
        (DATA / "crawler-user-agents.LICENSE").write_bytes(
            next(z.read(n) for n in z.namelist() if n.endswith("/LICENSE"))
        )
    patterns = [e["pattern"] for e in entries]
    if any("\n" in p for p in patterns):
        raise SystemExit("a pattern spans lines")
    return patterns


def uap_rules(wheel: pathlib.Path) -> tuple[dict, str]:
    """The wheel's matchers.py calls UserAgentMatcher(regex, family, v1, …) etc. with the
    arguments in regexes.yaml's key order: run it against stand-ins that record them."""
    keys = {
        "UserAgentMatcher": ("user_agent_parsers", ["regex", "family_replacement",
                             "v1_replacement", "v2_replacement", "v3_replacement",
                             "v4_replacement"]),
        "OSMatcher": ("os_parsers", ["regex", "os_replacement", "os_v1_replacement",
                      "os_v2_replacement", "os_v3_replacement", "os_v4_replacement"]),
        "DeviceMatcher": ("device_parsers", ["regex", "regex_flag", "device_replacement",
                          "brand_replacement", "model_replacement"]),
    }
    rules: dict[str, list] = {section: [] for section, _ in keys.values()}

    def recorder(name: str):
        section, fields = keys[name]

        def record(*args):
            rules[section].append({k: v for k, v in zip(fields, args) if v is not None})

        return record

    stub = types.ModuleType("ua_parser.matchers")
    for name in keys:
        setattr(stub, name, recorder(name))
    sys.modules["ua_parser"] = types.ModuleType("ua_parser")
    sys.modules["ua_parser.matchers"] = stub
    with zipfile.ZipFile(wheel) as z:
        source = z.read("ua_parser_builtins/matchers.py").decode()
        revision = z.read("REVISION").decode().strip()
    exec(compile(source, "matchers.py", "exec"), {})
    return rules, revision


def isbot_news() -> None:
    """Compares npm isbot's list with isbot-patterns.txt (lines and the originals its header
    names as rewritten or dropped)."""
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["npm", "pack", "-s", f"isbot@{ISBOT}", "--pack-destination", d],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["tar", "-xzf", next(pathlib.Path(d).glob("*.tgz")), "-C", d], check=True)
        out = subprocess.run(
            ["node", "-e", "console.log(JSON.stringify(require(process.argv[1]).list))",
             str(pathlib.Path(d) / "package" / "index.js")],
            check=True, capture_output=True, text=True).stdout
    upstream = set(json.loads(out))
    known = set()
    for line in (DATA / "isbot-patterns.txt").read_text().splitlines():
        if line.startswith("#  "):
            parts = line[3:].split(None, 1)
            if len(parts) == 2 and parts[0] in ("exact", "narrowed", "dropped"):
                known.add(parts[1].rstrip())
        elif line and not line.startswith("#"):
            known.add(line.replace("\\x20", " "))
    new = sorted(p for p in upstream if p.rstrip() not in known and p not in known)
    print(f"isbot {ISBOT}: {len(upstream)} patterns; not in isbot-patterns.txt: {new or 'none'}")


def main() -> None:
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        patterns = crawler_patterns(download("crawler-user-agents", CRAWLER_USER_AGENTS, a))
        rules, revision = uap_rules(download("ua-parser-builtins", UA_PARSER_BUILTINS, b))
    header = (f"# monperrus/crawler-user-agents {CRAWLER_USER_AGENTS} (MIT, see "
              "crawler-user-agents.LICENSE), written by scripts/update-ua-data.py\n")
    (DATA / "crawler-user-agents.txt").write_text(header + "\n".join(patterns) + "\n")
    rules = {"uap_core_revision": revision, **rules}
    (DATA / "uap-regexes.json").write_text(json.dumps(rules, ensure_ascii=False, indent=0) + "\n")
    print(f"{len(patterns)} crawler patterns; uap-core {revision}: "
          + ", ".join(f"{k} {len(v)}" for k, v in rules.items() if isinstance(v, list)))
    isbot_news()


if __name__ == "__main__":
    main()
