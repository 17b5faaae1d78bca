"""media/: decoding by content, speech to text, OCR, speech out, content parts, the media store."""

import base64

import numpy as np
import pytest
from PIL import Image

from agentmill.media import MediaBackends, MediaError, MediaSettings, MissingEngine
from agentmill.media.audio import SPEECH_FORMATS, Audio, decode_audio, encode_audio
from agentmill.media.fetch import check_public
from agentmill.media.image import decode_image
from agentmill.media.ocr import TesseractOCR
from agentmill.media.parts import read_content
from agentmill.media.store import MediaStore
from agentmill.media.voice import EspeakVoice
from media_util import CONTAINERS, encode, invoice, photo_like, reencode, speak, tone

QUESTION = "What is the balance of my savings account?"


@pytest.fixture(scope="module")
def backends():
    return MediaBackends()


@pytest.fixture(scope="module")
def question_wav():
    return speak(QUESTION)


def words(text: str) -> set[str]:
    return {w.strip(".,?!$").lower() for w in text.split()}


# ---------------------------------------------------------------- audio decoding


@pytest.mark.parametrize("kind", sorted(CONTAINERS))
def test_every_recording_format_decodes_by_content(question_wav, kind):
    reference = decode_audio(question_wav)
    data = reencode(question_wav, kind)
    audio = decode_audio(data, name="upload.bin")  # the name says nothing: the bytes decide
    assert audio.rate == 16_000 and audio.samples.ndim == 1 and audio.samples.dtype == np.float32
    assert abs(audio.seconds - reference.seconds) < 0.1
    assert np.abs(audio.samples).max() > 0.1  # not silence
    assert reencode(question_wav, kind) == data  # bitexact: the example's files regenerate byte for byte


def test_bad_audio_is_a_clear_error():
    with pytest.raises(MediaError, match="voice.wav: not an audio file"):
        decode_audio(b"RIFF....this is not audio at all", name="voice.wav")
    with pytest.raises(MediaError, match="the audio is empty"):
        decode_audio(b"")
    with pytest.raises(MediaError, match="no audio stream"):
        decode_audio(encode(invoice(), "GIF"))
    with pytest.raises(MediaError, match="longer than the limit of 2 s") as err:
        decode_audio(tone(3.0), max_seconds=2)
    assert err.value.code == "audio_too_long"


@pytest.mark.parametrize("fmt", [f for f in SPEECH_FORMATS if f != "pcm"])
def test_encoded_speech_decodes_back(fmt):
    samples = decode_audio(tone(1.0)).samples
    back = decode_audio(encode_audio(Audio(samples, 16_000), fmt))
    assert abs(back.seconds - 1.0) < 0.1  # codec priming and padding: AAC adds a frame or two


def test_pcm_is_raw_24khz_16bit():
    raw = encode_audio(Audio(np.zeros(16_000, np.float32), 16_000), "pcm")
    assert abs(len(raw) - 2 * 24_000) <= 4


# ---------------------------------------------------------------- image decoding


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"])
def test_every_image_format_decodes(fmt):
    picture = decode_image(encode(invoice(), fmt))
    assert picture.mode == "RGB" and picture.size == (900, 520)


def test_exif_orientation_is_applied():
    wide = Image.new("RGB", (300, 100), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    upright = decode_image(encode(wide, "JPEG", exif=exif.tobytes()))
    assert upright.size == (100, 300)


def test_a_gif_gives_its_first_frame():
    red, blue = Image.new("RGB", (20, 20), (255, 0, 0)), Image.new("RGB", (20, 20), (0, 0, 255))
    gif = encode(red, "GIF", save_all=True, append_images=[blue])
    r, g, b = decode_image(gif).getpixel((10, 10))
    assert r > 200 and b < 50


def test_bad_images_are_clear_errors():
    with pytest.raises(MediaError, match="scan.png: not an image"):
        decode_image(b"\x89PNG not really", name="scan.png")
    big = encode(Image.new("1", (8_000, 6_000)), "PNG")  # a few kB that unpack to 48 M pixels
    assert len(big) < 100_000
    with pytest.raises(MediaError, match="8000x6000 = 48,000,000 pixels, over the limit of 40,000,000") as err:
        decode_image(big, max_pixels=40_000_000)
    assert err.value.code == "image_too_large"
    bomb = encode(Image.new("1", (20_000, 20_000)), "PNG")  # 400 M pixels: Pillow's own guard stops it
    with pytest.raises(MediaError, match="too many pixels to decode safely") as err:
        decode_image(bomb, max_pixels=40_000_000)
    assert err.value.code == "image_too_large"
    truncated = encode(invoice(), "JPEG")[:2000]
    with pytest.raises(MediaError, match="corrupt"):
        decode_image(truncated)
    with pytest.raises(MediaError, match="ICO images are not supported"):
        decode_image(encode(Image.new("RGB", (32, 32)), "ICO"))


# ---------------------------------------------------------------- OCR


def test_ocr_reads_a_photo_like_invoice(backends):
    found = backends.read_image(photo_like(invoice()), name="invoice.jpg")
    assert "Total due: $1,234.56" in found.text and "Invoice number: 1042" in found.text
    facts = found.facts()
    assert facts["found_text"] and facts["mean_confidence"] > 70 and facts["width"] > 900


def test_an_image_without_text_says_so(backends):
    found = backends.read_image(encode(Image.new("RGB", (400, 300), (200, 220, 240)), "PNG"))
    assert found.text == "" and found.facts()["found_text"] is False
    content, [extracted] = read_content([{"type": "image_url", "image_url": {
        "url": "data:image/png;base64," + base64.b64encode(extracted_bytes := encode(
            Image.new("RGB", (400, 300), "white"), "PNG")).decode()}}], backends, "messages.[0].content")
    assert content == "[image, OCR] (no text found in the image)" and extracted.data == extracted_bytes


def test_a_missing_tesseract_names_the_package(monkeypatch):
    import pytesseract

    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "no-such-tesseract")
    with pytest.raises(MissingEngine, match="apt-get install tesseract-ocr tesseract-ocr-eng"):
        TesseractOCR().read(invoice())


