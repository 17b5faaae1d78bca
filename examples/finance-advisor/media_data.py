"""Images and recordings for the finance-advisor example (called by generate.py; or run alone).

- Invoices and bank statements drawn with Pillow, then made photo-like (slight rotation, blur,
  noise, JPEG), in media/images/.
- Customer questions spoken with espeak-ng (several voices and speeds), in media/speech/, as
  Ogg/Opus, MP3 and M4A (what browsers and phones send). Account numbers are said the way people
  say them ("account 10311"); the call still names the account as written ("NW-10311").
- Customer-service conversations that answer from them, appended to data/cs.jsonl and
  data/cs_heldout.jsonl (the held-out ones use files of their own): the total due on an invoice,
  a statement's closing balance, whether an account can pay an invoice (account_lookup), and
  account and policy questions asked aloud.
- media/truth.jsonl: what each file really says, for `agentmill eval` (OCR character error rate,
  speech word error rate; `media.eval_data` in the recipe).

libopus's output depends on the CPU's vector instructions: run on another kind of CPU than the one
that made them, this rewrites the .ogg files with a few dozen different bytes each (the images,
MP3 and M4A files come out identical). Keep the committed ones unless the audio itself changed.
"""

from __future__ import annotations

import io
import json
import random
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
MEDIA = HERE / "media"
SEED = 42

VENDORS = ["Acme Office Supply", "Bright Spark Electric", "Cedar Lane Plumbing", "Delta Print Shop",
           "Evergreen Landscaping", "Fairview Auto Repair", "Granite IT Services", "Harbor Catering",
           "Iris Cleaning Co.", "Juniper Dental", "Keystone Roofing", "Lumen Web Design"]
ITEMS = ["Consulting hours", "Replacement parts", "Service call", "Monthly subscription", "Materials",
         "Labor", "Delivery", "Printing", "Maintenance plan", "Installation", "Inspection", "Supplies"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
# what a customer types with a picture (the LAST one of each list is for held-out records only)
INVOICE_QUESTIONS = ["What is the total due on this invoice?", "How much do I owe on this bill?",
                     "What's the amount due here?", "Can you tell me the total of this invoice?",
                     "How much is this invoice for?"]
STATEMENT_QUESTIONS = ["What was my closing balance on this statement?", "What balance does this statement end with?",
                       "How much was in the account at the end of this statement?", "What is the ending balance here?"]
PAY_QUESTIONS = ["Can I pay this invoice from account {id}?", "Is there enough in account {id} to pay this?",
                 "Can account {id} cover this bill?", "Do I have enough in account {id} to pay this invoice?"]
ACCOUNT_QUESTIONS = ["What's the balance on account {id}?", "Can you check account {id} for me?",
                     "Is my account {id} active?", "Please look up account {id}.",
                     "How much money is in account {id}?"]
VOICES = [("en-gb", []), ("en-us", ["-g", "3"]), ("en-gb-x-rp", ["-g", "3"])]
SPEEDS = [140, 150, 160]
SPOKEN_FORMATS = ["ogg", "ogg", "mp3", "m4a"]


def money(x: float) -> str:
    return f"${x:,.2f}"


# ---------------------------------------------------------------- pictures


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def invoice_lines(rng: random.Random, number: int) -> tuple[list[str], dict]:
    vendor = rng.choice(VENDORS)
    month, day = rng.randrange(12), rng.randrange(1, 28)
    items = [(item, rng.randrange(1500, 90000) / 100) for item in rng.sample(ITEMS, rng.randrange(2, 4))]
    total = round(sum(a for _, a in items), 2)
    due = f"{MONTHS[(month + 1) % 12]} {day}, 2026"
    lines = [vendor.upper(), f"Invoice number: {number}", f"Date: {MONTHS[month]} {day}, 2026"]
    lines += [f"{item}: {money(amount)}" for item, amount in items]
    lines += [f"Total due: {money(total)}", f"Due by: {due}"]
    return lines, {"vendor": vendor, "number": number, "total": total, "due": due}


def statement_lines(rng: random.Random, account: dict) -> tuple[list[str], dict]:
    opening = rng.randrange(20000, 900000) / 100
    deposits = rng.randrange(10000, 400000) / 100
    withdrawals = rng.randrange(10000, int(opening * 100 + deposits * 100) - 1000) / 100
    closing = round(opening + deposits - withdrawals, 2)
    month = rng.randrange(12)
    lines = ["NORTHWIND BANK", "Account statement", f"Account: {account['account_id']}",
             f"Period: {MONTHS[month]} 2026", f"Opening balance: {money(opening)}",
             f"Deposits: {money(deposits)}", f"Withdrawals: {money(withdrawals)}", f"Closing balance: {money(closing)}"]
    return lines, {"account_id": account["account_id"], "closing": closing}


def draw(lines: list[str]):
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (820, 90 + 58 * len(lines)), "white")
    pen = ImageDraw.Draw(picture)
    for i, line in enumerate(lines):
        pen.text((48, 40 + i * 58), line, fill="black", font=_font(34 if i == 0 else 28))
    return picture


