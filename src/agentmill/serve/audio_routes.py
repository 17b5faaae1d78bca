"""OpenAI's audio routes: /v1/audio/transcriptions, /v1/audio/translations, /v1/audio/speech.

- transcriptions: multipart ``file`` (any browser or phone format, read by content), ``model``
  (``whisper-1`` or the speech model's id), ``language``, ``prompt``, ``temperature``,
  ``response_format`` json | text | srt | verbose_json | vtt, ``timestamp_granularities[]``
  word | segment (verbose_json only, as OpenAI). Times in seconds.
- translations: the same into English; a 400 while the speech model is English-only.
- speech: JSON ``input``, ``voice`` (OpenAI's names, or an espeak-ng voice), ``response_format``
  wav | mp3 | opus | flac | pcm | aac (default mp3), ``speed`` 0.25-4; the audio bytes back.
The work runs on the engine's thread (serve/media.py says why).
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from agentmill.serve.contract import EVERY_V1_ROUTE, errors
from agentmill.serve.errors import ApiError
from agentmill.serve.state import state_of

router = APIRouter(prefix="/v1/audio", responses=EVERY_V1_ROUTE)
TEXT_OUT = {200: {"content": {"application/json": {}, "text/plain": {"schema": {"type": "string"}}}},
            **errors(400, 404, 429)}

FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
TextFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]
SPEECH_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "espeak-ng")


def _speech_model(state, model: str):
    speech = state.media.speech
    if model not in ("whisper-1", speech.model_id):
        raise ApiError(404, f"the speech model '{model}' does not exist here: use 'whisper-1' or "
                            f"'{speech.model_id}'", param="model", code="model_not_found")
    return speech


def _timestamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def subtitles(transcript, kind: str) -> str:
    if kind == "srt":
        return "".join(f"{i}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{s.text}\n\n"
                       for i, s in enumerate(transcript.segments, 1))
    return "WEBVTT\n\n" + "".join(f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{s.text}\n\n"
                                  for s in transcript.segments)


def verbose(transcript, words: bool, segments: bool) -> dict:
    from agentmill.media.speech import LANGUAGE_NAMES

    out = {"task": transcript.task, "language": LANGUAGE_NAMES.get(transcript.language, transcript.language),
           "duration": transcript.duration, "text": transcript.text}
    if segments:
        out["segments"] = [{"id": s.id, "seek": s.seek, "start": s.start, "end": s.end, "text": s.text,
                            "tokens": s.tokens, "temperature": s.temperature, "avg_logprob": s.avg_logprob,
                            "compression_ratio": s.compression_ratio, "no_speech_prob": s.no_speech_prob}
                           for s in transcript.segments]
    if words:
        out["words"] = [{"word": w.word, "start": w.start, "end": w.end} for w in transcript.words]
    return out


async def _audio_text(request: Request, task: str, file: UploadFile, model: str, language: str | None,
                      prompt: str | None, response_format: str, temperature: float, granularities: list[str] | None):
    state = state_of(request)
    if response_format not in FORMATS:
        raise ApiError(400, f"response_format is {response_format!r}: use one of {', '.join(FORMATS)}",
                       param="response_format")
    granularities = granularities or []
    bad = [g for g in granularities if g not in ("word", "segment")]
    if bad:
        raise ApiError(400, f"timestamp_granularities[] takes word and segment, not {bad[0]!r}",
                       param="timestamp_granularities")
    if granularities and response_format != "verbose_json":
        raise ApiError(400, "timestamp_granularities[] needs response_format verbose_json",
                       param="timestamp_granularities")
    if not 0 <= temperature <= 1:
        raise ApiError(400, f"temperature is {temperature}: it must be between 0 and 1", param="temperature")
    _speech_model(state, model)
    data = await file.read()
    name = file.filename or "file"
    words = "word" in granularities
    job = lambda: state.media.transcribe(data, name=name, language=language, prompt=prompt,  # noqa: E731
                                         temperature=temperature, words=words, task=task,
                                         timestamps=response_format in ("srt", "vtt", "verbose_json"))
    slot = state.limiter.acquire(request.state.caller)
    try:
        transcript = await asyncio.wrap_future(state.engine.call(job))
    finally:
        slot.release()
    if response_format == "json":
        return JSONResponse({"text": transcript.text,
                             "usage": {"type": "duration", "seconds": round(transcript.duration)}})
    if response_format == "text":
        return PlainTextResponse(transcript.text + "\n")
    if response_format in ("srt", "vtt"):
        return PlainTextResponse(subtitles(transcript, response_format))
    return JSONResponse(verbose(transcript, words, segments=not granularities or "segment" in granularities))


@router.post("/transcriptions", responses=TEXT_OUT)
async def transcriptions(request: Request, file: UploadFile = File(...), model: str = Form(...),
                         language: str | None = Form(None), prompt: str | None = Form(None),
                         response_format: TextFormat = Form("json"), temperature: float = Form(0.0, ge=0, le=1),
                         timestamp_granularities: list[Literal["word", "segment"]] | None = Form(
                             None, alias="timestamp_granularities[]")):
    return await _audio_text(request, "transcribe", file, model, language, prompt, response_format, temperature,
                             timestamp_granularities)


@router.post("/translations", responses=TEXT_OUT)
async def translations(request: Request, file: UploadFile = File(...), model: str = Form(...),
                       prompt: str | None = Form(None), response_format: TextFormat = Form("json"),
                       temperature: float = Form(0.0, ge=0, le=1)):
    return await _audio_text(request, "translate", file, model, None, prompt, response_format, temperature, None)


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(description="Any of " + ", ".join(SPEECH_MODELS) + ": all are espeak-ng.")
    input: str = Field(min_length=1, max_length=4096, pattern=r"\S", description="The text to speak (not blank).")
    voice: str = "alloy"
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)


@router.post("/speech", response_class=Response, responses={
    200: {"content": {"audio/mpeg": {}, "audio/ogg": {}, "audio/aac": {}, "audio/flac": {}, "audio/wav": {},
                      "audio/pcm": {}}}, **errors(400, 404, 429)})
async def speech(request: Request, body: SpeechRequest):
    from agentmill.media.audio import MIME, encode_audio

    state = state_of(request)
    if body.model not in SPEECH_MODELS:
        raise ApiError(404, f"the speech model '{body.model}' does not exist here: use one of "
                            f"{', '.join(SPEECH_MODELS)} (all are espeak-ng)", param="model", code="model_not_found")
    voice = state.media.voice

    def job():
        return encode_audio(voice.speak(body.input, body.voice, body.speed), body.response_format)

    slot = state.limiter.acquire(request.state.caller)
    try:
        audio = await asyncio.wrap_future(state.engine.call(job))
    finally:
        slot.release()
    return Response(audio, media_type=MIME[body.response_format])
