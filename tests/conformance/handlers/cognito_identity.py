CASE = {"identity": {"cognitoIdentityId": "us-east-1:1234", "cognitoIdentityPoolId": "us-east-1:pool"}}


def handler(event, context):
    return [context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id]
