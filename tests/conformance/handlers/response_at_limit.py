LIMIT = 6 * 1024 * 1024 + 100


def handler(event, context):
    return "x" * (LIMIT - 2)  # with its quotes: exactly the limit
