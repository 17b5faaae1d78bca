"""Text to speech: espeak-ng (Debian `espeak-ng`), the voice of the page's "read aloud" and of
`/v1/audio/speech`. OpenAI's voice names map to espeak-ng voices; an espeak-ng voice name
(e.g. "en-gb", "en-us+f3") is taken as it is."""

from __future__ import annotations

import shutil
import subprocess

from agentmill.media.audio import Audio, decode_audio
from agentmill.media.errors import MediaError, MissingEngine

WORDS_PER_MINUTE = 160  # espeak-ng at speed 1.0
VOICES = {"alloy": "en-gb", "ash": "en-us+m3", "ballad": "en-gb+m2", "coral": "en-us+f2", "echo": "en-us+m7",
          "fable": "en-gb", "nova": "en-us+f3", "onyx": "en-us+m1", "sage": "en-gb+f2", "shimmer": "en-us+f4",
          "verse": "en-us+m4", "marin": "en-us+f1", "cedar": "en-us+m2"}
MAX_CHARS = 4096  # OpenAI's limit on `input`


class EspeakVoice:
    def __init__(self, binary: str = "espeak-ng"):
        self.binary = binary

    def speak(self, text: str, voice: str = "alloy", speed: float = 1.0) -> Audio:
        if not text.strip():
            raise MediaError("input: there is no text to speak", param="input")
        if len(text) > MAX_CHARS:
            raise MediaError(f"input: {len(text)} characters, over the limit of {MAX_CHARS}", param="input")
        if not 0.25 <= speed <= 4.0:
            raise MediaError(f"speed is {speed}: it must be between 0.25 and 4.0", param="speed")
        exe = shutil.which(self.binary)
        if exe is None:
            raise MissingEngine("espeak-ng (text to speech)", "apt-get install espeak-ng (or set media.voice: none)")
        name = VOICES.get(voice, voice)
        if not all(c.isalnum() or c in "-+_" for c in name):
            raise MediaError(f"voice {voice!r} is not a known voice ({', '.join(VOICES)})", param="voice")
        wpm = max(80, min(450, round(WORDS_PER_MINUTE * speed)))
        try:
            done = subprocess.run([exe, "-v", name, "-s", str(wpm), "--stdout", "--", text], capture_output=True,
                                  timeout=120)
        except subprocess.TimeoutExpired:
            raise MediaError("speech synthesis took too long", status=500, code="synthesis_failed") from None
        if done.returncode != 0 or not done.stdout:
            detail = done.stderr.decode(errors="replace").strip()
            raise MediaError(f"voice {voice!r}: espeak-ng could not speak with it ({detail or 'no audio'})",
                             param="voice")
        return decode_audio(done.stdout, rate=22_050, name="espeak-ng output")
