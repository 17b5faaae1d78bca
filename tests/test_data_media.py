"""Images and recordings in training data: read into labelled text with the agent's engines,
cached by file hash, every bad file reported as FILE:LINE with the other problems."""

import json

import pytest
from PIL import Image

from agentmill.data.formats import read_records
from agentmill.errors import DataError
from agentmill.media import MediaBackends
from media_util import encode, invoice, photo_like, speak

QUESTION = "Can I pay this invoice from account 4821?"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTMILL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def files(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "invoice-01.jpg").write_bytes(photo_like(invoice()))
    (tmp_path / "images" / "blank.png").write_bytes(encode(Image.new("RGB", (300, 200), "white"), "PNG"))
    (tmp_path / "question.wav").write_bytes(speak(QUESTION))
    return tmp_path


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def chat(parts, answer="The total due is $1,234.56."):
    return {"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": answer}]}


def test_chat_parts_become_the_text_the_agent_reads(files, home):
    data = write(files / "train.jsonl", [
        chat([{"type": "text", "text": "What is the total due?"},
              {"type": "image_url", "image_url": {"url": "images/invoice-01.jpg"}}]),
        chat([{"type": "input_audio", "input_audio": {"path": "question.wav", "format": "wav"}}], "Yes, you can."),
        {"messages": [{"role": "user", "content": "plain text"}, {"role": "assistant", "content": "ok"}]},
    ])
    first, second, third = read_records(data, "chat")
    content = first.messages[0]["content"]
    assert content.startswith("What is the total due?\n[image invoice-01.jpg, OCR] ACME SUPPLIES LTD\n")
    assert "Total due: $1,234.56" in content
    assert second.messages[0]["content"] == f"[audio question.wav, transcript] {QUESTION}"
    assert third.messages[0]["content"] == "plain text"
    assert first.messages[1] == {"role": "assistant", "content": "The total due is $1,234.56."}


def test_instruction_images_and_audios(files, home):
    data = write(files / "inst.jsonl", [{"instruction": "Answer the customer.", "audios": ["question.wav"],
                                          "images": ["images/invoice-01.jpg"], "output": "Yes."}])
    [record] = read_records(data, "instruction")
    user = record.messages[0]["content"]
    assert user.startswith("Answer the customer.\n[image invoice-01.jpg, OCR] ACME SUPPLIES LTD")
    assert user.endswith(f"[audio question.wav, transcript] {QUESTION}")


def test_the_same_text_as_the_api_reads(files, home):
    """Training sees what a client's file part with the same name gives at run time."""
    from agentmill.media.parts import read_content
    import base64

    data = write(files / "train.jsonl", [chat([{"type": "image_url", "image_url": {"url": "images/invoice-01.jpg"}}])])
    [record] = read_records(data, "chat")
    raw = (files / "images" / "invoice-01.jpg").read_bytes()
    served, _ = read_content([{"type": "file", "file": {"filename": "invoice-01.jpg", "file_data":
                                                        "data:image/jpeg;base64," + base64.b64encode(raw).decode()}}],
                             MediaBackends(), "messages.[0].content")
    assert record.messages[0]["content"] == served


def test_bad_files_are_reported_by_line(files, home):
    data = write(files / "bad.jsonl", [
        chat([{"type": "text", "text": "fine"}, {"type": "image_url", "image_url": {"url": "images/invoice-01.jpg"}}]),
        chat([{"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": "images/missing.png"}}]),
        chat([{"type": "image_url", "image_url": {"url": "images/blank.png"}}]),
        chat([{"type": "input_audio", "input_audio": {"path": "images/invoice-01.jpg"}}]),
        chat([{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]),
    ])
    with pytest.raises(DataError) as err:
        read_records(data, "chat")
    problems = err.value.problems
    assert len(problems) == 4
    assert problems[0] == (f"{data}:2: messages[0].content[1]: images/missing.png: no such file "
                           f"(paths are relative to the data file)")
    assert problems[1] == f"{data}:3: messages[0].content[0]: blank.png: no text found in the image, nothing to train on"
    assert problems[2] == f"{data}:4: messages[0].content[0]: invoice-01.jpg: the file has no audio stream"
    assert problems[3] == (f"{data}:5: messages[0].content[0]: https://example.com/a.png: training data refers "
                           f"to files by path, not URL")
    bad_shape = write(files / "shape.jsonl", [chat([{"type": "video", "video": {}}]), chat("x", answer="")])
    with pytest.raises(DataError) as err:
        read_records(bad_shape, "chat")
    assert err.value.problems[0] == (f"{bad_shape}:1: \"messages[0].content[0]\" has type 'video'; content parts "
                                     f"are text, image_url, input_audio, file")


def test_reads_are_cached_by_file_hash(files, home, monkeypatch):
    data = write(files / "train.jsonl", [chat([{"type": "image_url", "image_url": {"url": "images/invoice-01.jpg"}}])])
    first = read_records(data, "chat")[0].messages[0]["content"]
    from agentmill.media.ocr import TesseractOCR

    monkeypatch.setattr(TesseractOCR, "read", lambda self, picture: pytest.fail("read again"))
    assert read_records(data, "chat")[0].messages[0]["content"] == first
    assert len(list((home / "media-cache").rglob("*.json"))) == 1


def test_a_changed_speech_prompt_is_not_served_from_the_cache(tmp_path, monkeypatch):
    import agentmill.media.parts as parts_mod
    from agentmill.config import MediaSettings
    from agentmill.media import MediaBackends
    from agentmill.media.cache import cached_read
    from agentmill.media.parts import Extracted

    heard = []

    def fake_read(backends, kind, data, error_name=None):
        heard.append(backends.settings.speech_prompt)
        return Extracted(kind=kind, name=error_name, engine="transcript", data=data,
                         text=f"heard with {backends.settings.speech_prompt}")

    monkeypatch.setattr(parts_mod, "read_media", fake_read)
    for prompt in ("bank", "bank", "clinic"):
        entry = cached_read(MediaBackends(MediaSettings(speech_prompt=prompt)), b"RIFF", "audio", "q.wav", root=tmp_path)
        assert entry["text"] == f"heard with {prompt}"
    assert heard == ["bank", "clinic"]
