def handler(event, context):
    return [1, "a", None, [2, [3]], {}]
