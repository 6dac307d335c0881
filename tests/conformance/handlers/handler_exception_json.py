CASE = {"env": {"AWS_LAMBDA_LOG_FORMAT": "JSON"}}


def handler(event, context):
    raise LookupError("nothing for caf\u00e9")
