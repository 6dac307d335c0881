"""Uses a library that caches under the home folder, as it does on a laptop.

The library writes to ``~/.cache/geocache``. Locally that works; on Lambda the home folder
does not exist and cannot be made (everything outside /tmp is read-only), so every
invocation fails with ``[Errno 30] Read-only file system: '/home/sbx_user1051'``.
"""

from geocache import lookup


def handler(event, context):
    coordinates, cached = lookup(event["city"])
    return {"city": event["city"], "coordinates": coordinates, "cached": cached}
