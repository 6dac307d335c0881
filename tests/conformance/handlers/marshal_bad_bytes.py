def handler(event, context):
    return [b"\xff not utf-8"]
