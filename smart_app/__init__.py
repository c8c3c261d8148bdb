"""SMART on FHIR launch page, local SMART authorization server and demo EHR (issue 6).

Public surface:
    create_app(settings, http=None)        the SMART app (``/launch``, ``/callback``, ``/evaluation``)
    SmartSettings                          its settings (env prefix ``SMART_``)
    create_demo_app / mount_demo           the demo EHR + local auth server + FHIR facade (``serve --demo``)
"""
from __future__ import annotations

from smart_app.settings import SmartSettings

__all__ = ["SmartSettings", "create_app", "create_demo_app", "mount_demo"]


def __getattr__(name: str):  # lazy: importing the package must not import FastAPI apps
    if name == "create_app":
        from smart_app.app import create_app

        return create_app
    if name in {"create_demo_app", "mount_demo"}:
        from smart_app import demo

        return getattr(demo, name)
    raise AttributeError(name)
