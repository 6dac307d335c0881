COUNT = 0


def handler(event, context):
    global COUNT
    COUNT += 1
    return COUNT
