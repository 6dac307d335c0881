class Thing:
    pass


def handler(event, context):
    return Thing()
