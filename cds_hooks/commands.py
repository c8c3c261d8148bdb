"""Registry of the CLI subcommands beyond `check`, and the one place the packages meet.

  cds_hooks/service_commands.py   serve, feedback report, db upgrade: composes the CDS service,
                                  the SMART page (smart_app) and, with --demo, the demo world
  sandbox/command.py               sandbox (the ``[sandbox]`` extra's rehearsal kit)

The command line is the composition point: the service proper (the rest of ``cds_hooks``),
``smart_app`` and ``sandbox`` never import one another (``tests/test_package_boundaries.py``).
"""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from cds_hooks import service_commands

    service_commands.register(sub)
    try:
        from sandbox import command as sandbox_command
    except ModuleNotFoundError as exc:
        if exc.name != "sandbox":
            raise
        return  # a build without the demo world
    sandbox_command.register(sub, service_factory=service_commands.sandbox_service_factory)
