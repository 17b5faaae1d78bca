"""Audio in any container a browser or phone records, as the 16 kHz mono samples Whisper reads.

Decoding goes by the bytes, not the file name or the declared format: FFmpeg (through PyAV)
probes the content, so WAV, MP3, FLAC, Ogg/Opus, WebM/Opus (Chrome's MediaRecorder) and
MP4/M4A/AAC (Safari's) all work whatever they are called. `encode_audio` writes samples back
out for `/v1/audio/speech`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from agentmill.media.errors import MediaError, MissingEngine

RATE = 16_000  # what speech recognition reads
SPEECH_FORMATS = ("wav", "mp3", "opus", "flac", "pcm", "aac")  # OpenAI's response_format values


@dataclass
class Audio:
    samples: np.ndarray  # float32 mono in [-1, 1]
    rate: int
    container: str = ""  # what the content turned out to be (FFmpeg's name, e.g. "ogg", "mov,mp4,m4a,...")

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate if self.rate else 0.0


def _av():
    try:
        import av
    except ImportError:
        raise MissingEngine("PyAV (audio decoding)", "pip install av") from None
    return av


def decode_audio(data: bytes, *, max_seconds: float | None = None, rate: int = RATE, name: str = "audio") -> Audio:
    """The first audio stream of `data`, resampled to `rate` Hz mono float32.

    A MediaError (naming `name`) for bytes that are not audio, a file without an audio
    stream, or audio longer than `max_seconds`."""
    av = _av()
    if not data:
        raise MediaError(f"{name}: the audio is empty")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.error.FFmpegError, ValueError) as err:
        raise MediaError(f"{name}: not an audio file that can be decoded ({_reason(err)}); "
                         f"send WAV, MP3, FLAC, Ogg/Opus, WebM/Opus or MP4/M4A/AAC") from None
    with container:
        stream = next((s for s in container.streams if s.type == "audio"), None)
        if stream is None:
            raise MediaError(f"{name}: the file has no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks, total = [], 0
        limit = None if max_seconds is None else int(max_seconds * rate)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    total += chunks[-1].shape[0]
                if limit is not None and total > limit:
                    raise MediaError(f"{name}: the audio is longer than the limit of {max_seconds:g} s",
                                     code="audio_too_long")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as err:
            raise MediaError(f"{name}: the audio is corrupt and cannot be decoded ({_reason(err)})") from None
        kind = container.format.name
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise MediaError(f"{name}: the audio stream holds no samples")
    return Audio(samples, rate, kind)


_CONTAINER_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "ogg": "audio/ogg", "flac": "audio/flac", "aac": "audio/aac",
                   "matroska,webm": "audio/webm", "mov,mp4,m4a,3gp,3g2,mj2": "audio/mp4"}


def audio_type(data: bytes) -> str | None:
    """The MIME type of `data` if FFmpeg recognises it as audio (header only), else None."""
    av = _av()
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not any(s.type == "audio" for s in container.streams):
                return None
            return _CONTAINER_TYPES.get(container.format.name, "application/octet-stream")
    except (av.error.FFmpegError, ValueError):
        return None


def _reason(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err)


# container, codec, sample rate each format is written with (Opus only takes 48 kHz)
_ENCODINGS = {"wav": ("wav", "pcm_s16le", None), "mp3": ("mp3", "libmp3lame", None), "opus": ("ogg", "libopus", 48_000),
              "flac": ("flac", "flac", None), "aac": ("adts", "aac", None)}
MIME = {"wav": "audio/wav", "mp3": "audio/mpeg", "opus": "audio/ogg", "flac": "audio/flac", "aac": "audio/aac",
        "pcm": "audio/pcm"}


def encode_audio(audio: Audio, fmt: str) -> bytes:
    """`audio` as a file of format `fmt` (one of SPEECH_FORMATS). "pcm" is raw 16-bit little-endian
    samples at 24 kHz, as OpenAI's speech endpoint returns them."""
    if fmt == "pcm":
        pcm = resample(audio, 24_000).samples
        return (np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes()
    if fmt not in _ENCODINGS:
        raise MediaError(f"unknown audio format {fmt!r}: use one of {', '.join(SPEECH_FORMATS)}")
    av = _av()
    container_name, codec, rate = _ENCODINGS[fmt]
    src = resample(audio, rate) if rate and rate != audio.rate else audio
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container_name) as out:
        stream = out.add_stream(codec, rate=src.rate, layout="mono")
        kind = "s16" if codec in ("pcm_s16le", "flac") else None
        samples = src.samples.reshape(1, -1)
        if kind == "s16":
            frame = av.AudioFrame.from_ndarray((np.clip(samples, -1, 1) * 32767).astype(np.int16), format="s16",
                                               layout="mono")
        else:
            frame = av.AudioFrame.from_ndarray(samples.astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = src.rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def transcode(data: bytes, container: str, codec: str, rate: int, bit_rate: int | None = None) -> bytes:
    """The first audio stream of `data` re-encoded, mono at `rate` Hz, with `codec` in `container`
    (FFmpeg's names: "webm"/"libopus", "mp4"/"aac", ...): what a browser or phone would send.
    The same input gives the same bytes (bitexact: no random Ogg stream serial, no encoder tag)."""
    av = _av()
    out_buf = io.BytesIO()
    with (av.open(io.BytesIO(data)) as src,
          av.open(out_buf, "w", format=container, options={"fflags": "+bitexact"}) as out):
        stream = out.add_stream(codec, rate=rate, layout="mono")
        if bit_rate:
            stream.bit_rate = bit_rate
        resampler = av.AudioResampler(format=stream.codec_context.codec.audio_formats[0].name, layout="mono",
                                      rate=rate)
        for frame in src.decode(audio=0):
            for f in resampler.resample(frame):
                for packet in stream.encode(f):
                    out.mux(packet)
        for f in resampler.resample(None):
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return out_buf.getvalue()


def resample(audio: Audio, rate: int) -> Audio:
    """`audio` at another sample rate (FFmpeg's resampler)."""
    if rate == audio.rate:
        return audio
    av = _av()
    frame = av.AudioFrame.from_ndarray(audio.samples.reshape(1, -1).astype(np.float32), format="flt", layout="mono")
    frame.sample_rate = audio.rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    chunks = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return Audio(np.concatenate(chunks).astype(np.float32), rate, audio.container)
