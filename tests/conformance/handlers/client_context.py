CASE = {
    "client_context": {
        "client": {"installation_id": "inst-1", "app_title": "App", "app_version_name": "1.0",
                   "app_version_code": "1", "app_package_name": "com.example"},
        "custom": {"team": "blue"},
        "env": {"locale": "en"},
        "w3c": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "k=v",
                "baggage": 5, "other": "dropped"},
    }
}


def handler(event, context):
    cc = context.client_context
    client = cc.client
    return {
        "client": [client.installation_id, client.app_title, client.app_version_name, client.app_version_code,
                   client.app_package_name],
        "custom": cc.custom,
        "env": cc.env,
        "has_w3c_attr": hasattr(cc, "w3c"),
        "w3c": context.w3c(),
        "slots": sorted(type(cc).__slots__),
    }
