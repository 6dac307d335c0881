"""The fixtures ``lambda_sim``, ``lambda_function`` and ``lambda_sim_services``, and the
``lambda_sim`` marker's settings; without ``--lambda-sim`` the tests that use them are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_lambdasim.options import SKIP_REASON, enabled, parse_services_option, setting, simulator_settings
from pytest_lambdasim.summary import TEST_TRACE

if TYPE_CHECKING:
    from lambdasim import Function, Simulator
    from lambdasim._services.service import Services

FIXTURES = frozenset({"lambda_sim", "lambda_function"})
# Marker keywords that configure the Simulator; every other keyword is a deploy() default.
SIM_KEYS = frozenset({"sandbox", "routing", "seed", "services", "region", "init_timeout_s"})
DEPLOY_KEYS = frozenset({"memory_mb", "timeout_s", "ephemeral_storage_mb", "environment", "reserved_concurrency",
                         "keepalive_s", "layers"})
# The marker's deploy() defaults for this test, from lambda_sim to lambda_function.
DEPLOY_DEFAULTS = pytest.StashKey[dict[str, Any]]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if enabled(config):
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        uses = FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses or item.get_closest_marker("lambda_sim") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def lambda_sim_services(request: pytest.FixtureRequest) -> Iterator[Services]:
    """The backing services of this session (of this worker, under pytest-xdist).

    Started once, shared by every test's simulator, emptied between tests.
    """
    from lambdasim._services.service import Services, parse_services

    config = request.config
    text = setting(config, "lambda_sim_services")
    source = "--lambda-sim-services" if config.getoption("lambda_sim_services") else "ini lambda_sim_services"
    services = Services(parse_services(parse_services_option(text, source)))
    try:
        services.start_configured()
        yield services
    finally:
        services.close()


@pytest.fixture
def lambda_sim(request: pytest.FixtureRequest, lambda_sim_services: Services,
               _lambda_sim_routing: str | None) -> Iterator[Simulator]:
    """A :class:`lambdasim.Simulator` for this test: its instances, /tmp and clock are new."""
    if not enabled(request.config):
        pytest.skip(SKIP_REASON)
    from lambdasim import Simulator

    settings = simulator_settings(request.config)
    marker = request.node.get_closest_marker("lambda_sim")
    overrides = dict(marker.kwargs) if marker is not None else {}
    unknown = sorted(set(overrides) - SIM_KEYS - DEPLOY_KEYS)
    if unknown:
        raise pytest.UsageError(
            f"{request.node.nodeid}: @pytest.mark.lambda_sim does not know {', '.join(unknown)}; it takes "
            f"{', '.join(sorted(SIM_KEYS | DEPLOY_KEYS))}")
    wanted_services = overrides.pop("services", None)
    settings.update({k: v for k, v in overrides.items() if k in SIM_KEYS})
    if _lambda_sim_routing is not None:  # --lambda-sim-detect: this is the test's warm or its fresh run
        settings["routing"] = _lambda_sim_routing
    # Neither data nor faults may leak from one test to the next: undo what earlier tests left.
    for service in lambda_sim_services.values():
        service.reset_faults()
        service.flush()
    for kind in parse_services_option(",".join(wanted_services or []), "lambda_sim marker services"):
        lambda_sim_services[kind]  # started on first use, then shared
    sim = Simulator(services=lambda_sim_services, track_tmp=True, track_tmp_access=_lambda_sim_routing is not None,
                    **settings)
    request.node.stash[DEPLOY_DEFAULTS] = {k: v for k, v in overrides.items() if k in DEPLOY_KEYS}
    try:
        yield sim
    finally:
        sim.close()
        request.node.stash[TEST_TRACE] = [event.to_dict() for event in sim.trace]


@pytest.fixture
def lambda_function(request: pytest.FixtureRequest, lambda_sim: Simulator) -> Callable[..., Function]:
    """Deploy a function: ``lambda_function("app.main.handler", code_dir=..., **config)``."""
    defaults = request.node.stash.get(DEPLOY_DEFAULTS, {})

    def deploy(handler: str, code_dir: str | os.PathLike[str], **config: Any) -> Function:
        return lambda_sim.deploy(handler, code_dir=code_dir, **{**defaults, **config})

    return deploy
