CASE = {"client_context": {"custom": {"a": 1}}}


def handler(event, context):
    return {"client": context.client_context.client, "custom": context.client_context.custom,
            "env": context.client_context.env, "w3c": context.w3c()}
