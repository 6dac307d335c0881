"""Build the VAT-rate cache that ships with the function.

Run it at build time, before packaging ``function/`` (the Lambda code directory):

    python build_cache.py          # (re)writes function/vat_rates.json from data/vat_rates.csv
    python build_cache.py --check  # exits with status 1 if the shipped file is out of date (for CI)

The CSV is parsed, validated and indexed here, once, so the handler only loads a
small JSON file at Init and never parses, computes or writes anything at runtime.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "data" / "vat_rates.csv"
TARGET = HERE / "function" / "vat_rates.json"

sys.dont_write_bytecode = True  # leave no __pycache__ in the package folder
sys.path.insert(0, str(HERE / "function"))
from vat_names import normalise  # noqa: E402 - the handler's own matching rules


def build(source: bytes) -> str:
    """The cache file's text for the CSV ``source``."""
    rates: dict[str, dict[str, object]] = {}
    aliases: dict[str, str] = {}
    for row in csv.DictReader(io.StringIO(source.decode("utf-8"))):
        code = row["country"].strip().upper()
        if len(code) != 2 or not code.isalpha() or code in rates:
            raise ValueError(f"bad or duplicate country code {code!r}")
        percent = Decimal(row["standard_rate_percent"])
        if not 0 <= percent < 100:
            raise ValueError(f"{code}: rate {percent}% is not a percentage")
        rates[code] = {"name": row["name"].strip(), "rate_bp": int(percent * 100)}  # basis points: no floats
        for alias in [code, row["name"], *row["aliases"].split(";")]:
            key = normalise(alias)
            if not key:
                continue
            if aliases.setdefault(key, code) != code:
                raise ValueError(f"alias {alias!r} names both {aliases[key]} and {code}")
    cache = {"source_sha256": hashlib.sha256(source).hexdigest(), "rates": rates, "aliases": aliases}
    return json.dumps(cache, ensure_ascii=False, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the shipped cache is up to date")
    args = parser.parse_args(argv)
    text = build(SOURCE.read_bytes())
    if args.check:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        print(f"{TARGET.name} is up to date")
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
