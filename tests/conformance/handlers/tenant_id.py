import logging

CASE = {"tenant_id": "tenant-7", "env": {"AWS_LAMBDA_LOG_FORMAT": "JSON"}}


def handler(event, context):
    logging.warning("for a tenant")
    return context.tenant_id
