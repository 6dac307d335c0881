def check(value):
    if value != "expected":
        raise ValueError(f"bad value: {value!r}")


def handler(event, context):
    check(event.get("key"))
