CASE = {"env": {"AWS_LAMBDA_LOG_FORMAT": "JSON"}}


def load():
    raise OSError(28, "No space left on device")


load()


def handler(event, context):
    return None
