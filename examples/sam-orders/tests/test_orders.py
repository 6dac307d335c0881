import json


def test_an_order_can_be_created_and_read_back(lambda_sim):
    fn = lambda_sim.deploy_from_template("template.yaml", "OrdersFunction")
    created = fn.invoke(fn.event("CreateOrder", body={"item": "apple", "count": 2}))
    assert created.payload["statusCode"] == 201, created.logs
    order = json.loads(created.payload["body"])

    got = fn.invoke(fn.event("GetOrder", path_parameters={"id": order["id"]}))
    assert json.loads(got.payload["body"]) == order
    # The table the template defines, as the function left it:
    table = lambda_sim.boto3_client("dynamodb").list_tables()["TableNames"]
    assert len(table) == 1 and "-OrdersTable-" in table[0]  # CloudFormation's name: <stack>-<LogicalId>-<random>
    assert not created.outside_imports, "shortuuid came from the package built from requirements.txt"


def test_an_unknown_order_is_404(lambda_sim):
    fn = lambda_sim.deploy_from_template("template.yaml", "OrdersFunction")
    missing = fn.invoke(fn.event("GetOrder", path_parameters={"id": "nope"}))
    assert missing.payload["statusCode"] == 404
