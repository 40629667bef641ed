"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright,
against a live server with a finished supervised job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support import Server, tiny_model_server
from support.jobs import ALL_PAIRS, addition_lines, metrics_events, upload, wait_for

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
# The machine's network is closed: without the background-networking flags Chromium
# keeps opening connections that are refused many at a time.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "ui"  # gitignored
TIMEOUT_MS = 30_000

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"OPENRFT_SCHEDULER_INTERVAL_S": "0.2"}
    with tiny_model_server(tmp_path_factory.mktemp("ui"), env=env) as srv:
        yield srv


def start_job(srv: Server) -> str:
    """A supervised job of 5 steps on the `tiny` model (100 examples, batch 20)."""
    client = srv.client()
    return client.fine_tuning.jobs.create(
        model="tiny",
        training_file=upload(client, addition_lines(ALL_PAIRS, answer=True)),
        validation_file=upload(client, addition_lines(ALL_PAIRS[::7], answer=True), "valid.jsonl"),
        suffix="ui",
        seed=1,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 20}},
        },
    ).id


@pytest.fixture
def page() -> Iterator[sync_api.Page]:
    with sync_api.sync_playwright() as pw:
        # executable_path: the system browser; Playwright must never download one.
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        yield page
        browser.close()


def shot(page: sync_api.Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_dashboard_follows_a_job_to_the_end_and_streams_chat(
    ui_server: Server, page: sync_api.Page
) -> None:
    server = ui_server
    client = server.client()
    job_id = start_job(server)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    expect = sync_api.expect

    # Sign in: the key is checked against /v1 and kept in localStorage.
    page.goto(server.root_url + "/")
    page.fill("#api-key", "sk-wrong")
    page.click(".sign-in button")
    expect(page.locator(".sign-in .error")).to_contain_text("refused")
    page.fill("#api-key", server.api_key)
    page.click(".sign-in button")
    row = page.locator("table.jobs tr", has_text=job_id)
    expect(row).to_be_visible()
    assert page.evaluate("localStorage.getItem('openrft.apiKey')") == server.api_key

    # The job page is opened while the job is young and follows it (polling) to the end.
    row.locator("a").click()
    badge = page.locator(".job-header .badge")
    expect(badge).to_be_visible()
    first_status = badge.inner_text()
    expect(badge).to_have_text("succeeded", timeout=150_000)
    assert wait_for(client, job_id).status == "succeeded"
    steps = sorted(e.data["step"] for e in metrics_events(client, job_id))
    assert steps == [1, 2, 3, 4, 5], steps

    # One point per step, checkpoints, hyperparameters and events, without a reload.
    checkpoint = client.fine_tuning.jobs.checkpoints.list(job_id).data[0]  # newest first
    loss = page.locator('path[data-series="train_loss"]')
    expect(loss).to_have_attribute("data-points", str(len(steps)))
    expect(page.locator('path[data-series="train_loss"] + g circle')).to_have_count(len(steps))
    expect(page.locator("table.hyperparameters")).to_contain_text("batch_size")
    expect(page.locator("table.events")).to_contain_text("The job has successfully completed")
    expect(page.locator("table.checkpoints")).to_contain_text(
        checkpoint.fine_tuned_model_checkpoint
    )
    shot(page, "job.png")
    print(f"job page first showed {first_status!r}")

    # A checkpoint opens in the playground with its model selected; the answer streams.
    page.locator("table.checkpoints tr", has_text=checkpoint.fine_tuned_model_checkpoint).locator(
        ".open-playground"
    ).click()
    expect(page.locator("#model")).to_have_value(checkpoint.fine_tuned_model_checkpoint)
    # Sampled with a seed: greedy decoding of a 5-step model may stop at once, with no text.
    page.fill("#temperature", "1")
    page.fill("#seed", "0")
    page.fill("#prompt", "2+3=")
    page.click("#send")
    answer = page.locator('.msg.assistant[data-state="done"]')
    expect(answer).to_have_count(1, timeout=60_000)  # the first request loads the model
    shot(page, "playground.png")
    expect(answer.locator(".error")).to_have_count(0)
    assert int(answer.get_attribute("data-chunks") or 0) >= 1
    assert answer.locator(".text").inner_text().strip()

    # The jobs list shows the finished job; the files page lists its files.
    page.click('nav a[data-nav="jobs"]')
    expect(page.locator("table.jobs tr", has_text=job_id)).to_contain_text("succeeded")
    shot(page, "jobs.png")
    page.click('nav a[data-nav="files"]')
    files = page.locator("table.files")
    expect(files).to_contain_text("train.jsonl")
    expect(files).to_contain_text("valid.jsonl")
    shot(page, "files.png")
    assert not errors, errors
