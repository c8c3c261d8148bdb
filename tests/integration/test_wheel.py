"""A built wheel works where a hospital installs it: not from this checkout.

The wheel is built from the working tree (offline: ``--no-build-isolation --no-index``) and
installed with ``--no-deps --no-index`` into a fresh venv. The fresh venv gets its *dependencies*
from this test environment's site-packages through a plain path line (so no network is needed);
that directory's ``.pth`` files are not run, so the checkout's editable install is not in play, and
every subprocess runs outside the checkout. The test asserts the code imported is the wheel's.

Then, as an operator would: ``cds97530 check``; ``cds97530 serve`` (the service and the SMART page,
no demo); with the ``[sandbox]`` extra's packages, ``serve --demo`` (the Node FHIR server's files
come from the wheel; its npm packages are installed into a cache directory, offline from npm's
cache) and ``cds97530 sandbox``.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from required_parts import need

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
NOTE = ("Ther act 24 min: sit to stand transfers from low chair with verbal cues for hand placement, "
        "to reach the goal of independent toileting at home. Pt completed 8/10 with CGA. Total timed 24 min.\n")


@dataclass
class Installed:
    venv: Path
    wheel: Path
    work: Path
    env: dict[str, str]

    @property
    def cli(self) -> str:
        return str(self.venv / "bin" / "cds97530")

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.cli, *args], cwd=self.work, env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    tmp = tmp_path_factory.mktemp("wheel")
    wheels = tmp / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-q", "-w", str(wheels), str(ROOT)], capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("cds97530-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "zz_test_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n", encoding="utf-8")
    work = tmp / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "CDS97530_", "SMART_", "VIRTUAL_ENV"))}
    env.update({"HOME": str(tmp / "home"), "XDG_CACHE_HOME": str(tmp / "cache"),
                "npm_config_cache": os.environ.get("npm_config_cache") or str(Path.home() / ".npm"),  # noqa: SIM112 - npm's own lowercase name
                "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}"})
    yield Installed(venv=venv, wheel=wheel, work=work, env=env)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Serving:
    def __init__(self, inst: Installed, *args: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = inst.work / f"serve-{self.port}.log"
        self._out = self.log.open("w")
        self.proc = subprocess.Popen(
            [inst.cli, "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--database-url", f"sqlite:///{inst.work / f'db-{self.port}.sqlite3'}", *args],
            cwd=inst.work, env=inst.env, stdout=self._out, stderr=subprocess.STDOUT, text=True)

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"serve exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        pytest.fail("serve did not answer: " + self.log.read_text()[-3000:])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()


def test_the_installed_code_is_the_wheels(installed: Installed) -> None:
    probe = ("import cds97530, cds_hooks, smart_app, sandbox, plugin, fhir_rest; "
             "print('\\n'.join(m.__file__ for m in (cds97530, cds_hooks, smart_app, sandbox, plugin, fhir_rest)))")
    out = subprocess.run([str(installed.venv / "bin" / "python"), "-c", probe], cwd=installed.work, env=installed.env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert all(str(installed.venv) in path for path in out), out
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for data in ("cds97530/cli.py", "cds97530/__main__.py", "cds97530/check_command.py", "plugin/text_report.py",
                 "sandbox/fhir_server_js/server.mjs", "sandbox/fhir_server_js/package-lock.json",
                 "cds_hooks/migrations/versions/0002_smart_sessions.py", "smart_app/templates/evaluation.html",
                 "sandbox/templates/demo/visit.html", "plugin/data/lexicon.yaml"):
        assert data in names
    assert not any("node_modules" in n or n.startswith("tests/") for n in names)
    metadata = zipfile.ZipFile(installed.wheel).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    for demo_only in ("authlib", "markdown-it-py", "fpdf2"):  # the service's install stays lean
        lines = [r for r in requires if r.split()[1].lower().startswith(demo_only)]
        assert lines and all("extra ==" in line for line in lines), lines  # never unconditional
        assert any('extra == "sandbox"' in line for line in lines)


def test_check_from_the_wheel(installed: Installed) -> None:
    note = installed.work / "note.txt"
    note.write_text(NOTE, encoding="utf-8")
    done = installed.run("check", "--format", "json", "--units", "2", str(note))
    assert done.returncode in (0, 1), done.stderr
    import json

    (line,) = json.loads(done.stdout)["lines"]
    assert line["code"] == "97530" and line["verdict"] in ("supported", "needs-documentation", "recode")
    module = subprocess.run([str(installed.venv / "bin" / "python"), "-m", "cds97530", "check", "--format", "json", "--units", "2",
                             str(note)], cwd=installed.work, env=installed.env, capture_output=True, text=True, timeout=300)
    assert module.returncode == done.returncode and module.stdout == done.stdout, module.stderr  # `python -m cds97530` is the script
    entry = next(n for n in zipfile.ZipFile(installed.wheel).namelist() if n.endswith(".dist-info/entry_points.txt"))
    assert "cds97530 = cds97530.cli:main" in zipfile.ZipFile(installed.wheel).read(entry).decode()


def test_serve_from_the_wheel_has_the_smart_page_and_no_demo(installed: Installed) -> None:
    serving = _Serving(installed)
    try:
        serving.wait(60)
        assert httpx.get(serving.url + "/cds-services", timeout=10).json()["services"]
        launch = httpx.get(serving.url + "/smart/launch", params={"iss": "https://ehr.example/fhir", "launch": "x"}, timeout=10)
        assert launch.status_code == 400 and 'data-reason="iss-not-allowed"' in launch.text  # the page answers
        assert httpx.get(serving.url + "/smart/static/app.css", timeout=10).status_code == 200
        assert httpx.get(serving.url + "/demo/ehr/", timeout=10).status_code == 404
    finally:
        serving.stop()


def test_serve_demo_and_sandbox_from_the_wheel(installed: Installed) -> None:
    from sandbox.fhir_server import node_available

    need(node_available(), "node is not installed (the FHIR server needs Node 20+)")
    serving = _Serving(installed, "--demo")
    try:
        serving.wait(600)  # the first run installs the FHIR server's npm packages into the cache
        index = httpx.get(serving.url + "/demo/ehr/", timeout=30)
        assert index.status_code == 200 and "sample patients" in index.text
    finally:
        serving.stop()
    assert (Path(installed.env["XDG_CACHE_HOME"]) / "cds97530").is_dir()  # not next to the installed files
    done = installed.run("sandbox", "--visits", "1", "--hooks", "patient-view,claim", timeout=600)
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    assert "HTTP 200" in done.stdout and "HTTP 500" not in done.stdout
