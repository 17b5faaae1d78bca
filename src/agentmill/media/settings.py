"""`MediaBackends`: the engines `MediaSettings` (config.py: the recipe's `media:`, and the
server's) chooses, each built when first used, and the limits every file is held to."""

from __future__ import annotations

from functools import cached_property

from agentmill.config import MediaSettings
from agentmill.media.errors import MediaError

__all__ = ["MediaBackends", "MediaSettings", "media_settings_of"]


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
        if not options.get("prompt"):
            options["prompt"] = self.settings.speech_prompt
        audio = decode_audio(self.check_size(data, name), max_seconds=self.settings.max_audio_seconds, name=name)
        return speech.transcribe(audio, **options)

    def read_image(self, data: bytes, name: str = "image"):
        from agentmill.media.image import decode_image

        reader = self.image
        picture = decode_image(self.check_size(data, name), max_pixels=self.settings.max_image_pixels, name=name)
        return reader.read(picture)


def media_settings_of(run) -> MediaSettings:
    """The run's recipe `media:` settings (its manifest; the defaults for a run made before them)."""
    return MediaSettings(**(getattr(run, "manifest", None) or {}).get("media", {}))
