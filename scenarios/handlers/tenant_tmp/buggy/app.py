"""A customer's profile cached in /tmp under one fixed name.

The function serves every customer; the first invocation of an environment loads the
profile of the customer in its event and caches it in /tmp/profile.json. The next
invocation on that warm environment, for another customer, is answered from the cache:
one tenant's data leaks to another.
"""

import json

CACHE = "/tmp/profile.json"


def _load(tenant: str) -> dict:
    return {"tenant": tenant, "plan": {"acme": "gold", "globex": "free"}.get(tenant, "none")}


def handler(event, context):
    try:
        with open(CACHE) as f:
            profile = json.load(f)
    except FileNotFoundError:
        profile = _load(event["tenant"])
        with open(CACHE, "w") as f:
            json.dump(profile, f)
    return {"asked_for": event["tenant"], "profile": profile}
