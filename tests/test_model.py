"""Tests of the pure state model in ``lambdasim._model``: configuration validation,
routing policies, instance bookkeeping (acquire, release, redeploy, scale-down,
keep-alive expiry), throttling, the virtual clock and trace events.

No processes are started here; every test runs in microseconds.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from typing import Any

import pytest

from lambdasim import ConfigError, FunctionConfig, TraceEvent, VirtualClock
from lambdasim._model import (
    FreshRouting,
    FunctionModel,
    InstanceRecord,
    InstanceState,
    RandomRouting,
    RoutingPolicy,
    Throttled,
    WarmRouting,
    routing_policy,
)

WARM: RoutingPolicy = WarmRouting()
FRESH: RoutingPolicy = FreshRouting()
RANDOM: RoutingPolicy = RandomRouting()

# The reserved keys Lambda documents ("Defined runtime environment variables").
LAMBDA_RESERVED_KEYS = [
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
]
RESERVED_PREFIX = (
    "Lambda was unable to configure your environment variables because the environment variables you have "
    "provided contains reserved keys that are currently not supported for modification. "
    "Reserved keys used in this request: "
)


# ---------------------------------------------------------------------------
# helpers


def cfg(name: str = "fn", **changes: Any) -> FunctionConfig:
    return FunctionConfig(name=name, handler="app.handler", code_dir="/code", **changes)


def model(name: str = "fn", **changes: Any) -> FunctionModel:
    return FunctionModel(cfg(name, **changes))


def start(m: FunctionModel, now: float = 0.0, policy: RoutingPolicy = WARM,
          rng: random.Random | None = None) -> tuple[InstanceRecord, bool]:
    """Acquire an instance and mark it busy, as the simulator does once it runs."""
    record, new = m.acquire(policy, rng if rng is not None else random.Random(0), now)
    record.state = InstanceState.BUSY
    return record, new


def idle_instances(m: FunctionModel, *released_at: float) -> list[InstanceRecord]:
    """Create ``len(released_at)`` instances at time 0 and release them (warm) at the given times."""
    records = [start(m)[0] for _ in released_at]
    assert len({r.id for r in records}) == len(records)
    for record, t in sorted(zip(records, released_at, strict=True), key=lambda p: p[1]):
        assert m.release(record, t, WARM) is False
    assert all(r.state is InstanceState.IDLE for r in records)
    return records


def busy_count(m: FunctionModel) -> int:
    return sum(1 for i in m.instances.values() if i.state in (InstanceState.BUSY, InstanceState.STARTING))


class ScriptedRandom(random.Random):
    """A Random whose randrange answers come from a script (for pinning RandomRouting's draws)."""

    def __init__(self, answers: Sequence[int]) -> None:
        super().__init__(0)
        self.answers = list(answers)

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        assert stop is None
        assert step == 1
        answer = self.answers.pop(0)
        assert 0 <= answer < start
        return answer


# ---------------------------------------------------------------------------
# FunctionConfig.validate


def test_default_config_is_valid() -> None:
    config = cfg()
    config.validate()
    assert (config.memory_mb, config.timeout_s, config.ephemeral_storage_mb) == (128, 3.0, 512)
    assert config.reserved_concurrency is None
    assert config.keepalive_s == 600.0
    assert dict(config.environment) == {}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("name", "a"),
        ("name", "x" * 64),
        ("name", "My-Function_2"),
        ("name", "0123456789"),
        ("memory_mb", 128),
        ("memory_mb", 1769),
        ("memory_mb", 10240),
        ("timeout_s", 1e-6),
        ("timeout_s", 900),
        ("timeout_s", 900.0),
        ("ephemeral_storage_mb", 512),
        ("ephemeral_storage_mb", 10240),
        ("reserved_concurrency", None),
        ("reserved_concurrency", 0),
        ("reserved_concurrency", 1000),
        ("keepalive_s", 1e-3),
        ("keepalive_s", 7200.0),
        ("environment", {"AB": "1", "Foo_bar9": "", "x1": "y" * 100}),
    ],
)
def test_valid_values_are_accepted(key: str, value: Any) -> None:
    config = cfg(**{key: value}) if key != "name" else cfg(value)
    config.validate()


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("name", "", "1 to 64"),
        ("name", "x" * 65, "1 to 64"),
        ("name", "bad name", "1 to 64"),
        ("name", "fn.handler", "1 to 64"),
        ("name", "fn/1", "1 to 64"),
        ("name", "fünf", "1 to 64"),
        ("name", "fn\n", "1 to 64"),  # '$' alone would accept a trailing newline
        ("name", 123, "1 to 64"),
        ("name", None, "1 to 64"),
        ("memory_mb", 127, "128 to 10240 MB"),
        ("memory_mb", 0, "128 to 10240 MB"),
        ("memory_mb", 10241, "128 to 10240 MB"),
        ("memory_mb", 256.0, "128 to 10240 MB"),
        ("memory_mb", "256", "128 to 10240 MB"),
        ("memory_mb", None, "128 to 10240 MB"),
        ("timeout_s", 0, "at most 900 seconds"),
        ("timeout_s", -1.0, "at most 900 seconds"),
        ("timeout_s", 900.001, "at most 900 seconds"),
        ("timeout_s", math.inf, "at most 900 seconds"),
        ("timeout_s", math.nan, "at most 900 seconds"),
        ("timeout_s", "3", "at most 900 seconds"),
        ("timeout_s", None, "at most 900 seconds"),
        ("timeout_s", True, "at most 900 seconds"),
        ("ephemeral_storage_mb", 511, "512 to 10240 MB"),
        ("ephemeral_storage_mb", 10241, "512 to 10240 MB"),
        ("ephemeral_storage_mb", 1024.0, "512 to 10240 MB"),
        ("reserved_concurrency", -1, "None or a whole number >= 0"),
        ("reserved_concurrency", 1.5, "None or a whole number >= 0"),
        ("reserved_concurrency", "5", "None or a whole number >= 0"),
        ("keepalive_s", 0, "positive number of seconds"),
        ("keepalive_s", -0.5, "positive number of seconds"),
        ("keepalive_s", math.nan, "positive number of seconds"),
        ("keepalive_s", math.inf, "positive number of seconds"),
        ("keepalive_s", "600", "positive number of seconds"),
        ("keepalive_s", None, "positive number of seconds"),
    ],
)
def test_invalid_values_are_rejected_naming_key_and_value(key: str, value: Any, allowed: str) -> None:
    config = cfg(**{key: value}) if key != "name" else cfg(value)
    with pytest.raises(ConfigError) as info:
        config.validate()
    message = str(info.value)
    assert message.startswith(f"Function {config.name!r}: ")
    assert f"{key}={value!r} is not valid" in message
    assert allowed in message


