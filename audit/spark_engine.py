"""The ``spark`` engine: the same join and evaluation on a Spark cluster (or ``local[*]``).

Spark reads the NDJSON (``spark.read.text``: plain or gzip, local paths or the cluster's file systems),
routes each line with ``audit.join.route`` inside ``mapInArrow`` (the Arrow form of ``mapInPandas``),
does the join relationally (the same steps as the local engine's SQL: newest copy per reference, visit
keys, referenced Binary/Practitioner resources in two hops, Patient and Coverage per patient), groups
each visit's resources, and evaluates visits with the pure library in ``mapInArrow`` on the executors.
Spark writes the Parquet (or CSV). The rows are those of the local engine (a test checks it).

Executors need the ``cds97530[audit]`` package installed (the ``plugin`` rules are read from its package
data). The driver binds to 127.0.0.1 and the Spark UI is off for local masters: nothing listens beyond
loopback. Corrupt gzip files are skipped by Spark (``spark.sql.files.ignoreCorruptFiles``) and, unlike the
local engine, not itemised; skipped lines are located by file, not line number (Spark does not number lines).
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from audit.inputs import InputFile, parse_line
from audit.join import PATIENT_TYPES, VISIT_TYPES, Skip, assemble, route
from audit.output import SCHEMA, csv_ready
from audit.rows import COLUMNS, AuditOptions, evaluate_visit_input
from audit.summary import Summary

ROUTE_SCHEMA = pa.schema([
    ("kind", pa.string()), ("ref", pa.string()), ("rtype", pa.string()), ("patient", pa.string()), ("enc", pa.string()),
    ("day", pa.string()), ("ver", pa.string()), ("body", pa.string()), ("needs", pa.list_(pa.string())),
    ("where", pa.string()), ("reason", pa.string()),
])
SKIP_FIELDS = (("_skip_kind", pa.string()), ("_skip_where", pa.string()), ("_skip_reason", pa.string()))
EVAL_SCHEMA = pa.schema(list(SCHEMA) + [pa.field(n, t) for n, t in SKIP_FIELDS])


def route_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Executor side: NDJSON lines -> routed resources or skips (``audit.join.route``)."""
    for batch in batches:
        out: dict[str, list[Any]] = {name: [] for name in ROUTE_SCHEMA.names}
        for value, file in zip(batch.column("value").to_pylist(), batch.column("file").to_pylist(), strict=True):
            if value is None:
                continue
            value = value.decode("utf-8", errors="replace")  # as the local engine does: the same line in both
            if not value.strip():
                continue
            where = (file or "").rsplit("/", 1)[-1]
            resource = parse_line(value, where)
            routed = resource if isinstance(resource, Skip) else route(resource, where)
            row: dict[str, Any]
            if isinstance(routed, Skip):
                row = {"kind": routed.kind, "where": routed.where, "reason": routed.reason}
            else:
                row = {"kind": "res", "ref": routed.ref, "rtype": routed.rtype, "patient": routed.patient, "enc": routed.encounter,
                       "day": routed.day, "ver": routed.version, "body": value.strip(), "needs": list(routed.needs), "where": where}
            for name in ROUTE_SCHEMA.names:
                out[name].append(row.get(name))
        yield pa.RecordBatch.from_pydict(out, schema=ROUTE_SCHEMA)


def evaluate_batches(options: AuditOptions, join_only: bool) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """Executor side: (visit key, resources) -> line rows, or one skip row per visit that gave none."""
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            rows: list[dict[str, Any]] = []
            for vkey, bodies in zip(batch.column("vkey").to_pylist(), batch.column("bodies").to_pylist(), strict=True):
                visit = assemble(vkey, bodies)
                if join_only:
                    continue
                got, skips = evaluate_visit_input(visit, options)
                rows += got
                rows += [{"_skip_kind": s.kind, "_skip_where": s.where, "_skip_reason": s.reason} for s in skips]
            yield pa.RecordBatch.from_pylist(rows, schema=EVAL_SCHEMA)
    return run


def spark_schema(schema: pa.Schema) -> Any:
    from pyspark.sql.types import ArrayType, BooleanType, DoubleType, LongType, StringType, StructField, StructType

    def kind(t: pa.DataType) -> Any:
        if pa.types.is_list(t):
            return ArrayType(kind(t.value_type))
        return {pa.string(): StringType(), pa.int64(): LongType(), pa.float64(): DoubleType(), pa.bool_(): BooleanType()}[t]
    return StructType([StructField(f.name, kind(f.type), True) for f in schema])


