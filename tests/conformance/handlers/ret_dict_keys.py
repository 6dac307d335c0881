def handler(event, context):
    return [{1: "int", None: "none", False: "false", 2.5: "float", "s": "str"}, {True: "true"}]