# ---------------------------------------------------------------- speech


def test_speech_to_text_hears_the_question(backends, question_wav):
    transcript = backends.transcribe(reencode(question_wav, "webm"), words=True)
    assert {"balance", "savings", "account"} <= words(transcript.text)
    assert transcript.language == "en" and abs(transcript.duration - decode_audio(question_wav).seconds) < 0.1
    assert transcript.words and all(0 <= w.start <= w.end <= transcript.duration + 0.5 for w in transcript.words)


def test_the_english_only_model_refuses_to_translate(backends, question_wav):
    with pytest.raises(MediaError, match="English-only and cannot translate"):
        backends.transcribe(question_wav, task="translate")
    with pytest.raises(MediaError, match="cannot transcribe language 'de'"):
        backends.transcribe(question_wav, language="de")


def test_text_to_speech_is_heard_back(backends):
    spoken = backends.voice.speak("Your balance is two hundred dollars.", voice="alloy", speed=1.0)
    assert spoken.seconds > 1.0
    heard = backends.transcribe(encode_audio(spoken, "mp3"))
    assert "balance" in words(heard.text)
    slow = backends.voice.speak("Your balance is two hundred dollars.", speed=0.5)
    assert slow.seconds > 1.5 * spoken.seconds


def test_voice_errors():
    with pytest.raises(MediaError, match="between 0.25 and 4.0"):
        EspeakVoice().speak("hi", speed=9)
    with pytest.raises(MediaError, match="not a known voice"):
        EspeakVoice().speak("hi", voice="x; rm -rf /")
    with pytest.raises(MissingEngine, match="apt-get install espeak-ng"):
        EspeakVoice(binary="no-such-espeak").speak("hi")


# ---------------------------------------------------------------- content parts


def _data_url(data: bytes, kind: str) -> str:
    return f"data:{kind};base64," + base64.b64encode(data).decode()


def test_media_parts_become_labelled_text(backends, question_wav):
    content, found = read_content([
        {"type": "text", "text": "Please look at these."},
        {"type": "image_url", "image_url": {"url": _data_url(encode(invoice(), "WEBP"), "image/webp")}},
        {"type": "input_audio", "input_audio": {"data": base64.b64encode(reencode(question_wav, "m4a")).decode(),
                                                "format": "mp4"}},
        {"type": "file", "file": {"filename": "statement.png", "file_data": _data_url(encode(invoice(), "PNG"),
                                                                                       "image/png")}},
    ], backends, "messages.[2].content")
    lines = content.split("\n")
    assert lines[0] == "Please look at these." and lines[1] == "[image, OCR] ACME SUPPLIES LTD"
    assert "Total due: $1,234.56" in content
    assert any(line.startswith("[audio, transcript] ") and "balance" in line.lower() for line in lines)
    assert "[image statement.png, OCR] ACME SUPPLIES LTD" in content
    assert [f.kind for f in found] == ["image", "audio", "image"]
    assert found[0].summary()["media_type"] == "image/webp" and found[2].name == "statement.png"


def test_text_only_content_is_untouched(backends):
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert read_content(parts, backends, "m") == (parts, [])
    assert read_content("plain", backends, "m") == ("plain", [])


