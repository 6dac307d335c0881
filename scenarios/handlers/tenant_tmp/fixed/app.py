"""The profile cache of tenant_tmp, in a function with tenant isolation.

With ``TenancyConfig: {TenantIsolationMode: PER_TENANT}`` every invocation carries a
tenant id (``context.tenant_id``) and Lambda gives each tenant environments of its own:
a /tmp cache (and a global) can only ever hold that tenant's data.
"""

import json

CACHE = "/tmp/profile.json"


def _load(tenant: str) -> dict:
    return {"tenant": tenant, "plan": {"acme": "gold", "globex": "free"}.get(tenant, "none")}


def handler(event, context):
    tenant = context.tenant_id
    try:
        with open(CACHE) as f:
            profile = json.load(f)
    except FileNotFoundError:
        profile = _load(tenant)
        with open(CACHE, "w") as f:
            json.dump(profile, f)
    return {"asked_for": tenant, "profile": profile}
