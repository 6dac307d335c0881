def handler(event, context):
    return [1.5, 1e300, 0.1, -0.0, 1e-7]
