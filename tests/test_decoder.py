"""The fast decoder (model/decoder.py) against the model's own forward: same logits for prefill and
every decode step, rows that join and leave, per-row adapters, int8 weights within their rounding."""

import pytest
import torch
from peft import LoraConfig, get_peft_model

from agentmill.model.decoder import Decoder, quantize_int8, unsupported
from serve_util import chatty_tiny

PAD = 0


def three_adapters(tokenizer):
    torch.manual_seed(0)
    model = get_peft_model(chatty_tiny(tokenizer), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                              init_lora_weights=False), adapter_name="one")
    model.add_adapter("two", LoraConfig(r=2, lora_alpha=6, target_modules="all-linear", init_lora_weights=False))
    model.add_adapter("six", LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    return model.eval()


def reference(model, prompt: list[int], adapter: str, new: list[int]) -> list[torch.Tensor]:
    """The model's own next-token logits after the prompt and after each of `new`, row alone."""
    kwargs = {}
    if getattr(model, "peft_config", None):
        model.base_model.enable_adapter_layers()
        kwargs["adapter_names"] = [adapter]
    ids = torch.tensor([prompt + new])
    with torch.no_grad():
        logits = model(input_ids=ids, **kwargs).logits[0].float()
    return [logits[len(prompt) - 1 + i] for i in range(len(new) + 1)]


def test_prefill_and_steps_match_the_model_row_by_row(tokenizer):
    model = three_adapters(tokenizer)
    gen = torch.Generator().manual_seed(3)
    prompts = [torch.randint(1, len(tokenizer), (n,), generator=gen).tolist() for n in (5, 11, 3, 8)]
    adapters = ["one", "__base__", "six", "two"]
    decoder = Decoder(model, PAD)
    got = [[row] for row in decoder.join(prompts[:2], adapters[:2])]  # per row: its logits, in order
    fed: list[list[int]] = [[], []]

    def step():
        tokens = [row[-1].argmax().item() for row in got]
        for row, token in zip(fed, tokens):
            row.append(token)
        for row, logits in zip(got, decoder.step(tokens)):
            row.append(logits)

    step()
    got += [[row] for row in decoder.join(prompts[2:], adapters[2:])]  # two rows join a running batch
    fed += [[], []]
    for _ in range(4):
        step()
    for row in range(4):
        want = reference(model, prompts[row], adapters[row], fed[row])
        assert len(got[row]) == len(want) == len(fed[row]) + 1
        for g, w in zip(got[row], want):
            assert torch.allclose(g, w, atol=1e-4), (row, (g - w).abs().max())
    # the adapters really differ per row, else the test could not fail
    assert not torch.allclose(reference(model, prompts[0], "one", [])[0], reference(model, prompts[0], "two", [])[0],
                              atol=1e-3)


def test_keep_drops_rows_and_trims_their_padding(tokenizer):
    model = three_adapters(tokenizer)
    gen = torch.Generator().manual_seed(4)
    prompts = [torch.randint(1, len(tokenizer), (n,), generator=gen).tolist() for n in (12, 4, 6)]
    decoder = Decoder(model, PAD)
    logits = decoder.join(prompts, ["two", "one", "__base__"])
    tokens = logits.argmax(-1).tolist()
    decoder.step(tokens)
    decoder.keep([2, 1])  # the longest prompt leaves: its padding columns go
    assert decoder.width == 6 + 1 and decoder.adapters == ["__base__", "one"]
    last = decoder.step([7, 9])
    for row, (orig, token) in enumerate(((2, 7), (1, 9))):
        want = reference(model, prompts[orig], decoder.adapters[row], [tokens[orig], token])[-1]
        assert torch.allclose(last[row], want, atol=1e-4)


def test_the_cache_grows_past_its_capacity(tokenizer, monkeypatch):
    import agentmill.model.decoder as decoder_module

    monkeypatch.setattr(decoder_module, "CAPACITY_STEP", 2)
    model = chatty_tiny(tokenizer)
    prompt = [5, 6, 7]
    decoder = Decoder(model, PAD)
    decoder.join([prompt], ["__base__"])
    fed = []
    for t in (11, 12, 13, 14, 15):
        fed.append(t)
        got = decoder.step([t])[0]
    assert torch.allclose(got, reference(model, prompt, "__base__", fed)[-1], atol=1e-4)


def test_int8_weights_stay_within_their_rounding(tokenizer):
    model = chatty_tiny(tokenizer).to(torch.bfloat16)
    w = model.model.layers[0].mlp.up_proj.weight
    q, scale = quantize_int8(w, torch.bfloat16)
    assert q.dtype == torch.int8 and (q.float() * scale.float()[:, None] - w.float()).abs().max() <= \
        scale.float().max() / 2 + 1e-3
    prompt = torch.randint(1, len(tokenizer), (9,), generator=torch.Generator().manual_seed(5)).tolist()
    logits = {}
    for int8 in (False, True):
        decoder = Decoder(model, PAD, int8=int8)
        logits[int8] = (decoder.join([prompt], ["__base__"])[0], decoder.step([7])[0])
    for dense, int8 in zip(logits[False], logits[True]):
        assert not torch.equal(dense, int8)  # it really ran on other weights
        assert torch.nn.functional.cosine_similarity(dense, int8, dim=0) > 0.99


def test_refuses_what_it_cannot_run(tokenizer):
    model = get_peft_model(chatty_tiny(tokenizer), LoraConfig(r=2, target_modules=["q_proj"], use_dora=True))
    assert "DoRA" in unsupported(model)
    with pytest.raises(ValueError, match="cannot run"):
        Decoder(model, PAD)
    saver = get_peft_model(chatty_tiny(tokenizer), LoraConfig(r=2, target_modules=["q_proj"],
                                                              modules_to_save=["input_layernorm"]))
    assert "modules_to_save" in unsupported(saver)
    assert unsupported(chatty_tiny(tokenizer)) is None


def test_generate_with_the_decoder_gives_the_model_generate_answers(tokenizer):
    from agentmill.model.decoder import DecoderWeights
    from agentmill.model.generate import generate, generate_stream

    model = three_adapters(tokenizer)
    weights = DecoderWeights(model)
    chats = [[{"role": "user", "content": text}] for text in ("Hi there", "What is 2+2? Say it in words.")]
    for adapter in ("six", None):  # an adapter, then the backbone (adapter layers disabled)
        if adapter:
            model.set_adapter(adapter)
            model.base_model.enable_adapter_layers()
        else:
            model.base_model.disable_adapter_layers()
        for chat in chats:
            want = generate(model, tokenizer, chat, max_new_tokens=12)
            assert generate(model, tokenizer, chat, max_new_tokens=12, decoder=weights) == want
            assert "".join(generate_stream(model, tokenizer, chat, max_new_tokens=12, decoder=weights)) == want
    sampled = [generate(model, tokenizer, chats[0], max_new_tokens=12, temperature=1.0, seed=s, decoder=weights)
               for s in (1, 1, 2)]
    assert sampled[0] == sampled[1] != sampled[2]


def test_int8_answers_do_not_depend_on_how_many_tokens_share_a_product(tokenizer):
    """Wide products run the dense kernel on the dequantized int8 weights: the same model as the
    int8 kernel of decode steps, so a row's logits do not change with its batch (fp32: tight)."""
    model = chatty_tiny(tokenizer)
    prompt = torch.randint(1, len(tokenizer), (9,), generator=torch.Generator().manual_seed(6)).tolist()
    int8 = Decoder(model, PAD, int8=True)
    wide = int8.join([prompt] * 6, ["__base__"] * 6)[0]  # 54-token products: dense kernel
    narrow = Decoder(int8.weights, PAD)
    logits = narrow.join([prompt[:1]], ["__base__"])  # one token at a time: the int8 kernel
    for token in prompt[1:]:
        logits = narrow.step([token])
    dense = Decoder(model, PAD).join([prompt], ["__base__"])[0]
    assert torch.allclose(wide, logits[0], atol=1e-4)
    assert (wide - dense).abs().max() > 10 * (wide - logits[0]).abs().max()


def test_generate_batch_with_the_decoder_gives_the_model_generate_answers(tokenizer):
    from agentmill.model.decoder import DecoderWeights
    from agentmill.model.generate import generate_batch

    model = three_adapters(tokenizer)
    model.set_adapter("six")  # its answers differ per prompt (the tiny random model's others barely do)
    chats = [[{"role": "user", "content": text}] for text in ("Hi", "What is 2+2?", "Tell me a story please", "ok")]
    want = generate_batch(model, tokenizer, chats, max_new_tokens=10, batch_size=3)
    got = generate_batch(model, tokenizer, chats, max_new_tokens=10, batch_size=3, decoder=DecoderWeights(model))
    assert got == want and len(set(want)) > 1
