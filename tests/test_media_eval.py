"""eval/media.py: speech WER with numbers normalised, OCR CER, the media evaluation set, and the
share of held-out media questions answered right."""

import json

import pytest

import agentmill.model.generate as generate_mod
from agentmill.data.formats import Record
from agentmill.eval.media import (amounts, evaluate_media_answers, evaluate_media_files, normalise_speech, ocr_cer,
                                  speech_wer)
from agentmill.media import MediaBackends
from media_util import encode, invoice, speak


def test_numbers_are_normalised_before_words_are_compared():
    assert normalise_speech("Can I pay four hundred and twenty dollars from account 4,821?") == \
        "can i pay $420 from account 4821"
    assert normalise_speech("The total is $1,234.56.") == "the total is $1234.56"
    assert normalise_speech("What's on account ten thousand nine hundred thirteen?") == "what is on account 10913"
    assert speech_wer(["Can I pay $420 from account 4821?"], ["can I pay four hundred and twenty dollars from account 4821"]) == 0
    assert speech_wer(["what is my balance"], ["what is my balloon"]) == pytest.approx(0.25)
    assert speech_wer(["one two three"], [""]) == 1.0


def test_ocr_cer_folds_layout_only():
    assert ocr_cer(["Total due:\n$1,234.56"], ["Total due: $1,234.56"]) == 0
    assert ocr_cer(["Total due: $1,234.56"], ["Total due: $1,234.55"]) == pytest.approx(1 / 20)


def test_amounts():
    assert amounts("Account NW-1 has $4102.66, enough for the $1,234.56 due on invoice 1042.") == [4102.66, 1234.56]


def test_the_media_evaluation_set(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTMILL_HOME", str(tmp_path / "home"))
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "inv.png").write_bytes(encode(invoice(), "PNG"))
    said = "What is the balance of my savings account?"
    (tmp_path / "media" / "q.wav").write_bytes(speak(said))
    truth = tmp_path / "truth.jsonl"
    truth.write_text(json.dumps({"file": "media/inv.png", "kind": "image", "text": "\n".join([
        "ACME SUPPLIES LTD", "Invoice number: 1042", "Date: 2026-11-30", "Office chairs x4 $920.00",
        "Desks x2 $314.56", "Total due: $1,234.56"])}) + "\n" +
        json.dumps({"file": "media/q.wav", "kind": "audio", "text": said}) + "\n")
    result = evaluate_media_files(truth, MediaBackends())
    assert result == {"ocr_cer": 0.0, "ocr_files": 1.0, "speech_wer": 0.0, "speech_files": 1.0}
    truth.write_text('{"file": "media/q.wav", "kind": "video", "text": "x"}\n')
    from agentmill.errors import AgentmillError

    with pytest.raises(AgentmillError, match=r"truth.jsonl:1: needs file, kind \(image or audio\) and text"):
        evaluate_media_files(truth, MediaBackends())


def _call(account):
    return {"type": "function", "function": {"name": "account_lookup", "arguments": {"account_id": account}}}


def test_media_answers_are_scored_on_calls_and_amounts(monkeypatch, tokenizer):
    invoice_q = Record("f:1", messages=[
        {"role": "user", "content": "What is due?\n[image a.jpg, OCR] Total due: $975.56"},
        {"role": "assistant", "content": "Invoice 8864: the total due is $975.56."}], media=True)
    pay_q = Record("f:2", messages=[
        {"role": "user", "content": "[audio, transcript] Can I pay this from account 11341?"},
        {"role": "assistant", "content": None, "tool_calls": [_call("NW-11341")]},
        {"role": "tool", "name": "account_lookup", "content": '{"balance": 4102.66}'},
        {"role": "assistant", "content": "Yes: account NW-11341 has $4102.66, enough for the $975.56 due."}], media=True)
    plain = Record("f:3", messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "$1.00"}])
    scripts = iter([
        ["The total due is $975.56.", '<tool_call>\n{"name": "account_lookup", "arguments": {"account_id": "NW-11341"}}\n</tool_call>'],
        ["Yes, it has $4102.66."],  # misses the $975.56 due: wrong
    ])
    monkeypatch.setattr(generate_mod, "generate_batch", lambda *a, **k: next(scripts))
    result = evaluate_media_answers(None, tokenizer, [invoice_q, pay_q, plain])
    assert result == {"media_answer_accuracy": 0.5, "media_records": 2.0}
    assert evaluate_media_answers(None, tokenizer, [plain]) == {}
