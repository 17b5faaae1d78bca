"""Media fixtures made at test time: espeak-ng speech, PyAV re-encodings into the containers
browsers and phones record (WebM/Opus, Ogg/Opus, M4A/AAC, MP3, FLAC), and Pillow images of
an invoice, clean or photo-like (rotated, blurred, noisy, JPEG)."""

from __future__ import annotations

import io
import random
import subprocess

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from agentmill.media.audio import transcode

INVOICE_LINES = ["ACME SUPPLIES LTD", "Invoice number: 1042", "Date: 2026-11-30", "Office chairs x4     $920.00",
                 "Desks x2             $314.56", "Total due: $1,234.56"]

# container, codec, rate of each recording format (what MediaRecorder / phones write)
CONTAINERS = {"webm": ("webm", "libopus", 48_000), "ogg": ("ogg", "libopus", 48_000), "m4a": ("mp4", "aac", 44_100),
              "mp3": ("mp3", "libmp3lame", 44_100), "flac": ("flac", "flac", 44_100), "wav": ("wav", "pcm_s16le", 16_000)}


def speak(text: str, voice: str = "en-gb", wpm: int = 150) -> bytes:
    """A WAV of espeak-ng saying `text`."""
    return subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "--stdout", text], check=True,
                          capture_output=True).stdout


def reencode(wav: bytes, kind: str) -> bytes:
    """`wav` re-encoded into the container and codec of `kind` (a key of CONTAINERS)."""
    return transcode(wav, *CONTAINERS[kind])


def tone(seconds: float, rate: int = 16_000) -> bytes:
    """A WAV of a 440 Hz tone (no speech)."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    buf = io.BytesIO()
    with av.open(buf, "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in list(stream.encode(frame)) + list(stream.encode(None)):
            out.mux(packet)
    return buf.getvalue()


def invoice(lines=INVOICE_LINES, size=(900, 520)) -> Image.Image:
    picture = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=30)
    for i, line in enumerate(lines):
        draw.text((50, 40 + i * 75), line, fill="black", font=font)
    return picture


def photo_like(picture: Image.Image, seed: int = 0, angle: float = 1.5) -> bytes:
    """`picture` as a phone might photograph it: slightly rotated, blurred, noisy, JPEG."""
    rng = random.Random(seed)
    tilted = picture.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(235, 235, 230))
    blurred = tilted.filter(ImageFilter.GaussianBlur(0.8))
    pixels = np.asarray(blurred).astype(np.int16)
    noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, 8, pixels.shape).astype(np.int16)
    noisy = Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))
    return encode(noisy, "JPEG", quality=75)


def encode(picture: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    picture.save(buf, fmt, **options)
    return buf.getvalue()
