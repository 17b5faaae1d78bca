"""The chat page at `/` in a real browser: Playwright drives Debian's Chromium (headless) against a
live server (uvicorn on a free loopback port) over a tiny run with two task adapters and a router.

It sends two messages and watches the replies stream in, switches task in the selector and sees
the next reply carry that task's chip, then reloads and finds the conversation restored. A
screenshot is kept in the test's tmp dir and copied to test-artifacts/web.png (and web-dark.png).

Chromium comes from Debian (`apt-get install chromium`, done by `make install-test`); Playwright
never downloads a browser.
"""

import json
import shutil
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from serve_util import chatty_tiny, free_port, tiny_lora

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
MAX_NEW_TOKENS = 12  # per generation: the tiny random model's answers are gibberish, keep them short
STEP_DELAY_S = 0.03  # per forward pass, so a reply takes long enough to be seen streaming

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: run `make install-test`")

# Records, for each assistant message while it has the `streaming` class, every distinct length
# of its text: a reply that streams shows several growing lengths before the class goes away.
STREAM_RECORDER = """
window.__streamed = [];
new MutationObserver(() => {
  document.querySelectorAll('.msg.assistant').forEach((el, i) => {
    if (!el.classList.contains('streaming')) return;
    const n = Array.from(el.querySelectorAll('.md')).reduce((sum, md) => sum + md.textContent.length, 0);
    const log = (window.__streamed[i] = window.__streamed[i] || []);
    if (log[log.length - 1] !== n) log.push(n);
  });
}).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
"""


@pytest.fixture(scope="module")
def web_run(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("webrun") / "webrun"
    chatty_tiny(tokenizer).save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    for name, seed in (("finance_advisor", 1), ("support", 2), ("router", 3)):
        tiny_lora(tokenizer, seed).save_pretrained(root / "adapters" / name)
    manifest = {"name": "webrun", "base_model": "tiny", "backbone": "model", "stages": [], "precision_requested": "fp32",
                "tasks": {"finance_advisor": {"format": "chat", "adapter": "adapters/finance_advisor",
                                              "system": "You give careful financial advice."},
                          "support": {"format": "chat", "adapter": "adapters/support", "system": "Be brief."}},
                "router": {"adapter": "adapters/router", "labels": ["finance_advisor", "support"]},
                "tools": {"modules": [], "settings": {}}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture(scope="module")
def server(web_run, tmp_path_factory):
    import uvicorn

    from agentmill.model.run import RunModel
    from agentmill.serve.app import create_app
    from agentmill.serve.settings import ServeSettings
    from agentmill.store import SQLiteSessionStore

    run = RunModel.load(web_run, device="cpu")
    store = SQLiteSessionStore(tmp_path_factory.mktemp("webdb") / "sessions.db")
    app = create_app(run, store=store, settings=ServeSettings(agent_max_new_tokens=MAX_NEW_TOKENS,
                                                              media_dir=tmp_path_factory.mktemp("webmedia")))
    # a short pause per decode step: each reply then streams over ~0.5 s instead of a blink
    batch = app.state.agentmill.engine.batch
    step = batch.step
    batch.step = lambda tokens: (time.sleep(STEP_DELAY_S), step(tokens))[1]
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}/", store=store)
    srv.should_exit = True
    thread.join(timeout=10)
    store.close()


@pytest.fixture
def browser_args():
    return []


@pytest.fixture
def page(browser_args):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", *browser_args])
        context = browser.new_context(viewport={"width": 1280, "height": 820}, color_scheme="light",
                                      permissions=["clipboard-read", "clipboard-write"])
        context.add_init_script(STREAM_RECORDER)
        pg = context.new_page()
        pg.set_default_timeout(20_000)
        errors = []
        pg.on("pageerror", lambda err: errors.append(str(err)))
        yield pg
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def _wait_ready(page):
    page.wait_for_selector("html[data-ready='true']")


def _send(page, text):
    """Type `text` (newlines with Shift+Enter), press Enter, and wait for the reply to finish."""
    before = page.locator(".msg.assistant").count()
    box = page.locator("#input")
    lines = text.split("\n")
    box.click()
    for i, line in enumerate(lines):
        box.press_sequentially(line)
        if i < len(lines) - 1:
            box.press("Shift+Enter")
    assert box.input_value() == text  # Shift+Enter added a newline, it did not send
    assert page.locator(".msg.user").count() == before
    box.press("Enter")
    reply = page.locator(".msg.assistant").nth(before)
    reply.wait_for()
    page.wait_for_function("i => { const el = document.querySelectorAll('.msg.assistant')[i];"
                           " return el && !el.classList.contains('streaming'); }", arg=before)
    assert box.input_value() == ""
    return reply


def _streamed(page, index):
    return page.evaluate("i => window.__streamed[i] || []", index)


def test_chat_page_streams_switches_task_and_restores(server, page, tmp_path):
    started = time.monotonic()
    page.goto(server.url)
    _wait_ready(page)
    options = page.locator("#task-select option")
    assert [options.nth(i).get_attribute("value") for i in range(options.count())] == [
        "auto", "finance_advisor", "support", "base"]
    assert page.locator("#welcome").is_visible()

    # 1. two messages; each reply streams (its text grows while it is marked streaming)
    first = _send(page, "How should I save for retirement?")
    second = _send(page, "And what about an emergency fund?\nI have three months of rent.")
    for i, reply in enumerate((first, second)):
        lengths = [n for n in _streamed(page, i) if n > 0]
        # several growing snapshots (the final answer replaces the streamed text, maybe trimmed)
        assert len(set(lengths)) >= 3 and lengths[0] < max(lengths), f"reply {i + 1} did not stream: {lengths}"
        assert reply.locator(".md.answer").inner_text().strip()
        chip = reply.locator(".route-chip")
        assert chip.is_visible() and chip.get_attribute("data-task") in ("finance_advisor", "support")
        assert reply.locator(".copy-btn").is_visible()
    session_id = page.evaluate("location.hash.slice(1)")
    assert session_id
    assert page.locator("#welcome").is_hidden()
    assert page.locator(".session.active .session-title").inner_text().startswith("How should I save")

    # 2. switch task: the next reply says it was answered by that task
    routed = second.locator(".route-chip").get_attribute("data-task")
    other = "support" if routed == "finance_advisor" else "finance_advisor"
    page.select_option("#task-select", other)
    third = _send(page, "Thanks!")
    chip = third.locator(".route-chip")
    assert chip.get_attribute("data-task") == other
    assert chip.text_content().replace("\u00a0", " ").strip() == f"→ {other}"
    assert third.locator(".md.answer").inner_text().strip()

    # 3. reload: the conversation comes back from the session store, the task choice too
    page.reload()
    _wait_ready(page)
    assert page.evaluate("location.hash.slice(1)") == session_id
    users = page.locator(".msg.user .bubble").all_inner_texts()
    assert users == ["How should I save for retirement?",
                     "And what about an emergency fund?\nI have three months of rent.", "Thanks!"]
    replies = page.locator(".msg.assistant")
    assert replies.count() == 3
    assert replies.nth(2).locator(".route-chip").get_attribute("data-task") == other
    assert all(replies.nth(i).locator(".md.answer").inner_text().strip() for i in range(3))
    assert page.locator("#task-select").input_value() == other
    assert page.locator(".session").count() == 1

    shot = tmp_path / "web.png"
    page.screenshot(path=str(shot))
    page.emulate_media(color_scheme="dark")
    page.wait_for_timeout(400)  # let the colour transitions finish
    page.screenshot(path=str(tmp_path / "web-dark.png"))
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "web.png")
    shutil.copy(tmp_path / "web-dark.png", ARTIFACTS / "web-dark.png")
    assert shot.stat().st_size > 10_000
    print(f"browser test took {time.monotonic() - started:.1f} s; screenshot {ARTIFACTS / 'web.png'}")


