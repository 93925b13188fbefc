"""``fulmen keychains`` and a project file's ``keychain:`` (issue 19) against a real
coordinator on loopback: a keychain made, listed, replaced and deleted by name; a job naming
it deployed, pulled back as written, and a name the project has not refused before anything
is written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner, Result

from fulmen.cli import cli
from fulmen.store import DataclipType, EnqueueRequest, NewDataclip, SQLStore
from fulmen_testing.coordinator import api_token, serve, sqlite_store

pytestmark = pytest.mark.anyio

PROJECT = """\
name: tenants
credentials: [north, south]
workflows:
  per-site:
    triggers: [{type: webhook}]
    jobs:
      - name: call
        keychain: sites
        body: 'fn(lambda s: s)'
    edges:
      - {from: webhook, to: call}
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Fulmen:
    def __init__(self, url: str, token: str, store: SQLStore) -> None:
        self.env = {"FULMEN_URL": url, "FULMEN_API_TOKEN": token}
        self.store = store

    async def __call__(self, *args: str) -> Result:
        runner = CliRunner()
        return await anyio.to_thread.run_sync(
            lambda: runner.invoke(cli, list(args), env=self.env, catch_exceptions=False)
        )


@pytest.fixture
async def fulmen(tmp_path: Path) -> AsyncIterator[Fulmen]:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store, serve(store) as served:
        yield Fulmen(served.base_url, await api_token(store), store)


async def test_a_keychain_is_made_named_by_a_job_deployed_and_pulled(
    fulmen: Fulmen, tmp_path: Path
) -> None:
    project = tmp_path / "project.yaml"
    project.write_text(PROJECT)
    refused = await fulmen("deploy", str(project))
    assert refused.exit_code != 0
    assert "project tenants has no keychain 'sites'; make it first with `fulmen keychains set" in (
        refused.output
    )
    assert (await fulmen("credentials", "list", "tenants")).exit_code == 2  # nothing written

    bare = project.read_text().replace("        keychain: sites\n", "")
    project.write_text(bare)
    assert (await fulmen("deploy", str(project))).exit_code == 0
    made = await fulmen(
        "keychains", "set", "tenants", "sites", "--path", "$.data.site",
        "--entry", "n=north", "--entry", "s=south", "--default", "north",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    keychain_id = made.output.split("(")[1].split(")")[0]
    assert made.output == f"keychain sites ({keychain_id}): created\n"
    listed = await fulmen("keychains", "list", "tenants")
    assert listed.output.splitlines() == [
        "NAME\tID\tPATH",
        f"sites\t{keychain_id}\t$.data.site",
        "  n = north",
        "  s = south",
        "  * = north",
    ]
    bad = await fulmen("keychains", "set", "tenants", "sites", "--path", "data.site")
    assert bad.exit_code == 1 and "the path must be a JSONPath starting with $" in bad.output
    nobody = await fulmen("keychains", "set", "tenants", "x", "--path", "$.a", "--entry", "a=zz")
    assert nobody.exit_code == 2 and "no credential is named 'zz'" in nobody.output

    project.write_text(PROJECT)
    deployed = await fulmen("deploy", str(project))
    assert deployed.exit_code == 0, deployed.output
    assert "workflow per-site: updated (version 2)" in deployed.output
    pulled = tmp_path / "pulled" / "project.yaml"
    assert (await fulmen("pull", str(pulled), "--project", "tenants")).exit_code == 0
    assert "keychain: sites" in pulled.read_text()
    again = await fulmen("deploy", str(pulled))
    assert again.output.splitlines()[-1] == "workflow per-site: unchanged"

    await _a_run_shows_what_it_chose(fulmen, keychain_id)

    replaced = await fulmen("keychains", "set", "tenants", "sites", "--path", "$.data.site_id")
    assert replaced.output == f"keychain sites ({keychain_id}): replaced\n"
    in_use = await fulmen("keychains", "delete", "tenants", "sites")
    assert in_use.exit_code == 1 and "is used by job" in in_use.output
    project.write_text(bare)
    await fulmen("deploy", str(project))
    gone = await fulmen("keychains", "delete", "tenants", "sites")
    assert gone.output == f"keychain sites ({keychain_id}): deleted\n"


async def _a_run_shows_what_it_chose(fulmen: Fulmen, keychain_id: str) -> None:
    keychain = await fulmen.store.get_keychain(keychain_id)
    [workflow] = (await fulmen.store.list_workflows(keychain.project_id)).items
    for site, said in (
        ("s", f"credential {keychain.entries['s']} ($.data.site = s)"),
        ("x", f"credential {keychain.default_credential_id} (the default)"),
    ):
        body = NewDataclip(DataclipType.SAVED_INPUT, {"data": {"site": site}})
        made = await fulmen.store.enqueue(EnqueueRequest(workflow.workflow.id, input=body))
        shown = await fulmen("runs", "show", made.run_id)
        assert f"  keychain sites: {said}" in shown.output.splitlines(), shown.output