def build_session(master: str | None = None, *, progress: bool = False, partitions: int | None = None) -> Any:
    """A Spark session for the audit; local masters bind to loopback with the UI off."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    master = master or "local[*]"
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # every Spark socket on loopback, not the machine's address
    builder = (SparkSession.builder.master(master).appName("cds97530-audit")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.sql.files.ignoreCorruptFiles", "true")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.showConsoleProgress", "true" if progress else "false")
               .config("spark.python.worker.reuse", "true"))
    if master.startswith("local"):
        cores = master[6:-1] if master.startswith("local[") else "1"
        n = os.cpu_count() or 2 if cores in ("*", "") else int(cores.split(",")[0])
        builder = (builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                   .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", str(partitions or max(4, 4 * n)))
                   .config("spark.driver.memory", os.environ.get("CDS97530_SPARK_DRIVER_MEMORY", "2g")))
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def run_spark(files: list[InputFile], out: Path, options: AuditOptions, *, master: str | None, fmt: str,
              on_skip: Callable[[Skip], None], summary: Summary, session: Any = None,
              join_only: bool = False) -> tuple[str, dict[str, Any]]:
    """The audit on Spark: route every NDJSON line to a resource (newest copy wins), join resources into
    visits, evaluate each visit in Arrow batches, write the lines and sum them. Returns the master and counts."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    own = session is None
    spark = session or build_session(master, progress=sys.stderr.isatty())
    try:
        routed, res = _resources(spark, files, on_skip)
        members, visits = _visit_members(res, on_skip)
        links = res.select(F.col("ref").alias("src"), F.explode("needs").alias("dst"))
        _dangling(res, links, visits, on_skip)
        grouped = _visit_bodies(res, members, visits, links)
        evaluated = (grouped.mapInArrow(evaluate_batches(options, join_only), spark_schema(EVAL_SCHEMA))
                     .persist(StorageLevel.MEMORY_AND_DISK))
        lines = _write_lines(evaluated, out, fmt, on_skip)
        _summarise(out, fmt, lines, summary)
        stats = {"resources": res.count(), "visits": grouped.count() if join_only else summary.visits}
        for frame in (evaluated, members, res, routed):
            frame.unpersist()
        label = spark.sparkContext.master
    finally:
        if own:
            spark.stop()
    return label, stats


def _resources(spark: Any, files: list[InputFile], on_skip: Callable[[Skip], None]) -> tuple[Any, Any]:
    """Every line routed (unusable lines reported), then one row per resource: the newest version (then
    the greatest body) of each reference, with its number of copies reported as duplicates."""
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    text = (spark.read.text([f.path for f in files])
            .select(F.col("value").cast("binary").alias("value"), F.input_file_name().alias("file")))
    routed = text.mapInArrow(route_batches, spark_schema(ROUTE_SCHEMA)).persist(StorageLevel.MEMORY_AND_DISK)
    skipped = routed.filter(F.col("kind") != "res").select("kind", "where", "reason").orderBy("where", "kind", "reason")
    for row in skipped.toLocalIterator():
        on_skip(Skip(row["kind"], row["where"], row["reason"]))

    newest = Window.partitionBy("ref").orderBy(F.col("ver").desc(), F.col("body").desc())
    res = (routed.filter(F.col("kind") == "res").withColumn("n", F.row_number().over(newest))
           .withColumn("copies", F.count("*").over(Window.partitionBy("ref"))).filter(F.col("n") == 1).drop("n")
           .persist(StorageLevel.MEMORY_AND_DISK))
    for row in res.filter(F.col("copies") > 1).select("ref", "copies").orderBy("ref").toLocalIterator():
        on_skip(Skip("duplicate", row["ref"], f"{row['copies']} copies; the latest (meta.lastUpdated, else content) is used"))
    return routed, res


