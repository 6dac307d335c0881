def handler(event, context):
    context.log("first")
    context.log("second\n")
    context.log(3)
    return "logged"
