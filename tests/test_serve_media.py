"""Speech and images through the OpenAI API with the official client: /v1/audio/* in every
format, chat messages with image and audio parts answered from their text, typed 400s."""

import base64
import io

import httpx
import openai
import pytest

from agentmill.data.render import render
from agentmill.media.audio import decode_audio
from agentmill.model.run import RunModel
from agentmill.serve import ServeSettings, create_app
from media_util import encode, invoice, photo_like, reencode, speak
from serve_util import SYSTEM_T1, build_run, live_server, script_outputs

KEY = "sk-media-test"
QUESTION = "Can I pay this invoice from account 4821?"


@pytest.fixture(scope="module")
def run(tmp_path_factory, tokenizer):
    return RunModel.load(build_run(tmp_path_factory.mktemp("media") / "run", tokenizer))


@pytest.fixture(scope="module")
def server(run):
    app = create_app(run, settings=ServeSettings(api_keys=[KEY], max_tokens_cap=32))
    with live_server(app) as url:
        yield url


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def question_webm():
    return reencode(speak(QUESTION), "webm")  # what Chrome's MediaRecorder sends


def data_url(data: bytes, kind: str) -> str:
    return f"data:{kind};base64," + base64.b64encode(data).decode()


def test_models_say_what_they_accept(client):
    for model in client.models.list().data:
        assert model.model_extra["agentmill"]["input"] == ["text", "image", "audio"]


# ---------------------------------------------------------------- /v1/audio


