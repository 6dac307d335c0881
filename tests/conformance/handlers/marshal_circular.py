def handler(event, context):
    loop = []
    loop.append(loop)
    return loop
