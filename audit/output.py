"""Writing the line rows (the I/O edge): Parquet by default, CSV on request, one Arrow schema for both
engines so their outputs compare column for column.

Layout of ``--out DIR``:
    lines/part-*.parquet   (or lines/part-*.csv)  one row per billed line, no note text
    report.html            the billing lead's report (self-contained)
    summary.json           the report's figures as JSON
    skipped.csv            every skipped input with its reason (file:line or reference, never content)
"""
from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from audit.join import Skip
from audit.rows import COLUMNS

_ARROW = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "list": pa.list_(pa.string())}
SCHEMA = pa.schema([pa.field(name, _ARROW[kind]) for name, kind in COLUMNS])
LIST_COLUMNS = tuple(name for name, kind in COLUMNS if kind == "list")


def rows_to_batch(rows: Sequence[Mapping[str, Any]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([dict(r) for r in rows], schema=SCHEMA)


def csv_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """CSV has no lists: list columns become ``;``-joined strings."""
    arrays = []
    for name in batch.schema.names:
        column = batch.column(name)
        if name in LIST_COLUMNS:
            column = pa.array([";".join(v) if v is not None else None for v in column.to_pylist()], pa.string())
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


class LineWriter:
    """Appends row batches to ``DIR/lines/part-00000.<fmt>`` (the local engine writes one part)."""

    def __init__(self, out_dir: Path, fmt: str = "parquet") -> None:
        self.folder = out_dir / "lines"
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("part-*"):
            old.unlink()
        self.fmt = fmt
        self.path = self.folder / f"part-00000.{fmt}"
        self._writer: Any = None
        self.rows = 0

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        batch = rows_to_batch(rows)
        if self._writer is None:
            if self.fmt == "parquet":
                self._writer = pq.ParquetWriter(self.path, SCHEMA, compression="zstd")
            else:
                self._writer = pacsv.CSVWriter(self.path, csv_ready(batch).schema)
        self._writer.write_batch(batch if self.fmt == "parquet" else csv_ready(batch))
        self.rows += len(rows)

    def close(self) -> None:
        if self._writer is None:  # no rows: still leave a readable, empty file with the columns
            if self.fmt == "parquet":
                pq.write_table(SCHEMA.empty_table(), self.path)
            else:
                self.path.write_text(",".join(f'"{n}"' for n in SCHEMA.names) + "\n", encoding="utf-8")
            return
        self._writer.close()


def write_skips(path: Path, skips: Iterable[Skip]) -> int:
    n = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["kind", "where", "reason"])
        for skip in skips:
            out.writerow([skip.kind, skip.where, skip.reason])
            n += 1
    return n


def read_lines(out_dir: Path) -> pa.Table:
    """Every row an audit wrote (either engine, Parquet or CSV), for tests and the report."""
    import pyarrow.dataset as ds

    folder = out_dir / "lines"
    parquet = sorted(folder.glob("**/*.parquet"))
    if parquet:
        return ds.dataset([str(p) for p in parquet], format="parquet", schema=SCHEMA).to_table()
    csvs = sorted(folder.glob("**/*.csv"))
    return pa.concat_tables([pacsv.read_csv(p) for p in csvs]) if csvs else SCHEMA.empty_table()
