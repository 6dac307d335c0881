LIMIT = 6 * 1024 * 1024 + 100


def handler(event, context):
    return b"y" * (LIMIT - 1)
