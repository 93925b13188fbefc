"""``fulmen docs`` as a user runs it: a real subprocess that builds the site into its cache,
serves it on loopback, prints the URL, and stops with status 0 on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from fulmen.cli import cli
from fulmen.cli.docs import site

ROOT = Path(__file__).resolve().parents[2]


def test_help_says_what_it_does() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fulmen", "docs", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Serve the documentation site" in result.stdout
    assert "--no-browser" in result.stdout and "--port" in result.stdout


def test_it_builds_serves_the_index_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env.pop("DISPLAY", None)
    child = subprocess.Popen(
        # the page every command's help names (cli/doclinks.py)
        [
            sys.executable,
            "-m",
            "fulmen",
            "docs",
            "reference/cli/run/",
            "--port",
            "0",
            "--no-browser",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # after the build: seconds
        match = re.fullmatch(
            r"Docs: (http://127\.0\.0\.1:\d+/)reference/cli/run/  \(Ctrl-C stops\)\n", line
        )
        assert match, (line, child.stderr.read() if child.poll() is not None else "")
        with urllib.request.urlopen(match[1] + "reference/cli/run/", timeout=10) as answer:
            assert "Docs: fulmen docs reference/cli/run/" in answer.read().decode()
        with urllib.request.urlopen(match[1], timeout=10) as answer:
            page = answer.read().decode()
        assert "<title>Fulmen</title>" in page
        with urllib.request.urlopen(match[1] + "reference/cli/docs/", timeout=10) as answer:
            assert "fulmen docs" in answer.read().decode()
        assert list((tmp_path / "fulmen" / "docs").iterdir()), "nothing built into the cache"
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert stderr.startswith("fulmen docs: building the site into "), stderr


def test_a_busy_port_is_one_line(tmp_path: Path) -> None:
    built = site.target(ROOT / "mkdocs.yml", tmp_path / "fulmen" / "docs")
    built.mkdir(parents=True)
    (built / "index.html").write_text("<title>Fulmen</title>")
    holder = site.server(built, 0)
    port = holder.server_address[1]
    try:
        result = subprocess.run(
            [sys.executable, "-m", "fulmen", "docs", "--port", str(port), "--no-browser"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)},
        )
    finally:
        holder.server_close()
    assert result.returncode == 1
    assert result.stderr == (
        f"fulmen docs: cannot listen on 127.0.0.1:{port}: another program listens there; "
        "--port picks another port\n"
    )


def test_a_page_the_site_lacks_is_one_line(tmp_path: Path) -> None:
    built = site.target(ROOT / "mkdocs.yml", tmp_path / "fulmen" / "docs")
    built.mkdir(parents=True)
    (built / "index.html").write_text("<title>Fulmen</title>")
    result = subprocess.run(
        [sys.executable, "-m", "fulmen", "docs", "nowhere/", "--port", "0", "--no-browser"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)},
    )
    assert (result.returncode, result.stderr) == (
        2,
        "fulmen docs: the site has no page nowhere/ (fulmen docs lists its pages)\n",
    )


def test_without_mkdocs_it_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = site.importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name in ("mkdocs", "material") else real(name)

    monkeypatch.setattr(site.importlib.util, "find_spec", find_spec)
    result = CliRunner().invoke(cli, ["docs", "--no-browser"])
    assert result.exit_code == 1
    assert result.output == (
        "fulmen docs: needs mkdocs and mkdocs-material: pip install 'fulmen[docs]'\n"
    )
