"""Image to text: Tesseract OCR by default; a local vision-language model as the alternative.

Both return `ImageText`: the text and the facts a reader (and the model) needs to trust it —
the picture's size, whether any text was found, and OCR's mean word confidence.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from agentmill.media.errors import MediaError, MissingEngine


@dataclass
class ImageText:
    text: str
    width: int
    height: int
    engine: str  # "OCR" (Tesseract) or "vision model"
    confidence: float | None = None  # mean word confidence 0-100 (OCR only)

    @property
    def found_text(self) -> bool:
        return bool(self.text.strip())

    def facts(self) -> dict:
        return {"width": self.width, "height": self.height, "found_text": self.found_text,
                "mean_confidence": None if self.confidence is None else round(self.confidence, 1)}


class TesseractOCR:
    """Tesseract through pytesseract (Debian: tesseract-ocr tesseract-ocr-eng)."""

    engine = "OCR"

    def __init__(self, lang: str = "eng", psm: int = 3):
        self.lang, self.psm = lang, psm

    def _tesseract(self):
        try:
            import pytesseract
        except ImportError:
            raise MissingEngine("pytesseract (OCR)", "pip install pytesseract") from None
        if shutil.which(pytesseract.pytesseract.tesseract_cmd) is None:
            raise MissingEngine("Tesseract OCR", "apt-get install tesseract-ocr tesseract-ocr-eng "
                                                 "(or set media.image: none)")
        # Tesseract's OpenMP threads make one page slower, not faster: 1.04 -> 0.19 s per 820x560
        # invoice with one thread (2-core Xeon). pytesseract starts it with this module's `environ`.
        if pytesseract.pytesseract.environ.get("OMP_THREAD_LIMIT") is None:
            pytesseract.pytesseract.environ = {**os.environ, "OMP_THREAD_LIMIT": "1"}
        return pytesseract

    def read(self, picture) -> ImageText:
        pytesseract = self._tesseract()
        gray = picture.convert("L")
        if min(gray.size) < 1000:  # Tesseract reads small print far better at ~300 dpi: upscale small images
            from PIL import Image

            scale = min(3.0, 1000 / min(gray.size))
            if scale > 1.2:
                gray = gray.resize((round(gray.width * scale), round(gray.height * scale)), Image.Resampling.LANCZOS)
        config = f"--psm {self.psm}"
        try:
            data = pytesseract.image_to_data(gray, lang=self.lang, config=config, output_type=pytesseract.Output.DICT)
        except pytesseract.TesseractError as err:
            raise MediaError(f"OCR failed: {err.message.strip() or err}") from None
        text = _lines(data)
        confidences = [float(c) for c, w in zip(data["conf"], data["text"]) if w.strip() and float(c) >= 0]
        mean = sum(confidences) / len(confidences) if confidences else None
        return ImageText(text, picture.width, picture.height, self.engine, mean)


def _lines(data: dict) -> str:
    """image_to_data's words joined back into lines (a blank line between blocks)."""
    lines, key_of_line = [], None
    for word, block, par, line in zip(data["text"], data["block_num"], data["par_num"], data["line_num"]):
        if not word.strip():
            continue
        key = (block, par, line)
        if key != key_of_line:
            if lines and key_of_line and key_of_line[0] != block:
                lines.append("")
            lines.append(word)
            key_of_line = key
        else:
            lines[-1] += " " + word
    return "\n".join(lines).strip()


class VisionModel:
    """A vision-language model from a local folder (transformers `image-text-to-text`), asked to
    transcribe the image. Bigger and slower than OCR; for users who have one on disk."""

    engine = "vision model"
    PROMPT = "Transcribe all text in this image exactly, line by line. If there is no text, describe the image."

    def __init__(self, model: str | Path, max_new_tokens: int = 256):
        self.path = Path(model).expanduser()
        self.max_new_tokens = max_new_tokens
        self._model = self._processor = None

    def _load(self):
        if self._model is None:
            if not self.path.is_dir():
                raise MediaError(f"{self.path}: the vision model folder does not exist (media.image_model)")
            from transformers import AutoModelForImageTextToText, AutoProcessor

            self._processor = AutoProcessor.from_pretrained(self.path)
            self._model = AutoModelForImageTextToText.from_pretrained(self.path).eval()
        return self._model, self._processor

    def read(self, picture) -> ImageText:
        import torch

        model, processor = self._load()
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": self.PROMPT}]}]
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = processor(images=[picture], text=prompt, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new = out[0, inputs["input_ids"].shape[1]:]
        text = processor.decode(new, skip_special_tokens=True).strip()
        return ImageText(text, picture.width, picture.height, self.engine)
