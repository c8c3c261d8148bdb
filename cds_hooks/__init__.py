"""The CDS Hooks 2.0 service for CPT 97530 (the ``cds97530`` command line, in ``cds97530/``, serves it).

    from cds_hooks.app import create_app            # the FastAPI app factory
    from cds_hooks.settings import CdsSettings       # CDS97530_* settings

Modules, one idea each: settings, clients (registry of EHRs), auth (JWT), services (+ services.yaml,
discovery), models (request bodies), prefetch (templates, values), fhir_fetch (FHIR server reads),
gather (prefetch first, then FHIR), hooks (per-service work), cards (+ cards.yaml, pure), store
(SQLAlchemy; migrations/, migrate), routes, errors, logs. No command line here, and no import of
smart_app or sandbox: ``cds97530`` composes them.
The claim hook's definition is hookdefs/org.cds97530.claim-sign.md.
"""
