"""The examples in examples/ do what their READMEs say, in lambdasim's execution environments.

a. application data in S3 and DynamoDB is shared by instances and outlives them;
b. /tmp is per instance and dies with it, Redis is shared and survives;
c. a Redis value format change between versions, without and with a strategy, in both
   directions of the window where both versions run;
d. a Redis restart: a cache used as optional survives it, one used as a database does not;
e. each example's happy path, as its README documents it (the README snippets run);
f. custom runtimes and extensions: AWS's bash+curl bootstrap, a Bref-style PHP runtime whose cache
   needs /tmp, and an extension that shares /tmp and flushes it at SHUTDOWN.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from lambdasim import Function, Instance, InstanceGone, Invocation, SandboxUnavailable, ServiceError, Simulator
from tests.conftest import REQUIRE_SANDBOX, simulator_or_skip

pytestmark = [pytest.mark.services, pytest.mark.sandbox]

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
PREGENERATED = EXAMPLES / "pregenerated_cache"
TMP_CACHE = EXAMPLES / "tmp_cache"
DISTRIBUTED = EXAMPLES / "distributed_cache"
S3_APP_DATA = EXAMPLES / "s3_app_data"
REQUIRE_SERVICES = os.environ.get("LAMBDASIM_REQUIRE_SERVICES") == "1"
REQUIRE_RUNTIMES = os.environ.get("LAMBDASIM_REQUIRE_RUNTIMES") == "1"
# What each example's runtime needs on this machine: (executable, PHP module or None).
RUNTIME_NEEDS = {"shell-curl": ("curl", None), "php-bootstrap": ("php", "curl"), "extension-tmp": (None, None)}

# How long a "straggler" invocation of the old version sleeps before it reads the cache:
# long enough for the redeploy and the new version's invocations to happen meanwhile.
STRAGGLER_SLEEP_S = 1.5

Start = Callable[..., Simulator]


@pytest.fixture
def start() -> Iterator[Start]:
    """``start("aws", "redis")``: a Simulator with those services (default providers), closed afterwards."""
    made: list[Simulator] = []

    def make(*services: str) -> Simulator:
        sim = simulator_or_skip(services=list(services))
        made.append(sim)
        return sim

    yield make
    for sim in made:
        sim.close()


# -- helpers ------------------------------------------------------------------------------


def _create_table(sim: Simulator, name: str, key: str) -> None:
    """Infrastructure, as a deployment would create it (handlers never create tables)."""
    sim.boto3_client("dynamodb").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}])


def _ok(inv: Invocation) -> Any:
    assert inv.error is None, inv.error
    return inv.payload


def _error_type(inv: Invocation) -> str:
    assert inv.error is not None, f"expected an error, got {inv.payload!r}"
    return str(inv.error["errorType"])


def _instance(fn: Function, instance_id: str | None) -> Instance:
    (found,) = [i for i in fn.instances if i.id == instance_id]
    return found


def _tmp_names(inst: Instance) -> set[str]:
    """Names in the instance's /tmp, without the read-only mount point that a Python
    environment living under the host's /tmp (a CI virtualenv) adds there."""
    host_tmp = Path(tempfile.gettempdir()).resolve()
    mounted = {Path(p).resolve().relative_to(host_tmp).parts[0]
               for p in {sys.prefix, sys.base_prefix, sys.exec_prefix}
               if Path(p).resolve().is_relative_to(host_tmp) and Path(p).resolve() != host_tmp}
    return set(inst.tmp.listdir()) - mounted


def _wait_busy(fn: Function, version: str, future: Future[Invocation]) -> None:
    """Wait until an invocation of ``version`` is running (its instance is busy)."""
    deadline = time.monotonic() + 10.0
    while not any(i.state == "busy" and i.version == version for i in fn.instances):
        assert not future.done(), f"the invocation ended before it was seen running: {future.result()!r}"
        assert time.monotonic() < deadline, "the invocation never started"
        time.sleep(0.002)


# -- pregenerated_cache ---------------------------------------------------------------------


