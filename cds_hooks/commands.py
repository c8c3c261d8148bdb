"""Registry of the CLI subcommands beyond `check`.

Each owning module exposes ``register(sub)`` that adds its subparser(s) and sets ``run``:
  cds_hooks/service_commands.py   serve, feedback report, db upgrade   (service owner)
  cds_hooks/sandbox/command.py     sandbox                              (integration owner)
A module that is absent or fails to import with ImportError is skipped, so `check` always works.
"""
from __future__ import annotations

import argparse
import importlib

_MODULES = ("cds_hooks.service_commands", "cds_hooks.sandbox.command")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for name in _MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # not written yet
            raise
        module.register(sub)
