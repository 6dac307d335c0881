import enum


class Color(enum.IntEnum):
    RED = 1


class Name(str, enum.Enum):  # noqa: UP042 - the mixin, as older code writes it
    ADA = "ada"


def handler(event, context):
    return {"color": Color.RED, Color.RED: "key", "name": Name.ADA}