@pytest.mark.parametrize("part, message, code", [
    ({"type": "video_url", "video_url": {"url": "x"}}, "type 'video_url' are not supported", "unsupported_content_part"),
    ({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}, "does not fetch image URLs",
     "url_fetch_disabled"),
    ({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}, "not valid base64", "invalid_media"),
    ({"type": "input_audio", "input_audio": {"data": base64.b64encode(b"noise").decode(), "format": "wav"}},
     "not an audio file", "invalid_media"),
    ({"type": "file", "file": {"filename": "a.pdf", "file_data": _data_url(b"%PDF-1.4 ...", "application/pdf")}},
     r"a.pdf is not an image this server can read \(application/pdf\)", "unsupported_file"),
])
def test_a_refused_part_names_itself(backends, part, message, code):
    with pytest.raises(MediaError, match=message) as err:
        read_content([{"type": "text", "text": "hi"}, part], backends, "messages.[3].content")
    assert err.value.param == "messages.[3].content.[1]" and err.value.code == code
    assert str(err.value).startswith("messages.[3].content.[1]: ")


def test_switched_off_backends_refuse():
    off = MediaBackends(MediaSettings(speech="none", image="none", voice="none"))
    assert off.accepts == ["text"]
    with pytest.raises(MediaError, match="switched off"):
        off.read_image(encode(invoice(), "PNG"))
    with pytest.raises(MediaError, match="switched off"):
        off.transcribe(tone(1))


def test_size_limit():
    small = MediaBackends(MediaSettings(max_file_bytes=1000))
    with pytest.raises(MediaError, match="over the limit of 1,000") as err:
        small.read_image(encode(invoice(), "PNG"))
    assert err.value.status == 413


@pytest.mark.parametrize("url", ["http://127.0.0.1/x.png", "http://localhost:8000/", "http://10.1.2.3/a",
                                 "http://169.254.169.254/latest/meta-data", "http://[::1]/", "file:///etc/passwd",
                                 "http://192.168.0.1/"])
def test_private_urls_are_refused(url):
    with pytest.raises(MediaError, match="private, loopback or reserved|not an http"):
        check_public(url)


# ---------------------------------------------------------------- store


def test_media_store_is_content_addressed(tmp_path):
    store = MediaStore(tmp_path)
    digest = store.put(b"picture bytes")
    assert store.put(b"picture bytes") == digest and store.get(digest) == b"picture bytes"
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [digest]  # once, no temporary left
    assert store.get("0" * 64) is None and store.get("../../etc/passwd") is None


# ---------------------------------------------------------------- a vision-language model instead of OCR


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory, tokenizer):
    """A random-init LLaVA (tiny CLIP vision tower + tiny Llama) with the real tokenizer, saved as a
    local folder that AutoProcessor / AutoModelForImageTextToText load."""
    import copy

    import torch
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    tok = copy.deepcopy(tokenizer)
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=32)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                         vision_feature_layer=-1, vision_feature_select_strategy="full")
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
                "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
                "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    processor = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                  crop_size={"height": 32, "width": 32}),
                               tokenizer=tok, patch_size=8, vision_feature_select_strategy="full",
                               chat_template=template, image_token="<image>", num_additional_image_tokens=1)
    folder = tmp_path_factory.mktemp("vlm")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder, model.eval(), processor


def test_a_local_vision_model_reads_images_instead_of_ocr(tiny_vlm):
    import torch

    from agentmill.media.ocr import VisionModel

    folder, model, processor = tiny_vlm
    backends = MediaBackends(MediaSettings(image="vision", image_model=str(folder)))
    picture = Image.new("RGB", (64, 48), (200, 30, 30))
    found = backends.read_image(encode(picture, "PNG"))
    assert found.engine == "vision model" and (found.width, found.height) == (64, 48)
    # exactly the model's own greedy answer to the transcription prompt
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": VisionModel.PROMPT}]}]
    inputs = processor(images=[picture], text=processor.apply_chat_template(messages, add_generation_prompt=True),
                       return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=256, do_sample=False)
    expected = processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert found.text == expected and expected
    content, _ = read_content([{"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(
        encode(picture, "PNG")).decode()}}], backends, "messages.[0].content")
    assert content == f"[image, vision model] {expected}"


def test_vision_settings_errors(tmp_path):
    with pytest.raises(MediaError, match="media.image_model names no model folder"):
        MediaBackends(MediaSettings(image="vision")).read_image(encode(invoice(), "PNG"))
    with pytest.raises(MediaError, match="the vision model folder does not exist"):
        MediaBackends(MediaSettings(image="vision", image_model=str(tmp_path / "none"))).read_image(
            encode(invoice(), "PNG"))
