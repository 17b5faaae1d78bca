"""Speech and images as text the model reads: decoding, speech to text, OCR, and speech out.

One concept per module:
- `audio`: any audio file (by content, not name) → 16 kHz mono samples; samples → wav/mp3/opus/flac/pcm
- `image`: any image file (by content) → an upright RGB picture, within a pixel limit
- `speech`: `SpeechToText` (faster-whisper; the embedded Whisper tiny.en by default)
- `ocr`: `ImageToText` (Tesseract by default; a local vision-language model as the alternative)
- `voice`: `TextToSpeech` (espeak-ng)
- `settings`: `MediaSettings` (the recipe's `media:` and the server's) and `MediaBackends`
- `parts`: OpenAI content parts (`image_url`, `input_audio`, `file`) → labelled text parts
- `store`: the original files, content-addressed under AGENTMILL_HOME

Engines are imported only when first used, so a text-only user needs none of them; a missing
one is a `MissingEngine` error that names what to install.
"""

from agentmill.media.errors import MediaError, MissingEngine
from agentmill.media.settings import MediaBackends, MediaSettings

__all__ = ["MediaBackends", "MediaError", "MediaSettings", "MissingEngine"]
