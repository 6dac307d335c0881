import json
import urllib.request


def test_an_order_is_priced_by_the_other_function(lambda_sim, lambda_serve):
    orders = lambda_sim.deploy_from_template("template.yaml", "OrdersFunction")
    pricing = lambda_sim.deploy_from_template("template.yaml", "PricingFunction")

    # Over HTTP, as a browser or another service would call the API:
    post = urllib.request.Request(f"{lambda_serve}/orders", method="POST",
                                  data=json.dumps({"item": "book", "quantity": 2}).encode())
    with urllib.request.urlopen(post) as response:
        assert response.status == 201
        order = json.load(response)
    assert order["total_cents"] == 2500  # priced by PricingFunction, which OrdersFunction invoked
    with urllib.request.urlopen(f"{lambda_serve}/orders/{order['id']}") as response:
        assert json.load(response) == order

    # Through Lambda's Invoke API, as boto3 calls it:
    out = lambda_sim.boto3_client("lambda").invoke(FunctionName="PricingFunction",
                                                   Payload=json.dumps({"item": "pen", "quantity": 3}))
    assert json.load(out["Payload"]) == {"item": "pen", "total_cents": 597}

    # The caller is in the trace of each pricing invocation, and the warm instance kept its /tmp cache:
    priced = [e for e in lambda_sim.trace if e.kind == "invoke" and e.function == pricing.name]
    assert priced[0].detail["caller"]["function"] == orders.name
    assert [e.detail["cold_start"] for e in priced] == [True, False]
