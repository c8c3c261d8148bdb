"""audit: the retrospective 97530 audit over FHIR Bulk Data exports (issue 15).

The cards judge one visit at signing; billing and compliance leads also audit a whole period the way
payers and the OIG do. This package reads an ``$export`` (NDJSON per type, plain or gzip, or its
manifest), joins the resources into visits, evaluates every billed line with the same library as the
service (``plugin``), and writes one row per billed line (Parquet or CSV) plus a self-contained HTML
report. Two engines give the same rows: ``local`` (a process pool, SQLite on disk) and ``spark``.

Modules, one idea each: inputs (files, manifest, NDJSON lines), join (routing and visit assembly, pure),
rows (evaluation -> one row per billed line, pure), summary (report figures, pure), charts (SVG, pure),
output (Parquet/CSV), html_report, progress, local_engine, spark_engine, run (orchestration), command
(the ``cds97530 audit`` CLI), payer_map, synthetic (exports of any size).

Imports go downward only: ``plugin`` and third-party libraries, never the service or the SMART page.
Nothing is imported here, so ``cds97530`` registers the subcommand without loading the plugin.

    from audit.run import run_audit
    result = run_audit(["export/manifest.json"], "out", engine="local")
    print(result.line())
"""