MARKDOWN = """After **10 years** at 5% a year, 10,000 grows to about *16,288.95*:

1. `10000 * 1.05 ** 10`
2. see [the formula](https://en.wikipedia.org/wiki/Compound_interest)

```python
print("<b>not bold</b>")
```
<img src=x onerror="window.__pwned = 1"> [bad](javascript:window.__pwned=1)"""


def test_stored_tool_steps_render_as_cards_and_markdown_is_safe(server, page):
    """A stored turn with a tool call: route chip, a collapsible card with arguments and result,
    a notice, and a markdown answer in which model-written HTML and script links stay inert."""
    from agentmill.store import StoredMessage as M

    request = urllib.request.Request(server.url + "v1/agent/sessions", data=b'{"title": "Compound interest"}',
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request) as response:
        session = json.load(response)
    call = {"id": "call_1", "type": "function",
            "function": {"name": "calculator", "arguments": {"expression": "10000 * 1.05 ** 10"}}}
    server.store.append_many(session["id"], [
        M(role="user", content="10k at 5% for 10 years?", kind="user", meta={"kind": "user", "content": "x"}),
        M(role="route", content="finance_advisor", task="finance_advisor", kind="route",
          meta={"kind": "route", "task": "finance_advisor", "scores": {"finance_advisor": -0.1, "support": -2.3}}),
        M(role="assistant", content="Let me compute that.", tool_calls=[call], kind="model", meta={"kind": "model"}),
        M(role="tool", content='{"result": 16288.95}', tool_call_id="call_1", name="calculator", kind="tool_result",
          meta={"kind": "tool_result", "error": False}),
        M(role="notice", content="context full: earlier messages are left out", kind="notice",
          meta={"kind": "notice", "reason": "trim"}),
        M(role="assistant", content=MARKDOWN, task="finance_advisor", kind="answer",
          meta={"kind": "answer", "completion_tokens": 42, "latency_ms": 1200}),
    ])
    page.goto(server.url + "#" + session["id"])
    _wait_ready(page)
    assert page.locator("#chat-title").inner_text() == "Compound interest"
    reply = page.locator(".msg.assistant")
    assert reply.count() == 1
    assert reply.locator(".route-chip").get_attribute("data-task") == "finance_advisor"
    card = reply.locator("details.tool-card")
    assert card.count() == 1 and "ok" in card.get_attribute("class")
    assert card.locator(".tool-name").inner_text() == "calculator"
    assert card.locator(".tool-status").inner_text() == "done"
    assert not card.locator(".tool-result-pre").is_visible()  # collapsed until opened
    card.locator("summary").click()
    assert '"result": 16288.95' in card.locator(".tool-result-pre").inner_text()
    assert "10000 * 1.05 ** 10" in card.locator(".tool-detail").inner_text()
    assert "context full" in reply.locator(".notice").inner_text()

    answer = reply.locator(".md.answer")
    assert answer.locator("strong").inner_text() == "10 years"
    assert answer.locator("em").inner_text() == "16,288.95"
    assert answer.locator("ol > li").count() == 2
    link = answer.locator("a")
    assert link.count() == 1 and link.get_attribute("rel") == "noopener noreferrer"
    assert link.get_attribute("href") == "https://en.wikipedia.org/wiki/Compound_interest"
    assert answer.locator("pre code.language-python").inner_text() == 'print("<b>not bold</b>")'
    assert answer.locator("img, b, script").count() == 0  # model-written HTML is shown as text
    assert "<img src=x" in answer.inner_text() and "[bad](javascript:" in answer.inner_text()
    assert page.evaluate("window.__pwned") is None
    assert reply.locator(".usage").inner_text() == "42 tokens · 1.2 s"
    copy = reply.locator(".copy-btn")
    copy.click()
    from playwright.sync_api import expect

    expect(copy).to_have_text("Copied")  # the click handler awaits the clipboard first
    assert page.evaluate("navigator.clipboard.readText()") == MARKDOWN  # the answer's markdown source