@pytest.mark.parametrize(
    ("key", "value"),
    [("reserved_concurrency", True), ("reserved_concurrency", False), ("memory_mb", True),
     ("ephemeral_storage_mb", True)],
)
def test_bools_are_not_whole_numbers(key: str, value: Any) -> None:
    # bool is a subclass of int; True must not be taken as a limit of 1.
    with pytest.raises(ConfigError, match=re.escape(f"{key}={value!r} is not valid")):
        cfg(**{key: value}).validate()


@pytest.mark.parametrize("key", LAMBDA_RESERVED_KEYS)
def test_each_reserved_env_key_is_rejected_with_lambdas_message(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        cfg(environment={"SAFE_KEY": "1", key: "x"}).validate()
    assert str(info.value) == f"Function 'fn': {RESERVED_PREFIX}{key}"


def test_reserved_env_keys_are_all_listed_sorted() -> None:
    env = {"_HANDLER": "h", "OK_KEY": "1", "AWS_SESSION_TOKEN": "t", "AWS_REGION": "r"}
    with pytest.raises(ConfigError) as info:
        cfg(environment=env).validate()
    assert str(info.value).endswith(f"{RESERVED_PREFIX}AWS_REGION, AWS_SESSION_TOKEN, _HANDLER")
    assert "OK_KEY" not in str(info.value)


@pytest.mark.parametrize("key", ["PATH", "TZ", "LANG", "PYTHONPATH", "LD_LIBRARY_PATH", "AWS_LAMBDA_EXEC_WRAPPER",
                                 "aws_region", "MY_AWS_REGION"])
def test_unreserved_env_keys_are_allowed(key: str) -> None:
    cfg(environment={key: "value"}).validate()


@pytest.mark.parametrize("key", ["1ABC", "_PRIVATE", "FOO-BAR", "FOO BAR", "FOO.BAR", "A", "", "ÄBC", "FOO$",
                                 "FOO\n"])
def test_env_keys_must_match_lambdas_pattern(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        cfg(environment={"GOOD": "1", key: "v"}).validate()
    message = str(info.value)
    assert message.startswith("Function 'fn': ")
    assert f"environment[{key!r}]='v' is not valid" in message
    assert "start with a letter" in message


@pytest.mark.parametrize("value", [1, None, b"bytes", ["a"]])
def test_env_values_must_be_strings(value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        cfg(environment={"KEY": value}).validate()
    assert f"environment['KEY']={value!r} is not valid" in str(info.value)


def test_env_keys_must_be_strings() -> None:
    with pytest.raises(ConfigError, match=re.escape("environment[7]='v' is not valid")):
        cfg(environment={7: "v"}).validate()


def test_reserved_keys_are_reported_before_pattern_errors() -> None:
    # "_HANDLER" does not match the key pattern either; Lambda reports it as reserved.
    with pytest.raises(ConfigError, match=re.escape(f"{RESERVED_PREFIX}_HANDLER")):
        cfg(environment={"_HANDLER": "x", "1BAD": "y"}).validate()


@pytest.mark.parametrize(
    ("env", "size"),
    [
        ({"K1": "v" * 4094}, 4096),
        ({"K1": "v" * 4095}, 4097),
        ({"K1": "é" * 2047}, 4096),  # 2049 characters, 4096 bytes
        ({"K1": "é" * 2048}, 4098),  # 2050 characters: the limit is on bytes
        ({f"K{i:03d}": "v" * 96 for i in range(41)}, 41 * 100),
        ({"KEY_" + "X" * 4092: ""}, 4096),
        ({"KEY_" + "X" * 4093: ""}, 4097),  # keys count too
    ],
)
def test_environment_size_limit_is_4kb_of_keys_and_values(env: dict[str, str], size: int) -> None:
    config = cfg(environment=env)
    if size <= 4096:
        config.validate()
        return
    with pytest.raises(ConfigError) as info:
        config.validate()
    assert str(info.value) == (
        "Function 'fn': Lambda was unable to configure your environment variables because the environment "
        f"variables you have provided exceeded the 4KB limit (they take {size} bytes)."
    )


# ---------------------------------------------------------------------------
# routing policies


@pytest.mark.parametrize(
    ("name", "cls", "destroy"),
    [("warm", WarmRouting, False), ("fresh", FreshRouting, True), ("random", RandomRouting, False)],
)
def test_routing_policy_by_name(name: str, cls: type, destroy: bool) -> None:
    policy = routing_policy(name)
    assert isinstance(policy, cls)
    assert policy.name == name
    assert policy.destroy_after_use is destroy


def test_routing_policy_passes_policy_objects_through() -> None:
    policy = RandomRouting()
    assert routing_policy(policy) is policy


@pytest.mark.parametrize("name", ["sticky", "", "Warm", "WARM", "warm "])
def test_unknown_routing_policy_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        routing_policy(name)
    assert str(info.value) == f"routing={name!r} is not a routing policy; use one of warm, fresh, random."


def _records(n: int) -> list[InstanceRecord]:
    return [InstanceRecord(id=f"r-{i}", function="r", version="1", created_at=0.0, last_used=float(i))
            for i in range(n)]


def test_warm_choose_takes_the_last_idle_or_none() -> None:
    rng = random.Random(0)
    records = _records(3)
    assert WarmRouting().choose(records, rng) is records[-1]
    assert WarmRouting().choose(records[:1], rng) is records[0]
    assert WarmRouting().choose([], rng) is None


def test_fresh_choose_is_always_none() -> None:
    rng = random.Random(0)
    for n in range(4):
        assert FreshRouting().choose(_records(n), rng) is None


def test_random_choose_has_equal_odds_for_each_idle_instance_and_a_new_one() -> None:
    rng = random.Random(1234)
    records = _records(3)
    counts: dict[str | None, int] = {}
    draws = 8000
    for _ in range(draws):
        chosen = RandomRouting().choose(records, rng)
        assert chosen is None or chosen in records
        key = None if chosen is None else chosen.id
        counts[key] = counts.get(key, 0) + 1
    assert set(counts) == {None, "r-0", "r-1", "r-2"}
    for count in counts.values():
        assert 0.21 < count / draws < 0.29


def test_random_choose_with_no_idle_is_none() -> None:
    rng = random.Random(5)
    assert all(RandomRouting().choose([], rng) is None for _ in range(50))


def test_random_choose_uses_the_given_rng() -> None:
    records = _records(5)
    first = [RandomRouting().choose(records, random.Random(seed)) for seed in range(30)]
    again = [RandomRouting().choose(records, random.Random(seed)) for seed in range(30)]
    assert first == again
    assert len({None if r is None else r.id for r in first}) > 1


# ---------------------------------------------------------------------------
# FunctionModel: acquire and routing


def test_new_model_has_version_one_and_no_instances() -> None:
    config = cfg("orders")
    m = FunctionModel(config)
    assert m.name == "orders"
    assert m.version == "1"
    assert m.versions == {"1": config}
    assert m.config is config
    assert m.instances == {}
    assert m.live() == []


def test_acquire_creates_a_starting_instance_of_the_current_version() -> None:
    m = model("orders")
    record, new = m.acquire(WARM, random.Random(0), 12.5)
    assert new is True
    assert record.state is InstanceState.STARTING
    assert record.function == "orders"
    assert record.version == "1"
    assert record.created_at == 12.5
    assert record.last_used == 12.5
    assert (record.invocations, record.resets, record.needs_init, record.retiring) == (0, 0, True, False)
    assert m.instances == {record.id: record}
    assert m.live() == [record]


def test_warm_reuses_the_most_recently_used_idle_instance() -> None:
    m = model()
    # Released out of creation order: recency is last_used, not creation.
    a, b, c = idle_instances(m, 1.0, 3.0, 2.0)
    order = []
    for t in (4.0, 5.0, 6.0):
        record, new = m.acquire(WARM, random.Random(0), t)
        assert new is False
        assert record.state is InstanceState.BUSY
        order.append(record)
    assert order == [b, c, a]
    record, new = m.acquire(WARM, random.Random(0), 7.0)
    assert new is True
    assert record not in (a, b, c)
    assert len(m.instances) == 4


def test_warm_recency_is_release_order_when_virtual_time_stands_still() -> None:
    m = model()
    a, b, c = (start(m, 0.0, FRESH)[0] for _ in range(3))
    for record in (c, a, b):  # all released at the same virtual time
        assert m.release(record, 0.0, WARM) is False
    assert [m.acquire(WARM, random.Random(0), 0.0)[0] for _ in range(3)] == [b, a, c]


def test_scale_down_recency_is_release_order_when_virtual_time_stands_still() -> None:
    m = model()
    a, b, c = (start(m, 0.0, FRESH)[0] for _ in range(3))
    for record in (c, a, b):
        m.release(record, 0.0, WARM)
    assert m.scale_down(1) == [a, c]
    assert m.scale_down(2) == [c]


def test_warm_reuses_the_same_instance_for_sequential_invocations() -> None:
    m = model()
    first, new = start(m, 0.0)
    assert new is True
    for t in range(1, 10):
        assert m.release(first, float(t), WARM) is False
        record, new = start(m, float(t) + 0.5)
        assert (record, new) == (first, False)
    assert len(m.instances) == 1


@pytest.mark.parametrize("state", [InstanceState.BUSY, InstanceState.STARTING, InstanceState.DEAD])
def test_warm_never_reuses_a_non_idle_instance(state: InstanceState) -> None:
    m = model()
    (only,) = idle_instances(m, 1.0)
    only.state = state
    record, new = m.acquire(WARM, random.Random(0), 2.0)
    assert new is True
    assert record is not only
    assert only.state is state


def test_warm_skips_busy_instances_and_takes_the_idle_one() -> None:
    m = model()
    older, newer = idle_instances(m, 1.0, 2.0)
    newer.state = InstanceState.BUSY
    record, new = m.acquire(WARM, random.Random(0), 3.0)
    assert (record, new) == (older, False)


def test_warm_never_reuses_an_instance_of_an_old_version() -> None:
    m = model()
    (old,) = idle_instances(m, 1.0)
    assert m.redeploy(cfg(memory_mb=256)) == [old]
    # Even if the caller has not destroyed it yet, it is never routed to again.
    assert old.state is InstanceState.IDLE
    record, new = m.acquire(WARM, random.Random(0), 2.0)
    assert new is True
    assert record is not old
    assert record.version == "2"
    assert record.retiring is False


def test_warm_never_reuses_an_old_version_instance_even_if_not_flagged_retiring() -> None:
    m = model()
    (old,) = idle_instances(m, 1.0)
    m.redeploy(cfg())
    old.retiring = False
    record, new = m.acquire(WARM, random.Random(0), 2.0)
    assert new is True
    assert record is not old


def test_a_retiring_instance_is_never_reused_and_is_destroyed_on_release() -> None:
    m = model()
    a, b = idle_instances(m, 1.0, 2.0)
    b.retiring = True  # the flag alone decides, whatever the version
    assert m.acquire(WARM, random.Random(0), 3.0) == (a, False)
    b.state = InstanceState.BUSY
    assert m.release(b, 4.0, WARM) is True
    assert m.release(a, 4.0, WARM) is False


def test_fresh_never_reuses_and_release_says_destroy() -> None:
    m = model()
    seen = set()
    for t in range(20):
        record, new = start(m, float(t), FRESH)
        assert new is True
        assert record.id not in seen
        seen.add(record.id)
        assert m.release(record, t + 0.5, FRESH) is True
        # The simulator destroys it; until then it must not be routed to either.
        if t % 2:
            record.state = InstanceState.DEAD
    assert len(m.instances) == 20


def test_fresh_ignores_idle_instances() -> None:
    m = model()
    idle = idle_instances(m, 1.0, 2.0)
    record, new = m.acquire(FRESH, random.Random(0), 3.0)
    assert new is True
    assert record not in idle
    assert all(r.state is InstanceState.IDLE for r in idle)


def _random_run(seed: int, steps: int = 60) -> list[tuple[str, bool]]:
    """Drive a model with random routing; each step releases every busy instance first."""
    m = model()
    rng = random.Random(seed)
    out = []
    busy: list[InstanceRecord] = []
    for step in range(steps):
        if step % 3 == 0:
            for record in busy:
                m.release(record, float(step), RANDOM)
            busy.clear()
        record, new = start(m, float(step), RANDOM, rng)
        busy.append(record)
        out.append((record.id, new))
    return out


def test_random_routing_is_reproducible_for_the_same_seed() -> None:
    assert _random_run(7) == _random_run(7)
    assert _random_run(123) == _random_run(123)


def test_random_routing_differs_between_seeds() -> None:
    runs = {tuple(_random_run(seed)) for seed in range(8)}
    assert len(runs) > 1


def test_random_routing_picks_both_reuse_and_new() -> None:
    m = model()
    rng = random.Random(99)
    idle_instances(m, 1.0, 2.0, 3.0)
    outcomes = []
    for step in range(200):
        record, new = start(m, 10.0 + step, RANDOM, rng)
        outcomes.append(new)
        assert m.release(record, 10.5 + step, RANDOM) is False
        if new:
            record.state = InstanceState.DEAD  # keep three idle instances: 1 in 4 draws is "new"
    assert 25 < outcomes.count(True) < 80
    assert 120 < outcomes.count(False) < 175


def test_random_routing_never_reuses_busy_or_old_version_instances() -> None:
    for seed in range(40):
        m = model()
        rng = random.Random(seed)
        old_idle, old_busy = idle_instances(m, 1.0, 2.0)
        old_busy.state = InstanceState.BUSY
        m.redeploy(cfg())
        current_idle, current_busy = idle_instances(m, 3.0, 4.0)
        current_busy.state = InstanceState.BUSY
        record, new = m.acquire(RANDOM, rng, 5.0)
        assert record not in (old_idle, old_busy, current_busy)
        assert new is (record is not current_idle)
        assert record.version == "2"


def test_random_routing_draws_over_idle_ordered_by_recency_then_new() -> None:
    m = model()
    b, a = idle_instances(m, 2.0, 1.0)  # least to most recently used: [a, b]
    # randrange(len(idle) + 1): an index into the idle list, or len(idle) for a new instance.
    rng = ScriptedRandom([0, 1, 0])
    assert m.acquire(RANDOM, rng, 3.0) == (a, False)
    record, new = m.acquire(RANDOM, rng, 3.0)  # idle is [b]; 1 means new
    assert new is True
    assert record not in (a, b)
    assert m.acquire(RANDOM, rng, 3.0) == (b, False)
    assert rng.answers == []


# ---------------------------------------------------------------------------
# throttling


@pytest.mark.parametrize("limit", [1, 2, 3, 5])
@pytest.mark.parametrize("policy", [WARM, FRESH, RANDOM], ids=["warm", "fresh", "random"])
def test_reserved_concurrency_throttles_beyond_the_limit(limit: int, policy: RoutingPolicy) -> None:
    m = model(reserved_concurrency=limit)
    rng = random.Random(3)
    for _ in range(limit):
        assert start(m, 1.0, policy, rng)[1] is True
    count = len(m.instances)
    with pytest.raises(Throttled):
        m.acquire(policy, rng, 2.0)
    assert len(m.instances) == count  # a throttled request creates nothing


def test_starting_instances_count_against_reserved_concurrency() -> None:
    m = model(reserved_concurrency=2)
    rng = random.Random(0)
    first, _ = m.acquire(WARM, rng, 0.0)
    second, _ = m.acquire(WARM, rng, 0.0)
    assert first.state is second.state is InstanceState.STARTING
    with pytest.raises(Throttled):
        m.acquire(WARM, rng, 0.0)


def test_busy_and_starting_count_together() -> None:
    m = model(reserved_concurrency=2)
    start(m)
    m.acquire(WARM, random.Random(0), 0.0)  # left STARTING
    with pytest.raises(Throttled):
        m.acquire(WARM, random.Random(0), 0.0)


def test_idle_and_dead_instances_do_not_count_against_reserved_concurrency() -> None:
    m = model(reserved_concurrency=1)
    (idle,) = idle_instances(m, 1.0)
    record, new = m.acquire(FRESH, random.Random(0), 2.0)  # fresh skips the idle one: new, allowed
    assert new is True
    record.state = InstanceState.DEAD
    idle.state = InstanceState.DEAD
    record, new = m.acquire(WARM, random.Random(0), 3.0)
    assert new is True


def test_at_the_limit_an_idle_instance_is_still_reused() -> None:
    m = model(reserved_concurrency=1)
    (idle,) = idle_instances(m, 1.0)
    assert m.acquire(WARM, random.Random(0), 2.0) == (idle, False)
    with pytest.raises(Throttled):
        m.acquire(WARM, random.Random(0), 3.0)
    assert m.release(idle, 4.0, WARM) is False
    assert m.acquire(WARM, random.Random(0), 5.0) == (idle, False)


@pytest.mark.parametrize("policy", [WARM, FRESH, RANDOM], ids=["warm", "fresh", "random"])
def test_reserved_concurrency_zero_always_throttles(policy: RoutingPolicy) -> None:
    m = model(reserved_concurrency=0)
    rng = random.Random(0)
    for t in range(20):
        with pytest.raises(Throttled):
            m.acquire(policy, rng, float(t))
    assert m.instances == {}


def test_no_reserved_concurrency_means_no_throttling() -> None:
    m = model()
    for _ in range(200):
        start(m)
    assert busy_count(m) == 200


def test_throttling_uses_the_current_versions_limit() -> None:
    m = model()
    start(m)
    start(m)
    m.redeploy(cfg(reserved_concurrency=2))
    # The two busy instances of version 1 still run: concurrency is per function.
    with pytest.raises(Throttled):
        m.acquire(WARM, random.Random(0), 1.0)
    m.redeploy(cfg(reserved_concurrency=None))
    record, new = m.acquire(WARM, random.Random(0), 2.0)
    assert new is True
    assert record.version == "3"


def test_redeploy_to_zero_reserved_concurrency_throttles() -> None:
    m = model(reserved_concurrency=5)
    idle_instances(m, 1.0, 2.0)
    m.redeploy(cfg(reserved_concurrency=0))
    with pytest.raises(Throttled):
        m.acquire(WARM, random.Random(0), 3.0)


def test_random_routing_never_exceeds_reserved_concurrency() -> None:
    m = model(reserved_concurrency=1)
    (a,) = idle_instances(m, 1.0)
    # First draw: "new" (index len(idle)); a second draw would pick the idle instance a,
    # but with one invocation in flight and a limit of 1 that must be throttled.
    rng = ScriptedRandom([1, 0])
    b, new = start(m, 2.0, RANDOM, rng)
    assert new is True
    assert b is not a
    assert busy_count(m) == 1
    with pytest.raises(Throttled):
        start(m, 3.0, RANDOM, rng)
    assert busy_count(m) == 1
    assert a.state is InstanceState.IDLE


def test_random_routing_stays_within_reserved_concurrency_over_many_seeds() -> None:
    for seed in range(30):
        m = model(reserved_concurrency=2)
        rng = random.Random(seed)
        idle_instances(m, 1.0, 2.0)
        running: list[InstanceRecord] = []
        for step in range(12):
            try:
                running.append(start(m, 4.0 + step, RANDOM, rng)[0])
            except Throttled:
                m.release(running.pop(0), 4.0 + step, RANDOM)
            assert busy_count(m) <= 2


# ---------------------------------------------------------------------------
# a wave: invocations that arrive together


def test_a_wave_takes_the_idle_instances_most_recent_first_then_starts_new_ones() -> None:
    m = model()
    a, b = idle_instances(m, 1.0, 2.0)
    wave = m.acquire_wave(4, WARM, random.Random(0), 3.0)
    assert [slot[1] if slot else None for slot in wave] == [False, False, True, True]
    assert [slot[0] for slot in wave if slot][:2] == [b, a]
    assert len({slot[0].id for slot in wave if slot}) == 4, "no two invocations of a wave share an instance"
    assert busy_count(m) == 4


def test_a_wave_throttles_its_last_invocations_beyond_the_free_reserved_concurrency() -> None:
    m = model(reserved_concurrency=3)
    (idle,) = idle_instances(m, 1.0)
    start(m, 2.0, FRESH)  # one more instance, in flight: two are free
    wave = m.acquire_wave(4, WARM, random.Random(0), 3.0)
    assert wave[0] == (idle, False)
    assert wave[1] is not None and wave[1][1] is True
    assert wave[2:] == [None, None]
    assert busy_count(m) == 3


@pytest.mark.parametrize("policy", [WARM, FRESH, RANDOM], ids=["warm", "fresh", "random"])
def test_a_wave_routes_the_same_way_from_the_same_state_and_seed(policy: RoutingPolicy) -> None:
    def route() -> list[tuple[str, bool] | None]:
        m = model(reserved_concurrency=6)
        idle_instances(m, 1.0, 2.0, 3.0)
        return [None if slot is None else (slot[0].id, slot[1])
                for slot in m.acquire_wave(8, policy, random.Random(5), 4.0)]

    first = route()
    assert first == route()
    assert first[6:] == [None, None]
    if policy is FRESH:
        assert all(slot is not None and slot[1] for slot in first[:6])


def test_a_throttled_invocation_of_a_wave_draws_no_random_number() -> None:
    m = model(reserved_concurrency=1)
    rng = ScriptedRandom([0])  # one draw for the first invocation: its only idle instance
    (idle,) = idle_instances(m, 1.0)
    assert m.acquire_wave(3, RANDOM, rng, 2.0) == [(idle, False), None, None]
    assert rng.answers == []


# ---------------------------------------------------------------------------
# release


def test_release_warm_makes_the_instance_idle_and_counts_the_invocation() -> None:
    m = model()
    record, _ = start(m, 1.0)
    assert m.release(record, 4.0, WARM) is False
    assert record.state is InstanceState.IDLE
    assert record.invocations == 1
    assert record.last_used == 4.0
    start(m, 5.0)
    assert m.release(record, 6.5, WARM) is False
    assert (record.invocations, record.last_used) == (2, 6.5)


def test_release_with_random_routing_keeps_the_instance() -> None:
    m = model()
    record, _ = start(m, 1.0, RANDOM, random.Random(0))
    assert m.release(record, 2.0, RANDOM) is False
    assert record.state is InstanceState.IDLE


@pytest.mark.parametrize("policy", [WARM, FRESH, RANDOM], ids=["warm", "fresh", "random"])
@pytest.mark.parametrize("state", [InstanceState.BUSY, InstanceState.STARTING])
def test_release_after_redeploy_destroys_old_version_instances(policy: RoutingPolicy, state: InstanceState) -> None:
    m = model()
    record, _ = m.acquire(WARM, random.Random(0), 0.0)
    record.state = state
    assert m.redeploy(cfg()) == []
    assert record.retiring is True
    assert m.release(record, 1.0, policy) is True


def test_release_after_two_redeploys_still_destroys() -> None:
    m = model()
    record, _ = start(m)
    m.redeploy(cfg())
    m.redeploy(cfg())
    assert m.version == "3"
    assert m.release(record, 1.0, WARM) is True


def test_release_destroys_an_old_version_instance_even_if_not_flagged_retiring() -> None:
    m = model()
    record, _ = start(m)
    m.redeploy(cfg())
    record.retiring = False
    assert m.release(record, 1.0, WARM) is True


def test_release_of_new_version_instance_after_redeploy_keeps_it() -> None:
    m = model()
    old, _ = start(m)
    m.redeploy(cfg())
    new, is_new = start(m, 1.0)
    assert is_new is True
    assert m.release(new, 2.0, WARM) is False
    assert new.state is InstanceState.IDLE
    assert m.release(old, 2.0, WARM) is True


def test_release_of_a_dead_instance_does_not_revive_it() -> None:
    m = model()
    record, _ = start(m)
    record.state = InstanceState.DEAD
    assert m.release(record, 1.0, WARM) is False
    assert record.state is InstanceState.DEAD
    assert m.live() == []


# ---------------------------------------------------------------------------
# redeploy


def test_redeploy_publishes_numbered_versions() -> None:
    first = cfg()
    m = FunctionModel(first)
    second, third = cfg(memory_mb=256), cfg(timeout_s=10.0)
    m.redeploy(second)
    assert (m.version, m.config) == ("2", second)
    m.redeploy(third)
    assert m.version == "3"
    assert m.config is third
    assert m.versions == {"1": first, "2": second, "3": third}


def test_redeploy_returns_idle_instances_and_retires_busy_ones() -> None:
    m = model()
    idle_a, idle_b = idle_instances(m, 1.0, 2.0)
    busy, _ = start(m, 3.0, FRESH)
    starting, _ = m.acquire(FRESH, random.Random(0), 3.0)
    dead, _ = start(m, 3.0, FRESH)
    dead.state = InstanceState.DEAD
    doomed = m.redeploy(cfg())
    assert sorted(r.id for r in doomed) == sorted([idle_a.id, idle_b.id])
    assert all(r.retiring for r in (idle_a, idle_b, busy, starting))
    assert busy.state is InstanceState.BUSY
    assert starting.state is InstanceState.STARTING
    assert dead.retiring is False


def test_redeploy_with_no_instances_returns_nothing() -> None:
    m = model()
    assert m.redeploy(cfg()) == []
    assert m.version == "2"


# ---------------------------------------------------------------------------
# scale_down


@pytest.mark.parametrize(
    ("keep", "expected"),
    [(0, ["c", "b", "a"]), (1, ["b", "a"]), (2, ["a"]), (3, []), (4, []), (100, [])],
)
def test_scale_down_returns_idle_instances_beyond_the_most_recently_used(keep: int, expected: list[str]) -> None:
    m = model()
    # Released in the order b, a, c... recency by last_used: c (3.0) > b (2.0) > a (1.0).
    b, a, c = idle_instances(m, 2.0, 1.0, 3.0)
    names = {a.id: "a", b.id: "b", c.id: "c"}
    doomed = m.scale_down(keep)
    assert sorted(names[r.id] for r in doomed) == sorted(expected)
    assert all(r.state is InstanceState.IDLE for r in doomed)  # the model only decides


def test_scale_down_only_considers_idle_instances() -> None:
    m = model()
    older, newer = idle_instances(m, 1.0, 2.0)
    busy, _ = start(m, 5.0, FRESH)
    starting, _ = m.acquire(FRESH, random.Random(0), 6.0)
    dead, _ = start(m, 7.0, FRESH)
    dead.state = InstanceState.DEAD
    dead.last_used = 99.0
    assert m.scale_down(0) == [newer, older]
    # Busy and starting instances do not take the places that ``keep`` keeps.
    assert m.scale_down(1) == [older]
    assert busy.state is InstanceState.BUSY
    assert starting.state is InstanceState.STARTING


def test_scale_down_with_no_idle_instances_is_empty() -> None:
    m = model()
    start(m)
    assert m.scale_down(0) == []


# ---------------------------------------------------------------------------
# expired


def test_expired_after_keepalive() -> None:
    m = model(keepalive_s=100.0)
    a, b = idle_instances(m, 10.0, 50.0)
    assert m.expired(10.0) == []
    assert m.expired(110.0) == []  # idle exactly keepalive_s: not yet
    assert m.expired(110.5) == [a]
    assert m.expired(150.0) == [a]
    assert sorted(r.id for r in m.expired(150.5)) == sorted([a.id, b.id])


@pytest.mark.parametrize("state", [InstanceState.BUSY, InstanceState.STARTING, InstanceState.DEAD])
def test_expired_only_returns_idle_instances(state: InstanceState) -> None:
    m = model(keepalive_s=10.0)
    other, record = idle_instances(m, 0.0, 1.0)
    record.state = state
    assert m.expired(1000.0) == [other]


def test_expired_uses_each_instances_own_version_keepalive() -> None:
    m = model(keepalive_s=100.0)
    (v1,) = idle_instances(m, 0.0)
    m.redeploy(cfg(keepalive_s=1000.0))  # v1 is doomed, but the caller has not destroyed it yet
    (v2,) = idle_instances(m, 0.0)
    assert v2.version == "2"
    assert m.expired(150.0) == [v1]
    assert sorted(r.id for r in m.expired(1500.0)) == sorted([v1.id, v2.id])


def test_expired_uses_own_version_keepalive_when_new_version_is_shorter() -> None:
    m = model(keepalive_s=1000.0)
    (v1,) = idle_instances(m, 0.0)
    m.redeploy(cfg(keepalive_s=100.0))
    (v2,) = idle_instances(m, 0.0)
    assert m.expired(150.0) == [v2]
    assert v1 not in m.expired(999.0)


# ---------------------------------------------------------------------------
# instance ids


def test_instance_ids_are_unique_within_a_function() -> None:
    m = model()
    ids = []
    for t in range(30):
        record, _ = start(m, float(t), FRESH)
        ids.append(record.id)
        m.release(record, float(t), FRESH)
        record.state = InstanceState.DEAD  # destroyed ids are never handed out again
    for _ in range(10):
        ids.append(start(m)[0].id)
    assert len(set(ids)) == len(ids) == 40
    assert set(m.instances) == set(ids)
    assert all(m.instances[i].id == i for i in ids)


def test_throttled_requests_do_not_use_up_ids() -> None:
    throttled = model(reserved_concurrency=1)
    plain = model(reserved_concurrency=1)
    first, _ = start(throttled)
    start(plain)
    for _ in range(5):
        with pytest.raises(Throttled):
            throttled.acquire(WARM, random.Random(0), 0.0)
    first.state = InstanceState.DEAD
    next(iter(plain.instances.values())).state = InstanceState.DEAD
    assert start(throttled)[0].id == start(plain)[0].id


def test_instance_ids_are_per_function() -> None:
    a, b, lone = model("alpha"), model("beta"), model("beta")
    for _ in range(7):
        start(a)
    a_ids = set(a.instances)
    b_first = start(b)[0]
    # beta's numbering does not depend on how many instances alpha created.
    assert b_first.id == start(lone)[0].id
    assert b_first.function == "beta"
    assert all(r.function == "alpha" for r in a.instances.values())
    assert all("alpha" in i for i in a_ids)
    assert "beta" in b_first.id
    assert b_first.id not in a_ids


def test_instance_ids_do_not_collide_between_similar_function_names() -> None:
    models = [model(name) for name in ("a", "a-1", "a-11", "a1", "a-1-1")]
    ids: list[str] = []
    for m in models:
        for _ in range(12):
            ids.append(start(m)[0].id)
    assert len(set(ids)) == len(ids)


def test_redeploy_does_not_restart_instance_numbering() -> None:
    m = model()
    before = {start(m)[0].id for _ in range(3)}
    m.redeploy(cfg())
    after = {start(m)[0].id for _ in range(3)}
    assert not before & after


# ---------------------------------------------------------------------------
# VirtualClock


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, 0.0),
        ({"seconds": 5.0}, 5.0),
        ({"minutes": 2}, 120.0),
        ({"hours": 1.5}, 5400.0),
        ({"seconds": 1, "minutes": 1, "hours": 1}, 3661.0),
    ],
)
def test_clock_advance_converts_units(kwargs: dict[str, float], expected: float) -> None:
    seen: list[float] = []
    clock = VirtualClock(seen.append)
    assert clock.now() == 0.0
    assert clock.advance(**kwargs) == expected
    assert clock.now() == expected
    assert seen == [expected]


