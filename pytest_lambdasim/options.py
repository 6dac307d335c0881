"""The plugin's options and ini keys, the ``lambda_sim`` marker, and reading them.

Every option has an ini key of the same name; the option wins when both are given.
"""

from __future__ import annotations

from typing import Any

import pytest

SKIP_REASON = "needs --lambda-sim"
# lambdasim._sandbox.sandbox_names(), spelled out: the plugin imports nothing of lambdasim until a
# test asks for a simulator (a test checks that the two agree).
SANDBOX_NAMES = "auto, namespace or fakefs"
NETWORKS = ("isolated", "internet", "host")  # lambdasim._sandbox._network.NETWORKS, spelled out too
PACKAGE_VIEWS = ("host", "strict")  # lambdasim._package.PACKAGE_VIEWS, spelled out too
INTERPRETER_MODES = ("fallback", "strict")  # lambdasim._interpreters.INTERPRETER_MODES, spelled out too


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lambda-sim", "lambdasim: Lambda execution environments")
    group.addoption("--lambda-sim", action="store_true", default=None, dest="lambda_sim",
                    help="run tests that use lambdasim's fixtures, marker or scenarios (ini: lambda_sim = true)")
    group.addoption("--lambda-sim-sandbox", dest="lambda_sim_sandbox", metavar="NAME",
                    help=f"sandbox for instances: {SANDBOX_NAMES} (ini: lambda_sim_sandbox; default auto)")
    group.addoption("--lambda-sim-network", dest="lambda_sim_network", choices=NETWORKS,
                    help="what instances reach: isolated (the simulator's services only, as a function in a VPC "
                         "without NAT), internet (outbound traffic too, through pasta or slirp4netns) or host "
                         "(the host's network) (ini: lambda_sim_network; default isolated)")
    group.addoption("--lambda-sim-package", dest="lambda_sim_package", choices=PACKAGE_VIEWS,
                    help="what functions import: host (the host's packages too, each import from outside the "
                         "package, layers and Lambda's runtime listed in the summary) or strict (such an import "
                         "fails, as on Lambda) (ini: lambda_sim_package; default host)")
    group.addoption("--lambda-sim-interpreter", dest="lambda_sim_interpreter", choices=INTERPRETER_MODES,
                    help="a function whose Runtime python3.X is not installed here: fallback (runs on lambdasim's "
                         "Python, named in the summary) or strict (refused at deploy, with how to install it) "
                         "(ini: lambda_sim_interpreter; default fallback)")
    group.addoption("--lambda-sim-routing", dest="lambda_sim_routing", choices=("warm", "fresh", "random"),
                    help="which instance takes an invocation (ini: lambda_sim_routing; default warm)")
    group.addoption("--lambda-sim-seed", dest="lambda_sim_seed", type=int, metavar="N",
                    help="seed for random routing and ids, to repeat a run (ini: lambda_sim_seed; "
                         "default: a new seed for each simulator, so ids differ between runs)")
    group.addoption("--lambda-sim-services", dest="lambda_sim_services", metavar="LIST",
                    help="services to start once per session, e.g. 'aws,redis=binary,memcached=docker' "
                         "(ini: lambda_sim_services; others start on first use)")
    group.addoption("--lambda-sim-report", dest="lambda_sim_report", metavar="PATH",
                    help="write the full trace of every test's simulator as JSON (ini: lambda_sim_report)")
    group.addoption("--lambda-sim-detect", action="store_true", default=None, dest="lambda_sim_detect",
                    help="run every lambda_sim test twice, with warm and with fresh routing, and list the tests "
                         "that pass only warm (implies --lambda-sim; ini: lambda_sim_detect)")
    parser.addini("lambda_sim", "switch lambdasim on, like --lambda-sim", type="bool", default=False)
    parser.addini("lambda_sim_sandbox", "sandbox for instances", default="auto")
    parser.addini("lambda_sim_network", "what instances reach: isolated, internet or host", default="isolated")
    parser.addini("lambda_sim_package", "what functions import: host or strict", default="host")
    parser.addini("lambda_sim_interpreter", "a Runtime python3.X not installed here: fallback or strict",
                  default="fallback")
    parser.addini("lambda_sim_routing", "routing policy: warm, fresh or random", default="warm")
    parser.addini("lambda_sim_seed", "seed for random routing and ids (default: a new one each time)", default="")
    parser.addini("lambda_sim_services", "services to start once per session, e.g. aws,redis=binary", default="")
    parser.addini("lambda_sim_report", "path of the JSON trace report", default="")
    parser.addini("lambda_sim_detect", "run lambda_sim tests warm and fresh, like --lambda-sim-detect", type="bool",
                  default=False)
    parser.addini("lambda_sim_scenarios", "glob(s) of YAML scenarios collected as tests", type="linelist",
                  default=["scenarios/*.yaml"])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "lambda_sim(**settings): per-test lambdasim settings, e.g. routing='fresh', services=['redis'], "
        "or deploy defaults such as ephemeral_storage_mb=1024",
    )


def enabled(config: pytest.Config) -> bool:
    flag = config.getoption("lambda_sim")
    return bool(flag) if flag is not None else bool(config.getini("lambda_sim")) or detect_enabled(config)


def detect_enabled(config: pytest.Config) -> bool:
    flag = config.getoption("lambda_sim_detect")
    return bool(flag) if flag is not None else bool(config.getini("lambda_sim_detect"))


def setting(config: pytest.Config, name: str) -> str:
    value = config.getoption(name)
    return str(value) if value is not None else str(config.getini(name))


def simulator_settings(config: pytest.Config) -> dict[str, Any]:
    """The ``Simulator`` settings the options and ini keys give: sandbox, network, package, interpreter, routing
    and seed."""
    return {"sandbox": setting(config, "lambda_sim_sandbox"), "network": setting(config, "lambda_sim_network"),
            "package": setting(config, "lambda_sim_package"),
            "interpreter": setting(config, "lambda_sim_interpreter"),
            "routing": setting(config, "lambda_sim_routing"),
            "seed": int(seed) if (seed := setting(config, "lambda_sim_seed")) else None}


def parse_services_option(text: str, source: str) -> dict[str, str]:
    """``"aws,redis=binary"`` -> ``{"aws": "auto", "redis": "binary"}``: the services text of
    the CLI's ``--services``; a mistake is a usage error that names ``source``."""
    from lambdasim._errors import ConfigError
    from lambdasim._source import services_text

    try:
        return services_text(text, source)
    except ConfigError as e:
        raise pytest.UsageError(str(e)) from None
