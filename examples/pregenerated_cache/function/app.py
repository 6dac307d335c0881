"""VAT for a net amount, from a cache built at build time and shipped with the code.

``vat_rates.json`` sits next to this module in the deployment package (read-only
/var/task on Lambda). It is loaded once, at Init, and only read afterwards: every
instance, cold or warm, of this version has exactly the same cache, and a new
version's cache arrives with its code. Nothing is written to /tmp.
"""

import json
import os

from vat_names import normalise

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "vat_rates.json"), encoding="utf-8") as f:
    CACHE = json.load(f)


def handler(event, context):
    query = event["country"]
    code = CACHE["aliases"].get(normalise(query))
    if code is None:
        raise ValueError(f"Unknown country: {query!r}")
    rate_bp = CACHE["rates"][code]["rate_bp"]
    net = int(event["net_cents"])
    vat = (net * rate_bp + 5000) // 10000  # whole cents, half up
    return {
        "country": code,
        "name": CACHE["rates"][code]["name"],
        "rate_percent": f"{rate_bp / 100:g}",
        "net_cents": net,
        "vat_cents": vat,
        "gross_cents": net + vat,
        "cache_build": CACHE["source_sha256"][:12],
    }