def test_pregenerated_cache_is_built_from_its_source() -> None:
    shipped = json.loads((PREGENERATED / "function" / "vat_rates.json").read_text(encoding="utf-8"))
    source = (PREGENERATED / "data" / "vat_rates.csv").read_bytes()
    assert shipped["source_sha256"] == hashlib.sha256(source).hexdigest()
    check = [sys.executable, "-B", "build_cache.py", "--check"]
    done = subprocess.run(check, cwd=PREGENERATED, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_pregenerated_cache_check_detects_a_stale_file(tmp_path: Path) -> None:
    copy = tmp_path / "pregenerated_cache"
    shutil.copytree(PREGENERATED, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "data" / "vat_rates.csv").open("a", encoding="utf-8") as f:
        f.write("CZ,Czechia,21,Česko\n")
    check = [sys.executable, "-B", "build_cache.py", "--check"]
    stale = subprocess.run(check, cwd=copy, capture_output=True, text=True, check=False)
    assert stale.returncode == 1 and "out of date" in stale.stderr
    subprocess.run([sys.executable, "-B", "build_cache.py"], cwd=copy, capture_output=True, check=True)
    assert subprocess.run(check, cwd=copy, capture_output=True, check=False).returncode == 0
    rebuilt = json.loads((copy / "function" / "vat_rates.json").read_text(encoding="utf-8"))
    assert rebuilt["aliases"]["cesko"] == "CZ" and rebuilt["rates"]["CZ"]["rate_bp"] == 2100


def test_pregenerated_cache_answers_alike_on_every_instance(start: Start) -> None:
    sim = start()
    fn = sim.deploy("app.handler", code_dir=PREGENERATED / "function", name="vat")
    build = hashlib.sha256((PREGENERATED / "data" / "vat_rates.csv").read_bytes()).hexdigest()[:12]
    expected = {"country": "AT", "name": "Austria", "rate_percent": "20", "net_cents": 1999, "vat_cents": 400,
                "gross_cents": 2399, "cache_build": build}
    event = {"country": "  ÖSTERREICH", "net_cents": 1999}

    invs = [fn.invoke(event), fn.invoke(event)]  # cold, then warm
    fn.scale_down(keep=0)
    invs.append(fn.invoke(event))  # a new instance
    sim.clock.advance(seconds=fn.config.keepalive_s + 1)
    assert fn.instances == []
    invs.append(fn.invoke(event))  # after idle reaping
    fn.redeploy()
    invs.append(fn.invoke(event))  # the next version

    assert [_ok(inv) for inv in invs] == [expected] * 5
    assert [inv.cold_start for inv in invs] == [True, False, True, True, True]
    assert len({inv.instance_id for inv in invs}) == 4 and invs[-1].version == "2"
    assert fn.instances[0].tmp.usage_bytes() == 0  # read-only use: not a byte written to /tmp
    unknown = fn.invoke({"country": "Atlantis", "net_cents": 1})
    assert _error_type(unknown) == "ValueError" and "Atlantis" in unknown.error["errorMessage"]  # type: ignore[index]


# -- tmp_cache ------------------------------------------------------------------------------

PRIMES_100K = {"limit": 100_000, "count": 9592, "largest": 99991}
PRIMES_1M = {"limit": 1_000_000, "count": 78498, "largest": 999983}


def test_tmp_file_is_per_instance_while_redis_key_is_shared(start: Start) -> None:
    """b. /tmp is never shared and dies with the instance; the handler's Redis key is shared and survives."""
    sim = start("redis")
    fn = sim.deploy("app.handler", code_dir=TMP_CACHE / "memo", name="primes")
    r = sim.redis_client()
    small, big = "primes-below-100000.json", "primes-below-1000000.json"

    first = fn.invoke({"limit": 100_000})
    assert _ok(first) == {**PRIMES_100K, "source": "computed"}
    a = _instance(fn, first.instance_id)
    assert _tmp_names(a) == {small}
    assert json.loads(r.get("primes:v1:below:100000")) == PRIMES_100K

    # Two concurrent invocations: the warm instance reads its /tmp, a second instance
    # does not see that file and gets the result from Redis.
    pair = fn.invoke_many([{"limit": 100_000, "sleep": 0.5}] * 2, concurrency=2)
    assert len({inv.instance_id for inv in pair}) == 2
    by_instance = {inv.instance_id: _ok(inv)["source"] for inv in pair}
    (b_id,) = set(by_instance) - {a.id}
    assert by_instance == {a.id: "tmp", b_id: "redis"}
    b = _instance(fn, b_id)
    assert [inv.cold_start for inv in pair if inv.instance_id == b_id] == [True]

    # A file only one of them writes shows in that instance's /tmp, not in the other's.
    third = fn.invoke({"limit": 1_000_000})
    assert _ok(third) == {**PRIMES_1M, "source": "computed"}
    writer = _instance(fn, third.instance_id)
    other = b if writer.id == a.id else a
    assert _tmp_names(writer) == {small, big}
    assert _tmp_names(other) == {small}
    assert r.exists("primes:v1:below:1000000") == 1

    # Scale-down: the instances and their /tmp are gone; Redis still has both results.
    assert fn.scale_down(keep=0) == 2
    with pytest.raises(InstanceGone):
        writer.tmp.listdir()
    after_scale_down = fn.invoke({"limit": 1_000_000})
    assert after_scale_down.cold_start and _ok(after_scale_down) == {**PRIMES_1M, "source": "redis"}
    assert _tmp_names(fn.instances[0]) == {big}  # a fresh /tmp: no trace of the earlier instances' files

    # Idle reaping, then a redeploy: each time a new, empty /tmp, and the shared result.
    sim.clock.advance(seconds=900)
    assert fn.instances == []
    after_reaping = fn.invoke({"limit": 100_000})
    assert after_reaping.cold_start and _ok(after_reaping)["source"] == "redis"
    fn.redeploy()
    after_redeploy = fn.invoke({"limit": 1_000_000})
    assert after_redeploy.version == "2" and after_redeploy.cold_start
    assert _ok(after_redeploy) == {**PRIMES_1M, "source": "redis"}
    (v2,) = fn.instances
    assert _tmp_names(v2) == {big}
    assert _ok(fn.invoke({"limit": 1_000_000}))["source"] == "tmp"


def test_tmp_cache_without_redis_recomputes_on_each_new_instance(start: Start) -> None:
    sim = start()
    fn = sim.deploy("app.handler", code_dir=TMP_CACHE / "memo", name="primes")
    sources = [_ok(fn.invoke({"limit": 100_000}))["source"] for _ in range(2)]
    fn.scale_down(keep=0)
    sources.append(_ok(fn.invoke({"limit": 100_000}))["source"])
    fn.redeploy()
    sources += [_ok(fn.invoke({"limit": 100_000}))["source"] for _ in range(2)]
    assert sources == ["computed", "tmp", "computed", "computed", "tmp"]


def test_buggy_counter_in_tmp_issues_duplicates_and_forgets(start: Start) -> None:
    sim = start()
    fn = sim.deploy("app.handler", code_dir=TMP_CACHE / "buggy", name="invoices")
    invs = fn.invoke_many([{"customer": f"c{i}", "sleep": 0.3} for i in range(4)], concurrency=2)
    numbers = [_ok(inv)["invoice_number"] for inv in invs]
    assert len({inv.instance_id for inv in invs}) == 2
    assert sorted(numbers) == [1, 1, 2, 2]  # each instance counts on its own: duplicate invoice numbers
    fn.scale_down(keep=0)
    assert _ok(fn.invoke({"customer": "late"}))["invoice_number"] == 1  # the counter is gone with /tmp
    fn.redeploy()
    assert _ok(fn.invoke({"customer": "later"}))["invoice_number"] == 1


def test_fixed_counter_in_dynamodb_is_unique_and_durable(start: Start) -> None:
    sim = start("aws")
    _create_table(sim, "counters", "name")
    fn = sim.deploy("app.handler", code_dir=TMP_CACHE / "fixed", name="invoices",
                    environment={"COUNTERS_TABLE": "counters"})
    invs = fn.invoke_many([{"customer": f"c{i}", "sleep": 0.3} for i in range(4)], concurrency=2)
    assert len({inv.instance_id for inv in invs}) == 2
    assert sorted(_ok(inv)["invoice_number"] for inv in invs) == [1, 2, 3, 4]
    fn.scale_down(keep=0)
    assert _ok(fn.invoke({}))["invoice_number"] == 5
    sim.clock.advance(seconds=900)
    assert _ok(fn.invoke({}))["invoice_number"] == 6
    fn.redeploy()
    assert _ok(fn.invoke({}))["invoice_number"] == 7
    item = sim.boto3_client("dynamodb").get_item(TableName="counters", Key={"name": {"S": "invoice"}})["Item"]
    assert item["last_value"] == {"N": "7"}
    assert all(_tmp_names(i) == set() for i in fn.instances)


# -- s3_app_data ----------------------------------------------------------------------------


def test_orders_in_s3_and_dynamodb_are_read_by_other_instances(start: Start) -> None:
    """a. Written by one instance, read by another: concurrently, after scale-down, reaping, redeploy."""
    sim = start("aws")
    s3 = sim.boto3_client("s3")
    s3.create_bucket(Bucket="orders")
    _create_table(sim, "orders", "order_id")
    fn = sim.deploy("app.handler", code_dir=S3_APP_DATA / "function", name="orders",
                    environment={"ORDERS_BUCKET": "orders", "ORDERS_TABLE": "orders"})
    items = [{"sku": "A1", "quantity": 2, "unit_cents": 1250}, {"sku": "B2", "quantity": 1, "unit_cents": 399}]

    created = fn.invoke({"action": "create", "customer": "ada", "items": items})
    order_id = _ok(created)["order_id"]
    assert _ok(created)["total_cents"] == 2899
    # What the handler wrote is really in S3 and DynamoDB, not only in the instance.
    body = json.loads(s3.get_object(Bucket="orders", Key=f"orders/{order_id}.json")["Body"].read())
    assert body == {"order_id": order_id, "customer": "ada", "items": items, "total_cents": 2899}
    item = sim.boto3_client("dynamodb").get_item(TableName="orders", Key={"order_id": {"S": order_id}})["Item"]
    assert item["status"] == {"S": "placed"} and item["total_cents"] == {"N": "2899"}

    expected = {"found": True, "status": "placed", "total_cents": 2899, "document": body}
    get = {"action": "get", "order_id": order_id}
    readers: list[Invocation] = fn.invoke_many([{**get, "sleep": 0.5}] * 2, concurrency=2)
    concurrent = {inv.instance_id for inv in readers}
    assert len(concurrent) == 2 and created.instance_id in concurrent  # the creator and another instance
    fn.scale_down(keep=0)
    readers.append(fn.invoke(get))
    sim.clock.advance(seconds=900)
    assert fn.instances == []
    readers.append(fn.invoke(get))
    fn.redeploy()
    readers.append(fn.invoke(get))
    assert [_ok(inv) for inv in readers] == [expected] * 5
    assert [inv.cold_start for inv in readers[2:]] == [True, True, True]
    assert len({inv.instance_id for inv in readers} | {created.instance_id}) == 5
    assert readers[-1].version == "2"

    # And the other way round: the new version writes, a scaled-down-and-back instance reads.
    created_v2 = _ok(fn.invoke({"action": "create", "customer": "bob", "items": items[1:]}))
    fn.scale_down(keep=0)
    assert _ok(fn.invoke({"action": "get", "order_id": created_v2["order_id"]}))["document"]["customer"] == "bob"
    assert _ok(fn.invoke({"action": "get", "order_id": "no-such-order"}))["found"] is False


# -- distributed_cache ----------------------------------------------------------------------


def _prices_sim(start: Start) -> Simulator:
    sim = start("aws", "redis")
    _create_table(sim, "prices", "sku")
    ddb = sim.boto3_client("dynamodb")
    for sku, cents in {"A1": 1250, "B2": 399, "C3": 10000}.items():
        ddb.put_item(TableName="prices",
                     Item={"sku": {"S": sku}, "amount_cents": {"N": str(cents)}, "currency": {"S": "EUR"}})
    return sim


def _deploy_v1(sim: Simulator) -> Function:
    fn = sim.deploy("app.handler", code_dir=DISTRIBUTED / "v1", name="prices", environment={"PRICES_TABLE": "prices"})
    assert _ok(fn.invoke({"sku": "A1"}))["source"] == "database"
    assert _ok(fn.invoke({"sku": "A1", "quantity": 3})) == {
        "sku": "A1", "unit_price": "12.50", "total": "37.50", "source": "cache"}
    assert sim.redis_client().get("price:A1") == b"12.50"
    return fn


def _v2(sku: str, cents: int, source: str) -> dict[str, Any]:
    price = {"amount": cents, "currency": "EUR"}
    return {"sku": sku, "unit_price": price, "total": price, "source": source}


def test_v2_without_strategy_crashes_on_v1_entries(start: Start) -> None:
    sim = _prices_sim(start)
    fn = _deploy_v1(sim)
    fn.redeploy(code_dir=DISTRIBUTED / "v2_naive")
    crashed = fn.invoke({"sku": "A1"})
    assert crashed.version == "2" and _error_type(crashed) == "TypeError"
    assert "not subscriptable" in crashed.error["errorMessage"]  # type: ignore[index]
    assert _error_type(fn.invoke({"sku": "A1"})) == "TypeError"  # and again: v1's entry stays until its TTL
    assert 0 < sim.redis_client().ttl("price:A1") <= 3600
    assert _ok(fn.invoke({"sku": "B2"})) == _v2("B2", 399, "database")  # only uncached keys work


def test_v2_with_keys_per_version_works_after_v1(start: Start) -> None:
    sim = _prices_sim(start)
    fn = _deploy_v1(sim)
    fn.redeploy(code_dir=DISTRIBUTED / "v2_versioned_keys")
    assert _ok(fn.invoke({"sku": "A1"})) == _v2("A1", 1250, "database")
    assert _ok(fn.invoke({"sku": "A1"})) == _v2("A1", 1250, "cache")
    r = sim.redis_client()
    assert r.get("price:A1") == b"12.50"  # v1's entry is left alone, to expire
    assert json.loads(r.get("price:v2:A1")) == {"amount": 1250, "currency": "EUR"}


def test_v2_with_flush_on_deploy_works_after_v1(start: Start) -> None:
    sim = _prices_sim(start)
    fn = _deploy_v1(sim)
    fn.redeploy(code_dir=DISTRIBUTED / "v2_naive")
    sim.services["redis"].flush()  # the deploy step of this strategy
    assert sim.redis_client().dbsize() == 0
    assert _ok(fn.invoke({"sku": "A1"})) == _v2("A1", 1250, "database")
    assert _ok(fn.invoke({"sku": "A1"})) == _v2("A1", 1250, "cache")
    assert json.loads(sim.redis_client().get("price:A1")) == {"amount": 1250, "currency": "EUR"}


def _mixed_window(sim: Simulator, v2_dir: Path) -> tuple[Invocation, Invocation, Invocation]:
    """v1 has cached A1; a v1 invocation for B2 is running when v2 is deployed; v2 then
    reads A1 (v1's entry) and B2 (uncached: v2 caches it in its format) while v1 still
    runs; then v1 reads B2. Returns (v2 on A1, v2 on B2, v1 on B2)."""
    fn = _deploy_v1(sim)
    with ThreadPoolExecutor(1) as pool:
        straggler = pool.submit(fn.invoke, {"sku": "B2", "sleep": STRAGGLER_SLEEP_S})
        _wait_busy(fn, "1", straggler)
        fn.redeploy(code_dir=v2_dir)
        v2_on_a1 = fn.invoke({"sku": "A1"})
        v2_on_b2 = fn.invoke({"sku": "B2"})
        assert not straggler.done(), "v1 finished before v2 ran: no mixed-version window was tested"
        v1_on_b2 = straggler.result()
    assert v1_on_b2.version == "1" and v2_on_a1.version == v2_on_b2.version == "2"
    assert v1_on_b2.instance_id not in {v2_on_a1.instance_id, v2_on_b2.instance_id}
    return v2_on_a1, v2_on_b2, v1_on_b2


def test_mixed_versions_without_strategy_crash_both_ways(start: Start) -> None:
    sim = _prices_sim(start)
    v2_on_a1, v2_on_b2, v1_on_b2 = _mixed_window(sim, DISTRIBUTED / "v2_naive")
    assert _error_type(v2_on_a1) == "TypeError"  # v2 reading v1's entry
    assert _ok(v2_on_b2) == _v2("B2", 399, "database")
    assert _error_type(v1_on_b2) == "InvalidOperation"  # v1 reading v2's entry
    assert json.loads(sim.redis_client().get("price:B2")) == {"amount": 399, "currency": "EUR"}


def test_mixed_versions_with_keys_per_version_work_both_ways(start: Start) -> None:
    sim = _prices_sim(start)
    v2_on_a1, v2_on_b2, v1_on_b2 = _mixed_window(sim, DISTRIBUTED / "v2_versioned_keys")
    assert _ok(v2_on_a1) == _v2("A1", 1250, "database")
    assert _ok(v2_on_b2) == _v2("B2", 399, "database")
    assert _ok(v1_on_b2) == {"sku": "B2", "unit_price": "3.99", "total": "3.99", "source": "database"}
    r = sim.redis_client()
    assert sorted(r.keys()) == [b"price:A1", b"price:B2", b"price:v2:A1", b"price:v2:B2"]
    assert r.get("price:B2") == b"3.99"


def test_flush_on_deploy_leaves_the_mixed_version_window_open(start: Start) -> None:
    """A v1 invocation still running after the flush writes a v1 entry back, and v2 crashes on it."""
    sim = _prices_sim(start)
    fn = _deploy_v1(sim)
    with ThreadPoolExecutor(1) as pool:
        straggler = pool.submit(fn.invoke, {"sku": "C3", "sleep": STRAGGLER_SLEEP_S})
        _wait_busy(fn, "1", straggler)
        fn.redeploy(code_dir=DISTRIBUTED / "v2_naive")
        sim.services["redis"].flush()
        assert _ok(fn.invoke({"sku": "A1"})) == _v2("A1", 1250, "database")  # the flush helped here
        assert not straggler.done()
        v1_on_c3 = straggler.result()
    assert v1_on_c3.version == "1" and _ok(v1_on_c3)["unit_price"] == "100.00"
    assert sim.redis_client().get("price:C3") == b"100.00"  # written after the flush
    assert _error_type(fn.invoke({"sku": "C3"})) == "TypeError"


def test_redis_restart_loses_the_cache(start: Start) -> None:
    """d. An optional cache recomputes after a restart; a cache used as the database has lost its data."""
    sim = _prices_sim(start)
    optional = sim.deploy("app.handler", code_dir=DISTRIBUTED / "cache_optional", name="quotes",
                          environment={"PRICES_TABLE": "prices"})
    as_db = sim.deploy("app.handler", code_dir=DISTRIBUTED / "cache_as_database", name="quotes-redis-only")
    price = {"amount": 1250, "currency": "EUR"}
    assert _ok(optional.invoke({"sku": "A1"})) == {"sku": "A1", "unit_price": price, "source": "database"}
    assert _ok(optional.invoke({"sku": "A1"}))["source"] == "cache"
    assert _ok(as_db.invoke({"action": "import", "prices": {"A1": price}})) == {"imported": 1}
    assert _ok(as_db.invoke({"sku": "A1"})) == {"sku": "A1", "unit_price": price}
    r = sim.redis_client()
    assert r.dbsize() == 2

    redis_service = sim.services["redis"]
    redis_service.stop()
    # While it is down: the optional cache is bypassed, the "database" is unreachable.
    assert _ok(optional.invoke({"sku": "A1"}))["source"] == "database"
    assert _error_type(as_db.invoke({"sku": "A1"})) == "ConnectionError"
    redis_service.start()
    assert r.dbsize() == 0  # no persistence: everything is gone

    assert _ok(optional.invoke({"sku": "A1"})) == {"sku": "A1", "unit_price": price, "source": "database"}
    assert _ok(optional.invoke({"sku": "A1"}))["source"] == "cache"  # and it is cached again
    lost = as_db.invoke({"sku": "A1"})
    assert _error_type(lost) == "KeyError" and "A1" in lost.error["errorMessage"]  # type: ignore[index]
    assert not optional.invoke({"sku": "A1"}).cold_start and not lost.cold_start  # the same warm instances


# -- the READMEs' snippets ------------------------------------------------------------------


def _snippets(readme: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", readme.read_text(encoding="utf-8"), flags=re.DOTALL)


def _needs_runtime(example: str) -> None:
    """Skip, with the reason, where the example's runtime is not installed (unless CI requires it)."""
    program, php_module = RUNTIME_NEEDS.get(example, (None, None))
    missing = program is not None and shutil.which(program) is None
    if not missing and php_module is not None:
        modules = subprocess.run(["php", "-m"], capture_output=True, text=True, check=False).stdout.split()
        missing = php_module not in modules
    if missing:
        what = f"{program} with its {php_module} module" if php_module else program
        if REQUIRE_RUNTIMES:
            pytest.fail(f"LAMBDASIM_REQUIRE_RUNTIMES=1 and {what} is not installed (Debian: php-cli php-curl curl)")
        pytest.skip(f"the {example} example needs {what}, which is not installed here")


@pytest.mark.parametrize("example", ["pregenerated_cache", "tmp_cache", "distributed_cache", "s3_app_data",
                                     "shell-curl", "php-bootstrap", "extension-tmp"])
def test_readme_happy_path(example: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """e, f. Each example's README snippet runs as documented, from the repository's root."""
    _needs_runtime(example)
    readme = EXAMPLES / example / "README.md"
    (snippet,) = _snippets(readme)
    assert snippet.count("assert ") >= 3 and f'"examples/{example}/' in snippet
    monkeypatch.chdir(REPO)
    try:
        exec(compile(snippet, str(readme), "exec"), {"__name__": f"readme_{example}"})
    except SandboxUnavailable as e:
        if REQUIRE_SANDBOX:
            raise
        pytest.skip(f"namespace sandbox unavailable here: {e}")
    except ServiceError as e:
        if REQUIRE_SERVICES:
            raise
        pytest.skip(f"a service of the snippet is not available here: {e}")


def test_examples_index_lists_every_example() -> None:
    index = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    folders = sorted(p.name for p in EXAMPLES.iterdir() if (p / "README.md").exists())
    assert folders == ["distributed_cache", "extension-tmp", "php-bootstrap", "pregenerated_cache", "s3_app_data",
                       "sam-orders", "serve-shop", "shell-curl", "tmp_cache"]
    assert all(f"[`{name}/`]({name}/)" in index for name in folders)


# -- custom runtimes and extensions (f) -----------------------------------------------------------


def test_shell_curl_bootstrap_exits_and_its_output_is_in_the_logs(start: Start, tmp_path: Path) -> None:
    """f. The tutorial's bootstrap under `set -e`: a handler that fails ends the bash loop, which Lambda
    reports as Runtime.ExitError with its exit status; the next invocation starts it again (cold)."""
    _needs_runtime("shell-curl")
    sim = start()
    code = tmp_path / "code"
    shutil.copytree(EXAMPLES / "shell-curl" / "function", code)
    (code / "function.sh").write_text("function handler () {\n  echo \"failing on $1\" 1>&2\n  return 3\n}\n")
    fn = sim.deploy_from_template(EXAMPLES / "shell-curl" / "template.yaml", "EchoFunction", code_dir=code)
    failed = fn.invoke({"x": 1})
    assert _error_type(failed) == "Runtime.ExitError"
    assert failed.error["errorMessage"].endswith("Error: Runtime exited with error: exit status 3")  # type: ignore[index]
    assert 'failing on {"x": 1}' in failed.logs and "Status: error\tError Type: Runtime.ExitError" in failed.logs
    assert fn.invoke({"x": 2}).cold_start


def test_php_cache_under_var_task_fails_until_it_is_in_tmp(start: Start) -> None:
    """f. The seed's lesson: the framework cache fails under /var/task (read-only), works in /tmp, and
    the compiled file outlives the PHP process (one per invocation) but not the instance."""
    _needs_runtime("php-bootstrap")
    sim = start()
    template = EXAMPLES / "php-bootstrap" / "template.yaml"
    broken = sim.deploy_from_template(template, "GreetingFunction")
    inv = broken.invoke({"name": "Ada"})
    assert _error_type(inv) == "ErrorException"
    assert "mkdir(): Read-only file system" in inv.error["errorMessage"]  # type: ignore[index]
    assert "Invoke Error" in inv.logs  # what the runtime logged, as Bref's does
    assert not broken.invoke({"name": "Ada"}).ok  # and again: nothing was cached

    fixed = sim.deploy_from_template(template, "GreetingFunction", name="fixed", parameters={"CacheDir": "/tmp/cache"})
    first = _ok(fixed.invoke({"name": "Ada"}))
    assert first == {"greeting": "Hello, Ada!", "cache": "/tmp/cache/greeting.php", "compiled_now": True,
                     "pid": first["pid"]}
    (instance,) = fixed.instances
    assert instance.tmp.read_text("cache/greeting.php") == '<?php return "Hello, %s!";'
    second = _ok(fixed.invoke({"name": "Bob"}))
    assert second["greeting"] == "Hello, Bob!" and not second["compiled_now"] and second["pid"] != first["pid"]
    fixed.scale_down()
    assert _ok(fixed.invoke({"name": "Cy"}))["compiled_now"]  # a new instance: a new /tmp


def test_extension_flushes_tmp_at_every_kind_of_shutdown(start: Start) -> None:
    """f. The extension shares the function's /tmp and flushes it at SHUTDOWN: on scale-down, idle
    reaping and a redeploy, each traced as a shutdown phase; nothing buffered is lost."""
    sim = start("aws")
    s3 = sim.boto3_client("s3")
    s3.create_bucket(Bucket="flushed-records")
    fn = sim.deploy_from_template(EXAMPLES / "extension-tmp" / "template.yaml", "RecordsFunction")

    def flushed() -> int:
        objects = s3.list_objects_v2(Bucket="flushed-records").get("Contents", [])
        return sum(len(s3.get_object(Bucket="flushed-records", Key=o["Key"])["Body"].read().splitlines())
                   for o in objects)

    assert _ok(fn.invoke({"n": 1})) == {"buffered": 1}
    assert _ok(fn.invoke({"n": 2})) == {"buffered": 2}
    assert flushed() == 0  # only buffered in /tmp so far
    fn.scale_down()
    assert flushed() == 2
    fn.invoke({"n": 3})
    sim.clock.advance(seconds=900)  # reaped after its keep-alive
    assert fn.instances == [] and flushed() == 3
    fn.invoke({"n": 4})
    fn.redeploy()
    assert flushed() == 4
    shutdowns = [e for e in sim.trace if e.kind == "shutdown"]
    assert len(shutdowns) == 3 and all(e.detail["killed"] == [] for e in shutdowns)
    assert [e.kind for e in sim.trace if e.instance == shutdowns[0].instance][-2:] == ["shutdown", "destroyed"]
