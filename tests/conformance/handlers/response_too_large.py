LIMIT = 6 * 1024 * 1024 + 100


def handler(event, context):
    return "x" * (LIMIT - 1)  # with its quotes: one byte over
