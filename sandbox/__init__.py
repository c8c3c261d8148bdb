"""The demo world, apart from what a hospital deploys (install with the ``[sandbox]`` extra).

* ``fhir_server`` runs the real Node FHIR server (its files are package data in ``fhir_server_js``);
* ``synthetic`` builds fictional patients, visits and notes;
* ``ehr`` is the simulated EHR (CDS client): signs CDS Hooks JWTs, serves its JWKS, fires hooks,
  applies suggestions and posts feedback; ``command`` is ``cds97530 sandbox``;
* ``demo_ehr`` + ``authserver`` are the browser demo of ``cds97530 serve --demo``: an EHR with
  pages and a local SMART authorization server (no login: development only).

Nothing here imports the service (``cds_hooks``) or the SMART page (``smart_app``): the demo talks
to them over HTTP, as a real EHR does, and the command line puts them together. Neither of them
imports anything from here.
"""
