with open("/var/task/cache.json", "w") as f:  # Lambda's code directory is read-only
    f.write("{}")


def handler(event, context):
    return None
