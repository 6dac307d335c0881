"""A handler that keeps a shopping cart in /tmp: a bug that hides on a warm instance.

"put" writes the cart to /tmp/cart.json, "get" reads it back. On one warm instance
that looks like storage, but /tmp belongs to one execution environment: an
invocation that lands on another instance (a concurrent one, or any after a
scale-down, an idle timeout or a deploy) finds no cart.
"""

import json
import os

CART = "/tmp/cart.json"


def handler(event, context):
    if event.get("action") == "put":
        had_cart = os.path.exists(CART)
        with open(CART, "w") as f:
            json.dump(event["items"], f)
        return {"stored": event["items"], "replaced_a_cart": had_cart}
    if not os.path.exists(CART):
        return {"found": False}
    with open(CART) as f:
        return {"found": True, "items": json.load(f)}