def _visit_members(res: Any, on_skip: Callable[[Skip], None]) -> tuple[Any, Any]:
    """The visit key of each visit-type resource: its encounter, else the patient's only encounter that day,
    else patient + day. A resource with none is reported as unjoinable. Also the visits with their patient."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    enc_day = (res.filter((F.col("rtype") == "Encounter") & F.col("patient").isNotNull() & F.col("day").isNotNull())
               .groupBy("patient", "day").agg(F.count("*").alias("n"), F.min("ref").alias("day_enc")).filter(F.col("n") == 1).drop("n"))
    members = (res.filter(F.col("rtype").isin(*VISIT_TYPES)).join(enc_day, ["patient", "day"], "left")
               .withColumn("vkey", F.coalesce(F.col("enc"), F.col("day_enc"),
                                              F.when(F.col("patient").isNotNull() & F.col("day").isNotNull(),
                                                     F.concat(F.col("patient"), F.lit("|"), F.col("day")))))
               .select("vkey", "ref", "patient").persist(StorageLevel.MEMORY_AND_DISK))
    for row in members.filter(F.col("vkey").isNull()).select("ref").orderBy("ref").toLocalIterator():
        on_skip(Skip("unjoinable", row["ref"], "no encounter, and no patient and date to join a visit by"))
    visits = members.filter(F.col("vkey").isNotNull()).groupBy("vkey").agg(F.min("patient").alias("patient"))
    return members, visits


def _visit_bodies(res: Any, members: Any, visits: Any, links: Any) -> Any:
    """The resource bodies of each visit: its members, what they reference up to two hops away (a
    DocumentReference's Binary, or a Claim's Coverage and then its payer), and the patient-level resources."""
    from pyspark.sql import functions as F

    joined = members.filter(F.col("vkey").isNotNull()).select("vkey", "ref")
    hop1 = joined.join(links, joined.ref == links.src).select("vkey", F.col("dst").alias("ref"))
    links2 = links.select(F.col("src").alias("src2"), F.col("dst").alias("dst2"))
    hop2 = hop1.join(links2, hop1.ref == links2.src2).select("vkey", F.col("dst2").alias("ref"))
    patient_res = res.filter(F.col("rtype").isin(*PATIENT_TYPES)).select(F.col("patient").alias("p"), F.col("ref"))
    per_patient = visits.join(patient_res, visits.patient == patient_res.p).select("vkey", "ref")
    visit_res = joined.unionByName(hop1).unionByName(hop2).unionByName(per_patient).distinct()
    return (visit_res.join(res.select("ref", "body"), "ref").groupBy("vkey")
            .agg(F.collect_list("body").alias("bodies")))


def _write_lines(evaluated: Any, out: Path, fmt: str, on_skip: Callable[[Skip], None]) -> Any:
    """The evaluated lines written to ``out/lines`` (Parquet, or CSV with lists joined by ';'); visits the
    evaluation refused are reported. Returns the lines frame."""
    from pyspark.sql import functions as F

    lines = evaluated.filter(F.col("_skip_kind").isNull()).select(*[name for name, _ in COLUMNS])
    target = str(out / "lines")
    if fmt == "csv":
        flat = lines.select(*[F.concat_ws(";", F.col(n)).alias(n) if kind == "list" else F.col(n) for n, kind in COLUMNS])
        flat.write.mode("overwrite").option("header", True).csv(target)
    else:
        lines.write.mode("overwrite").parquet(target)
    for row in (evaluated.filter(F.col("_skip_kind").isNotNull()).select("_skip_kind", "_skip_where", "_skip_reason")
                .orderBy("_skip_where", "_skip_kind").toLocalIterator()):
        on_skip(Skip(row["_skip_kind"], row["_skip_where"], row["_skip_reason"]))
    return lines


def _dangling(res: Any, links: Any, visits: Any, on_skip: Callable[[Skip], None]) -> None:
    from pyspark.sql import functions as F

    refs = res.select(F.col("ref").alias("known"))
    missing_links = links.join(refs, links.dst == refs.known, "left_anti").select(F.col("src").alias("a"), F.col("dst").alias("b"))
    encounters = res.filter(F.col("rtype") == "Encounter").select(F.col("ref").alias("known"))
    with_enc = res.filter(F.col("enc").isNotNull() & (F.col("rtype") != "Encounter"))
    missing_enc = (with_enc.join(encounters, with_enc.enc == encounters.known, "left_anti")
                   .select(F.col("ref").alias("a"), F.col("enc").alias("b")))
    patients = res.filter(F.col("rtype") == "Patient").select(F.col("ref").alias("known"))
    with_patient = visits.filter(F.col("patient").isNotNull())
    missing_patient = (with_patient.join(patients, with_patient.patient == patients.known, "left_anti")
                       .select(F.concat(F.lit("visit "), F.col("vkey")).alias("a"), F.col("patient").alias("b")))
    for row in missing_links.unionByName(missing_enc).unionByName(missing_patient).orderBy("a", "b").toLocalIterator():
        on_skip(Skip("dangling-reference", row["a"], f"refers to {row['b']}, which is not in the export"))


def _summarise(out: Path, fmt: str, lines: Any, summary: Summary) -> None:
    """The report's figures from what Spark wrote (Parquet read back in batches; CSV via the driver)."""
    if fmt == "parquet":
        import pyarrow.dataset as ds

        parts = sorted(str(p) for p in (out / "lines").glob("*.parquet"))
        if parts:
            for batch in ds.dataset(parts, format="parquet").to_batches(batch_size=8192):
                summary.add_all(batch.to_pylist())
        return
    for row in lines.toLocalIterator():
        summary.add(row.asDict())


__all__ = ["build_session", "csv_ready", "run_spark"]
