"""The fixtures ``lambda_sim``, ``lambda_function``, ``lambda_serve`` and ``lambda_sim_services``, and the
``lambda_sim`` marker's settings; without ``--lambda-sim`` the tests that use them are skipped.

Relative paths given to the ``lambda_sim`` simulator (``code_dir``, ``layers``, a template's
path, in ``deploy``, ``lambda_function``, ``redeploy``, ``deploy_from_template`` and the
marker's deploy defaults) are resolved against pytest's rootdir, not the working directory,
so that ``cd tests && pytest --lambda-sim`` deploys the same code as ``pytest --lambda-sim``.
The rootdir, not the ini file's folder: pytest always has one (an ini file is optional), it
honours ``--rootdir``, pytest prints it in its header, and test ids and the
``lambda_sim_scenarios`` globs are relative to it already. With an ini file it is that
file's folder anyway.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_lambdasim.options import SKIP_REASON, enabled, parse_services_option, setting, simulator_settings
from pytest_lambdasim.summary import TEST_TRACE

if TYPE_CHECKING:
    from lambdasim import Function, Simulator
    from lambdasim._serve._served import Served
    from lambdasim._services.service import Services

FIXTURES = frozenset({"lambda_sim", "lambda_function", "lambda_serve"})
# Marker keywords that configure the Simulator; every other keyword is a deploy() default.
SIM_KEYS = frozenset({"sandbox", "routing", "seed", "services", "region", "init_timeout_s", "freeze", "network",
                      "package", "interpreter"})
DEPLOY_KEYS = frozenset({"memory_mb", "timeout_s", "ephemeral_storage_mb", "environment", "reserved_concurrency",
                         "keepalive_s", "layers", "runtime", "snap_start", "provisioned_concurrency",
                         "tenant_isolation", "capacity_provider", "max_concurrency", "min_environments",
                         "max_environments"})
"""The marker's deploy() defaults, the execution models' settings among them."""
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
    """A :class:`lambdasim.Simulator` for this test: its instances, /tmp and clock are new; relative paths
    (``code_dir``, ``layers``, templates) are taken from pytest's rootdir."""
    if not enabled(request.config):
        pytest.skip(SKIP_REASON)
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
    # A string is the services text of the option and the CLI ("aws,redis"), as Simulator(services="aws") takes one.
    text = wanted_services if isinstance(wanted_services, str) else ",".join(wanted_services or [])
    for kind in parse_services_option(text, "lambda_sim marker services"):
        lambda_sim_services[kind]  # started on first use, then shared
    sim = _rootdir_simulator()(rootdir=request.config.rootpath, services=lambda_sim_services, track_tmp=True,
                               track_tmp_access=_lambda_sim_routing is not None, **settings)
    request.node.stash[DEPLOY_DEFAULTS] = {k: v for k, v in overrides.items() if k in DEPLOY_KEYS}
    try:
        yield sim
    finally:
        sim.close()
        request.node.stash[TEST_TRACE] = [event.to_dict() for event in sim.trace]


@pytest.fixture
def lambda_function(request: pytest.FixtureRequest, lambda_sim: Simulator) -> Callable[..., Function]:
    """Deploy a function: ``lambda_function("app.main.handler", code_dir=..., **config)`` (``code_dir``
    relative to pytest's rootdir)."""
    defaults = request.node.stash.get(DEPLOY_DEFAULTS, {})

    def deploy(handler: str, code_dir: str | os.PathLike[str], **config: Any) -> Function:
        return lambda_sim.deploy(handler, code_dir=code_dir, **{**defaults, **config})

    return deploy


@pytest.fixture
def lambda_serve(lambda_sim: Simulator) -> Iterator[Served]:
    """``lambda_sim`` served over HTTP on 127.0.0.1 (:meth:`lambdasim.Simulator.serve`): the base URL of Lambda's
    Invoke API and the template's routes (a ``str``), with ``.function_urls``. Functions deployed during the
    test are served from their next request on."""
    with lambda_sim.serve() as url:
        yield url


def _in_rootdir(rootdir: Path, given: str | os.PathLike[str]) -> str:
    """``given`` with a relative path taken from ``rootdir``; unchanged when it is absolute or the working
    directory is the rootdir (so that messages name it as the test wrote it)."""
    text = os.fspath(given)
    if os.path.isabs(text) or os.path.realpath(os.getcwd()) == os.path.realpath(rootdir):
        return text
    return os.path.join(rootdir, text)


def _check_folder(rootdir: Path, given: str | os.PathLike[str], setting: str, what: str) -> str:
    """The folder ``given`` names (see :func:`_in_rootdir`); a ConfigError naming the absolute path tried if
    there is none."""
    path = _in_rootdir(rootdir, given)
    if os.path.isdir(path):
        return path
    from lambdasim._errors import ConfigError

    text = os.fspath(given)
    taken = "" if os.path.isabs(text) else (f"; in a test a relative path is taken from pytest's rootdir "
                                             f"({rootdir}), not the working directory")
    raise ConfigError(f"{setting}={text!r} is not a directory (looked for {os.path.realpath(path)}){taken}; "
                      f"pass {what}.")


@functools.cache
def _rootdir_simulator() -> Callable[..., Simulator]:
    """The ``Simulator`` subclass of the ``lambda_sim`` fixture (built on first use: lambdasim is imported
    only when a test asks for a simulator)."""
    from lambdasim import Simulator

    class PytestSimulator(Simulator):
        """A :class:`lambdasim.Simulator` whose relative paths are taken from pytest's rootdir."""

        def __init__(self, *, rootdir: Path, **settings: Any) -> None:
            self.rootdir = rootdir
            super().__init__(**settings)

        def _code_dir(self, code_dir: str | os.PathLike[str]) -> str:
            return super()._code_dir(_check_folder(
                self.rootdir, code_dir, "code_dir", "the folder that holds the handler's module, as it would be "
                                                    "zipped for Lambda"))

        def _layers(self, layers: Sequence[str | os.PathLike[str]] | None) -> tuple[str, ...]:
            what = "the layer's folder (its content is mounted at /opt)"
            return super()._layers([_check_folder(self.rootdir, layer, f"layers[{i}]", what)
                                    for i, layer in enumerate(layers or ())])

        def deploy_from_template(self, path: str | os.PathLike[str], function: str, **overrides: Any) -> Function:
            if overrides.get("layers") is not None:
                overrides["layers"] = [_in_rootdir(self.rootdir, layer) for layer in overrides["layers"]]
            return super().deploy_from_template(_in_rootdir(self.rootdir, path), function, **overrides)

    return PytestSimulator
