"""The spark engine (real PySpark, local[2], one session for the module) gives the local engine's rows."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audit.output import read_lines
from audit.rows import COLUMN_NAMES
from audit.run import run_audit

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _sorted_rows(out: Path) -> list[dict[str, Any]]:
    rows = read_lines(out).to_pylist()
    return sorted(rows, key=lambda r: (r["visit_key"], r["line_no"]))


def test_spark_and_local_give_the_same_rows_on_2000_visits(spark: Any, local_2k: tuple[Any, Path], tmp_path: Path, export_2k: Path) -> None:
    local_result, local_out = local_2k
    result = run_audit([str(export_2k)], tmp_path, engine="spark", spark_session=spark, progress=False)
    spark_rows, local_rows = _sorted_rows(tmp_path), _sorted_rows(local_out)
    assert len(local_rows) == local_result.summary.lines > 3000
    assert [r["visit_key"] for r in spark_rows] == [r["visit_key"] for r in local_rows]
    for a, b in zip(spark_rows, local_rows, strict=True):
        assert a == b, {k: (a[k], b[k]) for k in COLUMN_NAMES if a[k] != b[k]}
    assert result.summary.to_dict()["by_payer"] == local_result.summary.to_dict()["by_payer"]
    assert any(p.name.startswith("part-") for p in (tmp_path / "lines").iterdir())  # written by Spark
    assert (tmp_path / "report.html").stat().st_size > 10_000


def test_spark_counts_bad_inputs_like_the_local_engine(spark: Any, bad_export: Path, bad_expected: dict[str, int], tmp_path: Path) -> None:
    local = run_audit([str(bad_export)], tmp_path / "local", processes=1, progress=False)
    remote = run_audit([str(bad_export)], tmp_path / "spark", engine="spark", spark_session=spark, progress=False)
    assert {k: remote.summary.skips[k] for k in bad_expected} == bad_expected
    assert dict(remote.summary.skips) == dict(local.summary.skips)
    assert _sorted_rows(tmp_path / "spark") == _sorted_rows(tmp_path / "local")