def test_clock_accumulates_and_reports_each_new_time() -> None:
    seen: list[float] = []
    clock = VirtualClock(seen.append)
    clock.advance(10)
    clock.advance(minutes=1)
    assert clock.advance(0.5) == 70.5
    assert seen == [10.0, 70.0, 70.5]


def test_clock_without_callback() -> None:
    clock = VirtualClock()
    assert clock.advance(hours=2) == 7200.0
    assert clock.now() == 7200.0


@pytest.mark.parametrize(
    "kwargs", [{"seconds": -1.0}, {"minutes": -0.5}, {"hours": -1}, {"seconds": 30, "minutes": -1}],
)
def test_clock_never_goes_back(kwargs: dict[str, float]) -> None:
    seen: list[float] = []
    clock = VirtualClock(seen.append)
    clock.advance(100)
    with pytest.raises(ConfigError, match="would go back in time"):
        clock.advance(**kwargs)
    assert clock.now() == 100.0
    assert seen == [100.0]


@pytest.mark.parametrize("kwargs", [{"seconds": math.nan}, {"minutes": math.nan}, {"hours": math.inf},
                                    {"seconds": math.inf, "minutes": -math.inf}])
def test_clock_rejects_nan_and_infinite_durations(kwargs: dict[str, float]) -> None:
    # NaN would make now() NaN for good, and keep-alive expiry would never fire again.
    seen: list[float] = []
    clock = VirtualClock(seen.append)
    clock.advance(10)
    with pytest.raises(ConfigError, match=re.escape("clock.advance(")):
        clock.advance(**kwargs)
    assert clock.now() == 10.0
    assert seen == [10.0]


