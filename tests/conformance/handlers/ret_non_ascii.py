CASE = {"event": {"name": "Ju00fcrgen"}}


def handler(event, context):
    return {"greeting": "h\u00e9llo \u2603 \U0001f600", "echo": event}