SPOKEN = "What is the balance of my savings account?"


@pytest.fixture
def spoken_wav(tmp_path):
    from media_util import speak

    path = tmp_path / "spoken.wav"
    path.write_bytes(speak(SPOKEN))
    return path


def test_an_image_in_the_page(server, page, tmp_path):
    """Attach an image (thumbnail before sending), send it and see what OCR read; have an answer
    read aloud; reload and find the image in the conversation."""
    from media_util import invoice

    invoice().save(tmp_path / "invoice.png")
    page.goto(server.url)
    _wait_ready(page)
    assert page.locator("#attach").is_visible() and page.locator("#mic").is_visible()
    page.set_input_files("#file-input", str(tmp_path / "invoice.png"))
    thumb = page.locator(".attachment img")
    thumb.wait_for()
    assert page.locator(".attachment-name").inner_text() == "invoice.png"
    assert page.evaluate("document.querySelector('.attachment img').naturalWidth") == 900
    reply = _send(page, "What is the total due?")
    assert page.locator(".attachments").is_hidden()  # sent: the strip is empty again
    user = page.locator(".msg.user").last
    assert user.locator(".bubble").inner_text() == "What is the total due?"
    note = user.locator("figure pre")
    page.wait_for_function("() => document.querySelector('.msg.user figure pre').textContent.includes('Total due')")
    assert "Total due: $1,234.56" in note.text_content()
    assert reply.locator(".md.answer").inner_text().strip()
    session_id = page.evaluate("location.hash.slice(1)")
    with page.expect_response(lambda r: r.url.endswith("/v1/audio/speech")) as spoken:
        reply.locator(".read-btn").click()
    assert spoken.value.status == 200 and spoken.value.headers["content-type"] == "audio/wav"

    # reload: the image comes back from the media store, fetched with the page's key
    page.reload()
    _wait_ready(page)
    assert page.evaluate("location.hash.slice(1)") == session_id
    page.wait_for_function("() => { const img = document.querySelector('.msg.user .user-media img');"
                           " return img && img.src.startsWith('blob:') && img.naturalWidth === 900; }")
    restored = page.locator(".msg.user").last
    assert restored.locator(".bubble").inner_text() == "What is the total due?"  # the OCR text is not in the bubble
    assert "ACME SUPPLIES LTD" in restored.locator("figure pre").text_content()
    restored.locator("figure summary").click()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-media.png"))


def test_the_microphone_transcript_lands_in_the_composer(server, spoken_wav):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={spoken_wav}"])
        page = browser.new_context(permissions=["microphone"]).new_page()
        page.set_default_timeout(30_000)
        errors = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(server.url)
        _wait_ready(page)
        page.locator("#mic").click()
        page.wait_for_selector("#mic.recording")
        page.wait_for_timeout(3600)  # the question once (3.3 s), then the fake device loops it
        with page.expect_response(lambda r: r.url.endswith("/v1/audio/transcriptions")) as heard:
            page.locator("#mic").click()
        assert heard.value.status == 200
        page.wait_for_function("() => document.querySelector('#input').value.length > 10")
        text = page.locator("#input").input_value()
        browser.close()
    assert "balance of my savings account" in text.lower(), text
    assert not errors, errors