def photo_like(picture, rng: random.Random) -> bytes:
    """Slightly rotated, blurred, noisy and JPEG-compressed, as a phone photo of paper is (grey)."""
    import numpy as np
    from PIL import Image, ImageFilter

    tilted = picture.rotate(rng.uniform(-2.0, 2.0), resample=Image.Resampling.BICUBIC, expand=True,
                            fillcolor=(228, 226, 220))
    blurred = tilted.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 0.9)))
    pixels = np.asarray(blurred).astype(np.int16)
    noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, rng.uniform(3, 7), pixels.shape)
    noisy = Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    noisy.convert("L").save(buffer, "JPEG", quality=rng.choice([60, 65, 70]))  # paper: grey is enough
    return buffer.getvalue()


# ---------------------------------------------------------------- speech


def spoken(text: str, rng: random.Random, fmt: str) -> tuple[bytes, dict]:
    """`text` said by espeak-ng in one of VOICES at one of SPEEDS, encoded as `fmt`."""
    from agentmill.media.audio import transcode

    voice, extra = rng.choice(VOICES)
    wpm = rng.choice(SPEEDS)
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), *extra, "--stdout", text], check=True,
                         capture_output=True).stdout
    container, codec, rate = {"ogg": ("ogg", "libopus", 48000), "mp3": ("mp3", "libmp3lame", 22050),
                              "m4a": ("mp4", "aac", 22050)}[fmt]
    encoded = transcode(wav, container, codec, rate, bit_rate=24000 if codec == "libopus" else None)
    return encoded, {"voice": voice, "wpm": wpm, "format": fmt}


def said(question: str) -> str:
    """A question as a customer says it: "account NW-10311" -> "account 10311"."""
    return question.replace("NW-", "")


# ---------------------------------------------------------------- conversations


class Builder:
    def __init__(self, tools, accounts: list[dict], part: str):
        self.tools, self.part = tools, part
        self.rng = random.Random(f"{SEED}-media-{part}")
        self.accounts = [a for a in accounts if a["type"] in ("checking", "savings") and a["status"] == "active"]
        self.all_accounts = accounts
        self.truth: list[dict] = []
        self.count = {"image": 0, "audio": 0}

    def questions(self, options: list[str]) -> list[str]:
        return options[:-1] if self.part == "train" else options[-1:]

    def _save(self, kind: str, data: bytes, ext: str, text: str, **facts) -> str:
        self.count[kind] += 1
        folder = "images" if kind == "image" else "speech"
        name = f"{folder}/{self.part}-{self.count[kind]:03d}.{ext}"
        (MEDIA / name).write_bytes(data)
        self.truth.append({"file": name, "kind": kind, "text": text, "split": self.part, **facts})
        return f"../media/{name}"  # relative to the data file

    def image(self, lines: list[str]) -> dict:
        path = self._save("image", photo_like(draw(lines), self.rng), "jpg", "\n".join(lines))
        return {"type": "image_url", "image_url": {"url": path}}

    def audio(self, text: str) -> dict:
        fmt = self.rng.choice(SPOKEN_FORMATS)
        data, facts = spoken(text, self.rng, fmt)
        path = self._save("audio", data, fmt, text, **facts)
        self.heard = heard(data, path)
        return {"type": "input_audio", "input_audio": {"path": path, "format": fmt}}

    def invoice(self) -> tuple[dict, dict]:
        lines, facts = invoice_lines(self.rng, self.rng.randrange(1000, 9999))
        return self.image(lines), facts

    def invoice_total(self) -> dict:
        picture, f = self.invoice()
        answer = f"Invoice {f['number']} from {f['vendor']}: the total due is {usd(f['total'])}, by {f['due']}."
        return _chat([{"type": "text", "text": self.rng.choice(self.questions(INVOICE_QUESTIONS))}, picture], answer)

    def statement_closing(self) -> dict:
        lines, f = statement_lines(self.rng, self.rng.choice(self.all_accounts))
        answer = f"Your statement for account {f['account_id']} ends with a closing balance of {usd(f['closing'])}."
        return _chat([{"type": "text", "text": self.rng.choice(self.questions(STATEMENT_QUESTIONS))},
                      self.image(lines)], answer)

    def pay_from_account(self, aloud: bool) -> dict:
        picture, f = self.invoice()
        account = self.rng.choice(self.accounts)
        question = self.rng.choice(self.questions(PAY_QUESTIONS)).format(id=account["account_id"])
        asked = self.audio(said(question)) if aloud else {"type": "text", "text": question}
        messages = [{"role": "user", "content": [asked, picture]}]
        found = _used(self.tools, messages, "account_lookup", {"account_id": account["account_id"]})
        balance, total = found["balance"], f["total"]
        if balance >= total:
            answer = (f"Yes: account {account['account_id']} has {usd(balance)}, enough for the {usd(total)} due "
                      f"on invoice {f['number']}.")
        else:
            answer = (f"No: account {account['account_id']} has {usd(balance)}, less than the {usd(total)} due "
                      f"on invoice {f['number']}.")
        messages.append({"role": "assistant", "content": answer})
        return {"messages": messages}

    def account_aloud(self) -> dict:
        import tool_dialogues

        messages: list = []
        tool_dialogues.account_turn(self.rng, self.tools, messages, self.all_accounts)
        messages[0]["content"] = [self.audio(said(messages[0]["content"]))]
        return {"messages": messages}

    def policy_aloud(self, pairs: list[tuple[str, str]]) -> dict:
        import tool_dialogues

        question, answer = self.rng.choice(pairs)
        part = self.audio(question)
        messages: list = []
        # the search query is the customer's message verbatim: here, what speech recognition heard
        tool_dialogues.knowledge_turn(self.tools, messages, self.heard, answer)
        messages[0]["content"] = [part]
        return {"messages": messages}


