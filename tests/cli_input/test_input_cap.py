"""`cds97530 rules explain FILE` caps its input as `cds97530 check` does (review follow-up, issue 13).

Why: a note is kilobytes; a mistaken path (a disk image, a log file, a FIFO fed by something endless)
read whole takes the machine's memory before anything says no. `check` refuses past 32 MB with exit 2
and one line naming the file; `rules explain` must say the same, so the two commands a billing lead runs
on one file agree. The over-size files are sparse (no disk written) or a pipe (no size to trust).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from cds97530.cli import main

CAP = 32 * 1024 * 1024  # `cds97530 check`'s documented limit (cds97530/check_command.py)
NOTE = b"Ther act 24 min: sit to stand from low chair, cues for hand placement; pt 8/10 with CGA.\n"


def _sparse(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        handle.write(NOTE)
        handle.truncate(size)
    return path


@pytest.mark.parametrize("command", [["rules", "explain"], ["check"]])
def test_a_file_over_the_cap_is_refused_with_exit_2(tmp_path: Path, command: list[str],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    big = _sparse(tmp_path / "huge-note.txt", CAP + 1)
    assert main([*command, str(big)]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.strip() == f"cds97530: {big}: file is 32 MB, over the 32 MB limit"


def test_a_file_at_exactly_the_cap_is_not_refused_for_its_size(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The limit is 'over 32 MB': 32 MB itself is read (here it is refused, rightly, as binary: the
    sparse tail is NUL bytes), so the message is the note reader's, not the size cap's."""
    edge = _sparse(tmp_path / "edge.txt", CAP)
    assert main(["rules", "explain", str(edge)]) == 2
    err = capsys.readouterr().err
    assert "limit" not in err and "NUL" in err, err


def test_a_pipe_over_the_cap_is_refused_without_reading_it_all(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A FIFO has no size to check first: the read itself stops one byte past the cap."""
    fifo = tmp_path / "note.fifo"
    os.mkfifo(fifo)
    sent = [0]

    def feed() -> None:
        chunk = NOTE * 10_000
        try:
            with fifo.open("wb") as pipe:
                while sent[0] <= 2 * CAP:  # twice the cap: a reader that read it all would be seen
                    pipe.write(chunk)
                    sent[0] += len(chunk)
        except BrokenPipeError:  # the reader stopped and closed: what is wanted
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    assert main(["rules", "explain", str(fifo)]) == 2
    writer.join(timeout=30)
    assert not writer.is_alive()
    assert capsys.readouterr().err.strip() == f"cds97530: {fifo}: file is 32 MB, over the 32 MB limit"
    assert sent[0] < 2 * CAP