def test_transcriptions_in_every_format(client, question_webm):
    def ask(**kw):
        return client.audio.transcriptions.create(model="whisper-1", file=("question.webm", question_webm), **kw)

    text = ask().text
    assert text == "Can I pay this invoice from account 4821?"
    assert ask(response_format="text").strip() == text
    srt = ask(response_format="srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:0") and text in srt
    vtt = ask(response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> ") and text in vtt
    verbose = ask(response_format="verbose_json", timestamp_granularities=["word", "segment"])
    assert verbose.language == "english" and verbose.text == text and verbose.task == "transcribe"
    assert abs(verbose.duration - decode_audio(question_webm).seconds) < 0.1
    assert [w.word for w in verbose.words][:3] == ["Can", "I", "pay"]
    assert all(a.end <= b.start + 1e-6 for a, b in zip(verbose.words, verbose.words[1:]))
    assert verbose.segments[0].start == 0.0 and verbose.segments[-1].end <= verbose.duration + 0.5
    only_words = ask(response_format="verbose_json", timestamp_granularities=["word"])
    assert only_words.words and only_words.segments is None


def test_speech_is_read_back_by_the_servers_own_transcription(client):
    said = "Your balance is two hundred and fifty dollars."
    for fmt in ("wav", "mp3", "opus", "flac", "aac"):
        audio = client.audio.speech.create(model="tts-1", voice="alloy", input=said, response_format=fmt).read()
        assert decode_audio(audio).seconds > 1.5
    heard = client.audio.transcriptions.create(model="whisper-1", file=("s.mp3", audio), response_format="text")
    assert "balance" in heard.lower() and "250" in heard
    pcm = client.audio.speech.create(model="tts-1", voice="nova", input="Hello.", response_format="pcm").read()
    assert len(pcm) % 2 == 0 and len(pcm) > 24_000  # 16-bit samples at 24 kHz, over half a second


def error_of(call, status):
    with pytest.raises(openai.APIStatusError) as err:
        call()
    assert err.value.status_code == status
    return err.value.body


def test_audio_errors_are_typed(client, question_webm):
    body = error_of(lambda: client.audio.translations.create(model="whisper-1", file=("q.webm", question_webm)), 400)
    assert body["code"] == "translation_unavailable" and "English-only" in body["message"]
    body = error_of(lambda: client.audio.transcriptions.create(model="whisper-9", file=("q.webm", question_webm)), 404)
    assert body["param"] == "model" and "whisper-1" in body["message"]
    body = error_of(lambda: client.audio.transcriptions.create(model="whisper-1", file=("q.webm", question_webm),
                                                               timestamp_granularities=["word"]), 400)
    assert body["param"] == "timestamp_granularities"
    body = error_of(lambda: client.audio.transcriptions.create(model="whisper-1", file=("notes.m4a", b"not audio")),
                    400)
    assert body["message"].startswith("notes.m4a: not an audio file")
    body = error_of(lambda: client.audio.speech.create(model="tts-1", voice="alloy", input="hi", speed=9), 422)
    assert body["param"] == "speed"
    body = error_of(lambda: client.audio.speech.create(model="gpt-9", voice="alloy", input="hi"), 404)
    assert body["code"] == "model_not_found"


# ---------------------------------------------------------------- chat with media parts


def test_a_chat_with_an_image_is_answered_from_its_text(client, monkeypatch, tokenizer):
    script_outputs(monkeypatch, tokenizer, {"Total due: $1,234.56": "The total due is $1,234.56."})
    image = photo_like(invoice())
    content = [{"type": "text", "text": "What is the total due?"},
               {"type": "image_url", "image_url": {"url": data_url(image, "image/jpeg")}}]
    reply = client.chat.completions.create(model="t1", messages=[{"role": "user", "content": content}], max_tokens=20)
    assert reply.choices[0].message.content == "The total due is $1,234.56."
    [media] = reply.model_extra["agentmill"]["media"]
    assert media["type"] == "image" and media["engine"] == "OCR" and media["found_text"] is True
    assert "Total due: $1,234.56" in media["text"] and media["media_type"] == "image/jpeg"
    # the model read the question and the labelled OCR text, rendered as every message is
    seen = "What is the total due?\n[image, OCR] " + media["text"]
    prompt = render(tokenizer, [{"role": "system", "content": SYSTEM_T1}, {"role": "user", "content": seen}],
                    add_generation_prompt=True)
    assert reply.usage.prompt_tokens == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    stream = list(client.chat.completions.create(model="t1", messages=[{"role": "user", "content": content}],
                                                 max_tokens=20, stream=True))
    assert stream[0].model_extra["agentmill"]["media"][0]["text"] == media["text"]
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "The total due is $1,234.56."


def test_a_chat_with_audio_and_a_file_image(client, question_webm):
    content = [{"type": "input_audio", "input_audio": {"data": base64.b64encode(question_webm).decode(),
                                                       "format": "webm"}},
               {"type": "file", "file": {"filename": "invoice.png", "file_data": data_url(encode(invoice(), "PNG"),
                                                                                          "image/png")}}]
    reply = client.chat.completions.create(model="t2", messages=[{"role": "user", "content": content}], max_tokens=4)
    audio, image = reply.model_extra["agentmill"]["media"]
    assert audio["type"] == "audio" and audio["text"] == QUESTION and audio["duration"] > 2
    assert image["name"] == "invoice.png" and "ACME SUPPLIES LTD" in image["text"]


def test_a_part_the_server_cannot_read_is_a_typed_400(client, server):
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                {"role": "user", "content": [{"type": "text", "text": "look"},
                                             {"type": "image_url", "image_url": {"url": "http://127.0.0.1/x.png"}}]}]
    body = error_of(lambda: client.chat.completions.create(model="t1", messages=messages, max_tokens=4), 400)
    assert body["param"] == "messages.[2].content.[1]" and body["code"] == "url_fetch_disabled"
    broken = [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": data_url(encode(invoice(), "JPEG")[:1500], "image/jpeg")}}]}]
    body = error_of(lambda: client.chat.completions.create(model="t1", messages=broken, max_tokens=4), 400)
    assert body["param"] == "messages.[0].content.[0]" and "corrupt" in body["message"]
    video = [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "x"}}]}]
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {KEY}"}) as h:
        r = h.post("/v1/chat/completions", json={"model": "t1", "messages": video})
    error = r.json()["error"]  # what /openapi.json says a part is: a schema error naming the part
    assert r.status_code == 422 and error["param"] == "messages[0].content[0]", error
    assert "'video_url'" in error["message"] and "'text', 'image_url', 'input_audio', 'file'" in error["message"]


def test_an_image_without_text_is_a_visible_notice(client, tokenizer, monkeypatch):
    script_outputs(monkeypatch, tokenizer, {"(no text found in the image)": "I cannot read any text in it."})
    from PIL import Image

    blank = encode(Image.new("RGB", (300, 200), (250, 250, 250)), "PNG")
    reply = client.chat.completions.create(model="t1", max_tokens=12, messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url(blank, "image/png")}}]}])
    assert reply.choices[0].message.content == "I cannot read any text in it."
    assert reply.model_extra["agentmill"]["media"][0]["found_text"] is False


def test_media_off_is_refused_and_advertised(run):
    from agentmill.media import MediaSettings

    app = create_app(run, settings=ServeSettings(media=MediaSettings(speech="none", image="none", voice="none")))
    with live_server(app) as url:
        c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        assert c.models.list().data[0].model_extra["agentmill"]["input"] == ["text"]
        body = error_of(lambda: c.chat.completions.create(model="t1", max_tokens=4, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_url(encode(invoice(), "PNG"), "image/png")}}]}]), 400)
        assert body["code"] == "image_disabled" and body["param"] == "messages.[0].content.[0]"
        body = error_of(lambda: c.audio.speech.create(model="tts-1", voice="alloy", input="hi"), 400)
        assert body["code"] == "voice_disabled"
        body = error_of(lambda: c.audio.transcriptions.create(model="whisper-1", file=("a.wav", io.BytesIO(b"x"))), 400)
        assert body["code"] == "audio_disabled"


