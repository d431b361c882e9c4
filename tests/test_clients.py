"""More of the clients astronomers use, against a real server: astroquery's
TapPlus, CADC's cadctap and uws-client (pyvo and STILTS are in
``test_uws.py``, ``test_dali.py`` and ``test_uploads.py``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import Stack, wait_until


def _votable(path: Path, rows: int) -> Path:
    from astropy.table import Table

    Table({"x": list(range(rows))}).write(path, format="votable")
    return path


def test_astroquery_tapplus_uploads_runs_reads_and_aborts(
    stack: Stack, tmp_path: Path
) -> None:
    pytest.importorskip("astropy", reason="astro extra not installed")
    import requests
    from astroquery.utils.tap.core import TapPlus

    tap = TapPlus(url=f"{stack.url}/rows")
    # TapPlus posts to {url}/async with UPLOAD=table,param:table and the
    # file, follows the 303 itself, polls, and reads the VOTable result.
    job = tap.launch_job_async(
        "SELECT * FROM tap_upload.table",
        upload_resource=str(_votable(tmp_path / "t.vot", 12)),
        upload_table_name="table",
    )
    assert job.get_phase() == "COMPLETED"
    assert list(job.get_results()["n_rows"]) == [12]
    # It reads the result before it looks at the phase: the 404 says why
    # there is none.
    bad = tmp_path / "bad.txt"
    bad.write_text("not a VOTable")
    with pytest.raises(requests.exceptions.HTTPError, match="ended in ERROR"):
        tap.launch_job_async(
            "SELECT 1", upload_resource=str(bad), upload_table_name="table"
        )
    # PHASE=ABORT answers 303 (UWS 1.1); TapPlus expects 200 and raises,
    # but the job is aborted (docs/uws.md, client conventions).
    pending = tap.launch_job_async(
        "SELECT 1",
        upload_resource=str(_votable(tmp_path / "p.vot", 1)),
        upload_table_name="table",
        autorun=False,
    )
    assert pending.get_phase() == "PENDING"
    with pytest.raises(requests.exceptions.HTTPError, match="303"):
        pending.abort()
    url = f"{stack.url}/rows/async/{pending.jobid}/phase"
    assert httpx.get(url).text == "ABORTED"


def test_cadctap_polls_the_phase_with_one_request_per_wait(
    stack: Stack,
) -> None:
    from cadctap.core import CadcTapClient
    from cadcutils import net

    # cadctap's client, built from the task's VOSI capabilities.
    client = CadcTapClient(net.Subject(), resource_id=f"{stack.url}/sleep")
    created = httpx.post(
        f"{stack.url}/sleep/jobs", data={"seconds": "3", "PHASE": "RUN"}
    )
    job_url = created.headers["location"]
    # cadctap's poll (CadcTapClient.create_index): GET {job}/phase with
    # WAIT in a form body, 1 s ten times, then 30 s. It made 1,841
    # requests against a 3 s job while WAIT was ignored there.
    requests_made = 0
    started = time.monotonic()
    while True:
        requests_made += 1
        answer = client._tap_client.get(f"{job_url}/phase", data={"WAIT": 1})
        if answer.text in {"COMPLETED", "ERROR", "ABORTED"}:
            break
        assert time.monotonic() - started < 30
    assert answer.text == "COMPLETED"
    assert requests_made <= 6, requests_made


def test_uws_client_models_read_every_document(
    stack: Stack, tmp_path: Path
) -> None:
    uws = pytest.importorskip("uws", reason="uws-client not installed")
    # uws-client 1.1.11 is Python 2 code: its command line and its client
    # module do not import on Python 3, its models module does (and is
    # what reads the server's documents).
    sys.path.insert(0, str(Path(uws.__file__).parent / "UWS"))
    try:
        import models  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    created = httpx.post(
        f"{stack.url}/echo/jobs",
        data={"PHASE": "RUN", "greeting": "hi", "pos": ["1", "2"]},
    )
    location = created.headers["location"]
    wait_until(lambda: httpx.get(f"{location}/phase").text == "COMPLETED")
    job = models.Job(httpx.get(location).content)
    assert job.job_id == location.rsplit("/", 1)[1]
    assert job.phase == ["COMPLETED"]
    assert [(p.id, p.value) for p in job.parameters] == [
        ("greeting", "hi"),
        ("pos", "1"),
        ("pos", "2"),
    ]
    [result] = job.results
    assert result.reference.href.startswith(f"{location}/results/")
    jobs = models.Jobs(httpx.get(f"{stack.url}/echo/jobs?LAST=3").content)
    assert location in [ref.reference.href for ref in jobs.job_reference]
