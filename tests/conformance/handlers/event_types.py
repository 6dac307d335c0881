CASE = {"event": {"int": 1, "float": 1.5, "big": 12345678901234567890, "list": [None, True], "s": "\u00e9"}}


def handler(event, context):
    return {k: type(v).__name__ for k, v in event.items()}
