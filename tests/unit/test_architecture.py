"""The shape of the code: services never import each other, and importing does no I/O."""

from __future__ import annotations

import ast
import importlib
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("producer", "router", "sender")


def modules_under(package: str) -> list[str]:
    """Every module of a package, as dotted names."""
    names = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions, as absolute names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # a relative import stays inside its own package
                continue
            module = node.module or ""
            imported.add(module)
            imported.update(f"{module}.{alias.name}" for alias in node.names)
    return imported


def test_the_services_are_found() -> None:
    """The walk below sees the modules of every service (so the checks are not vacuous)."""
    for service in SERVICES:
        assert f"services.{service}.app" in modules_under(f"services/{service}")


@pytest.mark.parametrize("service", SERVICES)
def test_services_never_import_each_other(service: str) -> None:
    """A service imports only itself, services.runtime and schemas of Hookline's code."""
    others = [other for other in SERVICES if other != service]
    offenders = []
    for path in sorted((ROOT / "services" / service).rglob("*.py")):
        for module in imported_modules(path):
            if any(
                module == f"services.{other}" or module.startswith(f"services.{other}.")
                for other in others
            ):
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


def test_runtime_imports_no_service() -> None:
    """services.runtime is shared, so it depends on no service."""
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted((ROOT / "services" / "runtime").rglob("*.py"))
        for module in imported_modules(path)
        if any(module.startswith(f"services.{service}") for service in SERVICES)
    ]
    assert offenders == []


def test_schemas_import_nothing_from_services() -> None:
    """The wire contract stands alone: schemas never import services."""
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted((ROOT / "schemas").rglob("*.py"))
        for module in imported_modules(path)
        if module == "services" or module.startswith("services.")
    ]
    assert offenders == []


def test_every_module_imports_without_io(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every module of schemas and services imports cleanly, opening no network connection."""

    def no_connect(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a module opens a connection at import")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    monkeypatch.setattr(socket, "create_connection", no_connect)
    modules = [*modules_under("schemas"), *modules_under("services")]
    assert len(modules) > 40
    failures = []
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as error:  # collect them all, then show them all
            failures.append(f"{module}: {type(error).__name__}: {error}")
    assert failures == []
