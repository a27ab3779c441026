"""Service defaults shared by every Concerto service."""

from concerto_runtime.problems import Problem, install_problem_handlers, problem_response
from concerto_runtime.service import Runtime, ServiceDefinition, create_app, run, runtime_of, serve
from concerto_runtime.settings import Settings
from concerto_runtime.temporal import connect_temporal, create_worker, signal_if_running, signal_with_start, start_once

__all__ = [
    "Problem",
    "Runtime",
    "ServiceDefinition",
    "Settings",
    "connect_temporal",
    "create_app",
    "create_worker",
    "install_problem_handlers",
    "problem_response",
    "run",
    "runtime_of",
    "serve",
    "signal_if_running",
    "signal_with_start",
    "start_once",
]
