import os


def handler(event, context):
    return {
        "aws_request_id": context.aws_request_id,
        "invoked_function_arn": context.invoked_function_arn,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "identity": [context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id],
        "client_context": context.client_context,
        "tenant_id": context.tenant_id,
        "w3c": context.w3c(),
        "trace_env": "_X_AMZN_TRACE_ID" in os.environ,
        "types": [type(context.memory_limit_in_mb).__name__, type(context.get_remaining_time_in_millis()).__name__],
    }