def test_clock_drives_keepalive_expiry() -> None:
    m = model(keepalive_s=60.0)
    reaped: list[str] = []
    clock = VirtualClock(lambda now: reaped.extend(r.id for r in m.expired(now)))
    (record,) = idle_instances(m, 0.0)
    clock.advance(minutes=1)
    assert reaped == []
    clock.advance(0.001)
    assert reaped == [record.id]


# ---------------------------------------------------------------------------
# TraceEvent


def test_trace_event_to_dict_has_every_field() -> None:
    detail = {"cold_start": True, "duration_ms": 1.5}
    event = TraceEvent(3.5, "invoke", "fn", "fn-1", "2", "req-1", detail)
    data = event.to_dict()
    assert data == {"t": 3.5, "kind": "invoke", "function": "fn", "instance": "fn-1", "version": "2",
                    "request_id": "req-1", "detail": {"cold_start": True, "duration_ms": 1.5}}
    assert type(data["detail"]) is dict
    data["detail"]["extra"] = 1
    assert "extra" not in event.detail


def test_trace_event_defaults() -> None:
    assert TraceEvent(0.0, "redeploy", "fn").to_dict() == {
        "t": 0.0, "kind": "redeploy", "function": "fn", "instance": None, "version": None,
        "request_id": None, "detail": {},
    }


def test_trace_event_detail_mapping_becomes_a_plain_dict() -> None:
    from types import MappingProxyType

    event = TraceEvent(1.0, "throttled", "fn", detail=MappingProxyType({"status": 429}))
    data = event.to_dict()
    assert data["detail"] == {"status": 429}
    assert type(data["detail"]) is dict
