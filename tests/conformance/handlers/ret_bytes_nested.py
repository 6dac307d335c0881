def handler(event, context):
    return {"text": b"utf-8 text \xc3\xa9", b"key": 1}