def heard(data: bytes, name: str) -> str:
    """What the recipe's speech engine hears in `data` (and the data cache keeps for training)."""
    import yaml

    from agentmill.config import MediaSettings
    from agentmill.media import MediaBackends
    from agentmill.media.cache import cached_read

    media = yaml.safe_load((HERE / "recipe.yaml").read_text(encoding="utf-8")).get("media") or {}
    settings = MediaSettings(speech_prompt=media.get("speech_prompt"))
    return cached_read(MediaBackends(settings), data, "audio", name)["text"]


def usd(x) -> str:
    import tool_dialogues

    return tool_dialogues.usd(x)


def _used(tools, messages, name, arguments):
    import tool_dialogues

    return tool_dialogues.used(tools, messages, name, arguments)


def _chat(parts: list, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": answer}]}


# how many of each kind: (train, held-out)
# (a first version with 36 invoice-total and 12 + 12 pay records: the held-out pay questions were all
# answered with the invoice's total instead of a lookup, and spoken policy questions were looked up
# as accounts; measured on one quick-profile run, media answers 0.59)
COUNTS = {"invoice_total": (28, 12), "statement_closing": (12, 6), "pay_typed": (24, 5), "pay_aloud": (16, 5),
          "account_aloud": (20, 8), "policy_aloud": (24, 8)}


def records(tools, accounts, faq_train, faq_heldout) -> tuple[list[dict], list[dict], list[dict]]:
    out, truth = {}, []
    for part, faq in (("train", faq_train), ("heldout", faq_heldout)):
        b = Builder(tools, accounts, part)
        index = 0 if part == "train" else 1
        made = []
        for _ in range(COUNTS["invoice_total"][index]):
            made.append(b.invoice_total())
        for _ in range(COUNTS["statement_closing"][index]):
            made.append(b.statement_closing())
        for _ in range(COUNTS["pay_typed"][index]):
            made.append(b.pay_from_account(aloud=False))
        for _ in range(COUNTS["pay_aloud"][index]):
            made.append(b.pay_from_account(aloud=True))
        for _ in range(COUNTS["account_aloud"][index]):
            made.append(b.account_aloud())
        for _ in range(COUNTS["policy_aloud"][index]):
            made.append(b.policy_aloud(faq))
        random.Random(f"{SEED}-media-order-{part}").shuffle(made)
        out[part] = made
        truth += b.truth
    return out["train"], out["heldout"], truth


def is_media(record: dict) -> bool:
    return any(isinstance(m.get("content"), list) for m in record.get("messages", []))


def write(tools, accounts, faq_train, faq_heldout, data: Path) -> None:
    """Draw and speak everything again, and replace the media records of cs.jsonl / cs_heldout.jsonl."""
    for folder in ("images", "speech"):
        (MEDIA / folder).mkdir(parents=True, exist_ok=True)
        for old in (MEDIA / folder).iterdir():
            old.unlink()
    train, heldout, truth = records(tools, accounts, faq_train, faq_heldout)
    for name, extra in (("cs.jsonl", train), ("cs_heldout.jsonl", heldout)):
        path = data / name
        kept = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        kept = [r for r in kept if not is_media(r)]
        lines = [json.dumps(r, ensure_ascii=False) for r in kept + extra]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (MEDIA / "truth.jsonl").write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in truth),
                                       encoding="utf-8")


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(HERE))
    import generate
    import tool_dialogues

    tools = tool_dialogues.Tools(generate.KNOWLEDGE, generate.BANK_SQL)
    write(tools, tool_dialogues.accounts(generate.BANK_SQL), generate.faq_pairs("train"), generate.faq_pairs("heldout"),
          generate.DATA)
    sizes = sum(p.stat().st_size for p in MEDIA.rglob("*") if p.is_file())
    print(f"media/: {sum(1 for p in MEDIA.rglob('*') if p.is_file())} files, {sizes:,} bytes")
