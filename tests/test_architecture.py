"""The conversation side never imports a platform SDK or the web framework."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("linebot", "telegram", "starlette", "uvicorn", "httpx", "aiohttp", "fastapi")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_intents_faq_and_engine_stay_channel_neutral() -> None:
    files = [*ROOT.glob("intents/**/*.py"), *ROOT.glob("faq/**/*.py"), ROOT / "bot" / "engine.py"]
    assert len(files) > 5
    offenders = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in imported_modules(path)
        if name.split(".")[0] in FORBIDDEN
    }
    assert not offenders, sorted(offenders)
