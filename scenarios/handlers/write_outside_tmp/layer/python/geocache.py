"""A stand-in for the many libraries that cache downloads in the user's cache folder
(``platformdirs.user_cache_dir``, ``~/.cache/<name>``): ``$XDG_CACHE_HOME/geocache``, else
``~/.cache/geocache``. Shipped as a layer (``/opt/python``), as such libraries often are.

On Lambda everything but /tmp is read-only and the home folder does not exist, so the
first write fails with ``OSError: [Errno 30] Read-only file system: '/home/sbx_user1051'``.
"""

import json
import os

CITIES = {"paris": [48.8566, 2.3522], "lima": [-12.0464, -77.0428]}  # "downloaded"


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "geocache")
    os.makedirs(path, exist_ok=True)
    return path


def lookup(city):
    """(coordinates, whether they came from the cache)."""
    path = os.path.join(cache_dir(), "cities.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f).get(city), True
    with open(path, "w") as f:
        json.dump(CITIES, f)
    return CITIES.get(city), False
