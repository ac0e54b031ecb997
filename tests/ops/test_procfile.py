"""The Procfile runs what this code provides."""

from __future__ import annotations

import importlib
import re

from tests.conftest import ROOT


def processes() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text(encoding="utf-8").splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_release_web_answer_and_worker_are_declared() -> None:
    procs = processes()
    assert set(procs) == {"release", "web", "answer", "worker"}
    assert procs["release"] == "python -m bot migrate"
    assert "python -m bot worker" in procs["worker"]
    assert "python -m bot answer" in procs["answer"]


def test_web_only_accepts_and_the_answer_command_exists() -> None:
    """The web processes leave answering to `answer` (see the README): a command the CLI
    must know, else accepted events would wait forever."""
    from bot.__main__ import build_parser, cmd_answer

    assert "WEB_ANSWERS=${WEB_ANSWERS:-0}" in processes()["web"]
    assert build_parser().parse_args(["answer"]).func is cmd_answer


def test_web_runs_uvicorn_workers_from_the_environment() -> None:
    web = processes()["web"]
    assert "--workers ${WEB_CONCURRENCY:-1}" in web and "--factory" in web
    target = re.search(r"--factory (\S+)", web)
    assert target is not None
    module, name = target.group(1).split(":")
    assert callable(getattr(importlib.import_module(module), name))
    assert "LOG_FORMAT=${LOG_FORMAT:-json}" in web
