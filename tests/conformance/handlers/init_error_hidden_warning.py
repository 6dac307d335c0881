CASE = {"env": {"AWS_LAMBDA_LOG_LEVEL": "ERROR"}}

raise RuntimeError("configuration missing")
