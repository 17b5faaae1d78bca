"""`MediaSettings`: which engine reads speech and images and what a file may be (the recipe's
`media:`, and the server's); `MediaBackends`: those engines, built when first used."""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agentmill.media.errors import MediaError


class MediaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    speech: Literal["whisper", "none"] = Field(
        "whisper", description="Speech to text: faster-whisper, or none (audio is refused).")
    speech_model: str | None = Field(
        None, description="A faster-whisper (CTranslate2) model folder; default: the embedded Whisper tiny.en.")
    speech_compute_type: str = Field("int8", description="CTranslate2 compute type of the speech model.")
    image: Literal["tesseract", "vision", "none"] = Field(
        "tesseract", description="Image to text: Tesseract OCR, a local vision-language model, or none (refused).")
    image_model: str | None = Field(None, description="The vision-language model folder (image: vision).")
    ocr_lang: str = Field("eng", description="Tesseract language(s), e.g. eng or eng+deu.")
    voice: Literal["espeak", "none"] = Field("espeak", description="Text to speech: espeak-ng, or none.")
    max_file_bytes: int = Field(25 * 1024 * 1024, ge=1, description="Largest audio or image file (OpenAI's 25 MB).")
    max_audio_seconds: float = Field(600, gt=0, description="Longest audio accepted.")
    max_image_pixels: int = Field(40_000_000, ge=1, description="Largest image (width x height): decompression bombs stop here.")
    fetch_urls: bool = Field(
        False, description="Fetch http(s) image URLs in chat messages (private and loopback addresses are always refused).")
    fetch_timeout_s: float = Field(10, gt=0, description="Time limit of one URL fetch.")


class MediaBackends:
    """The engines `settings` chooses, each loaded on first use (a text-only server loads none)."""

    def __init__(self, settings: MediaSettings | None = None):
        self.settings = settings or MediaSettings()

    @property
    def accepts(self) -> list[str]:
        """The input kinds a chat message may carry here."""
        s = self.settings
        return ["text"] + (["image"] if s.image != "none" else []) + (["audio"] if s.speech != "none" else [])

    @cached_property
    def speech(self):
        if self.settings.speech == "none":
            raise MediaError("audio input is switched off on this server (media.speech: none)", code="audio_disabled")
        from agentmill.media.speech import WhisperSpeech

        return WhisperSpeech(self.settings.speech_model, self.settings.speech_compute_type)

    @cached_property
    def image(self):
        s = self.settings
        if s.image == "none":
            raise MediaError("image input is switched off on this server (media.image: none)", code="image_disabled")
        if s.image == "vision":
            if not s.image_model:
                raise MediaError("media.image is 'vision' but media.image_model names no model folder")
            from agentmill.media.ocr import VisionModel

            return VisionModel(s.image_model)
        from agentmill.media.ocr import TesseractOCR

        return TesseractOCR(s.ocr_lang)

    @cached_property
    def voice(self):
        if self.settings.voice == "none":
            raise MediaError("speech output is switched off on this server (media.voice: none)", code="voice_disabled")
        from agentmill.media.voice import EspeakVoice

        return EspeakVoice()

    def check_size(self, data: bytes, name: str) -> bytes:
        if len(data) > self.settings.max_file_bytes:
            raise MediaError(f"{name}: {len(data):,} bytes, over the limit of {self.settings.max_file_bytes:,}",
                             status=413, code="file_too_large")
        return data

    def transcribe(self, data: bytes, name: str = "audio", **options):
        from agentmill.media.audio import decode_audio

        speech = self.speech
        audio = decode_audio(self.check_size(data, name), max_seconds=self.settings.max_audio_seconds, name=name)
        return speech.transcribe(audio, **options)

    def read_image(self, data: bytes, name: str = "image"):
        from agentmill.media.image import decode_image

        reader = self.image
        picture = decode_image(self.check_size(data, name), max_pixels=self.settings.max_image_pixels, name=name)
        return reader.read(picture)
