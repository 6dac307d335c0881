def handler(event, context):
    return (1, (2, (3,)), {"t": (4, ())})
