def handler(event, context):
    return b"\x00\xffraw bytes"
