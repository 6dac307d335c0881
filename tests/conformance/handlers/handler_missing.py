CASE = {"handler": "handler_missing.not_there"}


def handler(event, context):
    return None
