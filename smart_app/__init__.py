"""The SMART on FHIR review page (the card's link), deployable on its own or beside the service.

Public surface:
    create_app(settings, http=None, sessions=None)   the SMART app (``/launch``, ``/callback``, ``/evaluation``)
    SmartSettings                                    its settings (env prefix ``SMART_``)

The demo EHR and its authorization server live in the ``sandbox`` package; this package imports
neither it nor the CDS service.
"""
from __future__ import annotations

from smart_app.settings import SmartSettings

__all__ = ["SmartSettings", "create_app"]


def __getattr__(name: str):  # lazy: importing the package must not import FastAPI apps
    if name == "create_app":
        from smart_app.app import create_app

        return create_app
    raise AttributeError(name)
