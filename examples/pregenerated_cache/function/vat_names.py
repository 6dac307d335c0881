"""How country names are matched: shared by the build step and the handler, so both agree."""

import unicodedata


def normalise(name: str) -> str:
    """'  Österreich ' -> 'osterreich': case, accents and spacing do not matter."""
    decomposed = unicodedata.normalize("NFKD", name.strip().casefold())
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())