# ---------------------------------------------------------------- agent sessions keep their media


def test_agent_sessions_keep_the_original_media(run, tmp_path, question_webm):
    from agentmill.serve.sessions import SessionPool  # noqa: F401 - the pool the app builds
    from agentmill.store import SQLiteSessionStore

    store = SQLiteSessionStore(tmp_path / "s.db")
    settings = ServeSettings(max_tokens_cap=16, agent_max_new_tokens=8, media_dir=tmp_path / "media")
    image = photo_like(invoice())
    parts = [{"type": "text", "text": "What is the total due?"},
             {"type": "image_url", "image_url": {"url": data_url(image, "image/jpeg")}},
             {"type": "input_audio", "input_audio": {"data": base64.b64encode(question_webm).decode(), "format": "webm"}}]
    with live_server(create_app(run, store=store, settings=settings)) as url, httpx.Client(base_url=url,
                                                                                          timeout=120) as h:
        sid = h.post("/v1/agent/sessions", json={}).json()["id"]
        turn = h.post(f"/v1/agent/sessions/{sid}/messages", json={"content": parts, "task": "t1"})
        assert turn.status_code == 200, turn.text
        [user] = [m for m in h.get(f"/v1/agent/sessions/{sid}").json()["messages"] if m["kind"] == "user"]
        assert user["content"].startswith("What is the total due?\n[image, OCR] ACME SUPPLIES LTD")
        assert f"[audio, transcript] {QUESTION}" in user["content"]
        picture, recording = user["meta"]["media"]
        assert picture["type"] == "image" and "Total due: $1,234.56" in picture["text"]
        assert recording["type"] == "audio" and recording["text"] == QUESTION
        got = h.get(f"/v1/agent/media/{picture['sha256']}")
        assert got.content == image and got.headers["content-type"] == "image/jpeg"
        got = h.get(f"/v1/agent/media/{recording['sha256']}")
        assert got.content == question_webm and got.headers["content-type"] == "audio/webm"
        assert h.get("/v1/agent/media/" + "0" * 64).status_code == 404
        bad = h.post(f"/v1/agent/sessions/{sid}/messages", json={"content": [
            {"type": "text", "text": "and this?"}, {"type": "input_audio", "input_audio": {"data": "bm9pc2U=",
                                                                                        "format": "wav"}}]})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "content.[1]"
        # the failed message left nothing behind: the session holds the first turn only
        assert [m["kind"] for m in h.get(f"/v1/agent/sessions/{sid}").json()["messages"]].count("user") == 1
    # a resumed agent reads the same conversation (the labelled text is what was stored)
    from agentmill.agent.agent import Agent
    from agentmill.agent.steps import UserStep
    from agentmill.tools.setup import registry_for_run

    resumed = Agent.resume(run, registry_for_run(run), store, sid)
    first = next(s for s in resumed.steps if isinstance(s, UserStep))
    assert first.media[0]["sha256"] == picture["sha256"] and "Total due: $1,234.56" in first.content
    store.close()


def test_a_busy_session_refuses_media_before_reading_it(run, tmp_path, monkeypatch):
    from agentmill.media.ocr import TesseractOCR
    from agentmill.store import SQLiteSessionStore

    store = SQLiteSessionStore(tmp_path / "s.db")
    app = create_app(run, store=store, settings=ServeSettings(max_tokens_cap=16, media_dir=tmp_path / "media"))
    parts = [{"type": "image_url", "image_url": {"url": data_url(photo_like(invoice()), "image/jpeg")}}]
    with live_server(app) as url, httpx.Client(base_url=url, timeout=120) as h:
        sid = h.post("/v1/agent/sessions", json={}).json()["id"]
        lock = app.state.agentmill.sessions.claim(sid)  # a turn is running
        monkeypatch.setattr(TesseractOCR, "read", lambda self, picture: pytest.fail("read while busy"))
        busy = h.post(f"/v1/agent/sessions/{sid}/messages", json={"content": parts, "task": "t1"})
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "session_busy"
        lock.release()
        monkeypatch.undo()
        bad = h.post(f"/v1/agent/sessions/{sid}/messages", json={"content": [
            {"type": "input_audio", "input_audio": {"data": "bm9pc2U=", "format": "wav"}}]})
        assert bad.status_code == 400  # a refused message gives the session back
        assert h.post(f"/v1/agent/sessions/{sid}/messages", json={"content": parts, "task": "t1"}).status_code == 200
    store.close()
