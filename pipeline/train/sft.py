"""Supervised fine-tuning examples for generative tasks: prompt + answer token ids whose labels cover
exactly the answer (prompt tokens get -100, so the loss is on answer tokens only).

With `chat=True` the tokenizer's chat template renders a user turn (the prompt) and an assistant turn
(the answer), the same way generation renders the user turn with `add_generation_prompt`. The mask is
set from character offsets: every token that starts at or after the end of the rendered prompt is
trained on. A template that does not render the answer intact after the generation prompt is refused:
R1-style templates strip everything before `</think>` from assistant turns, which would make reasoning
silently vanish from the training targets.
"""

from pipeline.errors import UserError

IGNORE = -100  # the label transformers' causal-LM loss skips


def render(tokenizer, prompt: str, answer: str | None, chat: bool) -> tuple[str, str]:
    """(text of the prompt as the model sees it before answering, full text with the answer)."""
    if not chat:
        return prompt, prompt if answer is None else prompt + answer + (tokenizer.eos_token or "")
    if getattr(tokenizer, "chat_template", None) is None:
        raise UserError("chat: true, but the tokenizer has no chat template", "set chat: false for a base model")
    head = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
    if answer is None:
        return head, head
    turns = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    full = tokenizer.apply_chat_template(turns, tokenize=False)
    if not full.startswith(head) or answer.strip() not in full[len(head):]:
        raise UserError("the tokenizer's chat template does not keep the assistant's answer intact after the "
                        "generation prompt (e.g. it strips reasoning before </think>): training targets would "
                        "lose part of the answer",
                        "use a template that renders the assistant turn verbatim, or set chat: false")
    return head, full


def end_of_turn_ids(tokenizer, model=None) -> list[int]:
    """Token ids that end an assistant turn under the chat template: the special token the template puts
    right after the answer (`<|im_end|>`, `<end_of_turn>`, `<|eot_id|>`, ...), the tokenizer's EOS and the
    model's generation-config EOS ids. A chat-tuned model ends its answer with the template's token, which
    is often not the tokenizer's EOS (Gemma: `<eos>` vs `<end_of_turn>`), so generation must stop there."""
    ids = [tokenizer.eos_token_id]
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids += config_eos if isinstance(config_eos, list) else [config_eos]
    probe = "w2s-answer"
    head, full = render(tokenizer, "w2s-question", probe, chat=True)
    after = full[len(head):]
    suffix = after[after.index(probe) + len(probe):] if probe in after else ""
    # special: the tokenizer's named special tokens and every added token flagged special (Llama 3 keeps
    # <|eot_id|> only there); the first of the suffix's tokens that is not whitespace must be one
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    for i in tokenizer(suffix, add_special_tokens=False)["input_ids"] if suffix.strip() else []:
        if i in special:
            ids.append(i)
        if i in special or tokenizer.decode([i]).strip():
            break
    return list(dict.fromkeys(i for i in ids if i is not None))


def encode(tokenizer, prompt: str, answer: str, max_length: int, chat: bool = False) -> dict:
    """input_ids, attention_mask and labels (-100 outside the answer) of one training example; a long
    prompt is cut from the left so the answer survives."""
    head, full = render(tokenizer, prompt, answer, chat)
    enc = tokenizer(full, add_special_tokens=not chat, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    # special tokens the tokenizer adds (BOS) have offset (0, 0): they belong to the prompt
    labels = [tok if start >= len(head) and end > start else IGNORE for tok, (start, end) in zip(ids, offsets)]
    if not chat and tokenizer.eos_token_id is not None and ids and ids[-1] == tokenizer.eos_token_id:
        labels[-1] = ids[-1]  # the end of the answer is part of the answer
    if len(ids) > max_length:
        ids, labels = ids[-max_length:], labels[-max_length:]
    if all(x == IGNORE for x in labels):
        raise UserError(f"max_length {max_length} leaves no answer token of a training example",
                        "raise data.max_length")
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def finetune_lm(model, tokenizer, prompts: list[str], answers: list[str], cfg, max_length: int, accelerator,
                seed: int, chat: bool = False, desc: str = "sft", checkpoint_dir=None) -> dict:
    """Supervised fine-tuning of a causal LM on (prompt, answer) pairs, the loss on answer tokens only
    (transformers' shifted cross-entropy skips the -100 labels); the shared loop of `train_loop`."""
    from pipeline.train.loop import train_loop

    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    items = [encode(tokenizer, p, a, max_length, chat) for p, a in zip(prompts, answers)]
    pad_id = tokenizer.pad_token_id

    def collate(batch):
        import torch

        width = max(len(b["input_ids"]) for b in batch)
        right = lambda key, fill: torch.tensor([b[key] + [fill] * (width - len(b[key])) for b in batch])  # noqa: E731
        return {"input_ids": right("input_ids", pad_id), "attention_mask": right("attention_mask", 0),
                "labels": right("labels", IGNORE)}

    def batch_loss(model, batch, progress, precision):
        with precision():
            return model(**batch).loss

    return train_loop(model, items, [len(x["input_ids"]) for x in items], collate, batch_loss, cfg, accelerator,
                      seed, desc, checkpoint_dir=checkpoint_dir)
