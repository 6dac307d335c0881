"""Points the library's cache at /tmp, the one writable place, before importing it.

``XDG_CACHE_HOME`` is the setting such libraries read (others have their own, e.g.
``HF_HOME``, ``MPLCONFIGDIR``, ``NLTK_DATA``). Setting it in the function's environment
(template.yml does) works as well and needs no code change. The cache then lasts as
long as the instance does, like anything in /tmp.
"""

import os

os.environ.setdefault("XDG_CACHE_HOME", "/tmp/.cache")

from geocache import lookup  # after the cache folder is set


def handler(event, context):
    coordinates, cached = lookup(event["city"])
    return {"city": event["city"], "coordinates": coordinates, "cached": cached}
