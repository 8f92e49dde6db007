"""Tokenizers: the shipped one is offline, exact and rebuildable; any HF tokenizer gets the COAT tokens."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from satori_env.tokenizer import (
    COAT_TOKENS,
    DEFAULT_TOKENIZER_DIR,
    add_coat_tokens,
    build_default_tokenizer,
    default_tokenizer,
    load_tokenizer,
)
from tests.helpers import mid_vocab_pad_tokenizer

TOKENIZER = default_tokenizer()


def test_shipped_tokenizer_layout():
    assert len(TOKENIZER) == 1024
    assert TOKENIZER.eos_token == "<|endoftext|>" and TOKENIZER.pad_token_id == 1023
    for token in COAT_TOKENS:
        assert len(TOKENIZER.encode(token)) == 1 and token in TOKENIZER.all_special_tokens


def test_digits_are_single_tokens():
    ids = TOKENIZER.encode("x=12345+678")
    digits = [TOKENIZER.decode([i]) for i in ids if TOKENIZER.decode([i]).isdigit()]
    assert digits == list("12345678")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=30), st.sampled_from(COAT_TOKENS)), max_size=8))
def test_any_text_round_trips_exactly(pieces):
    text = "".join(pieces)
    assert TOKENIZER.decode(TOKENIZER.encode(text), clean_up_tokenization_spaces=False) == text


@pytest.mark.slow
def test_rebuilding_gives_the_shipped_tokenizer(tmp_path):
    build_default_tokenizer(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / name).read_text() == (DEFAULT_TOKENIZER_DIR / name).read_text(), name


def test_missing_coat_and_padding_tokens_are_added(tmp_path):
    from transformers import AutoTokenizer

    path = mid_vocab_pad_tokenizer(tmp_path)
    tokenizer = load_tokenizer(str(path))
    assert "<|reflect|>" not in tokenizer.get_vocab()
    assert add_coat_tokens(tokenizer) == list(COAT_TOKENS)
    assert all(len(tokenizer.encode(t, add_special_tokens=False)) == 1 for t in COAT_TOKENS)
    assert add_coat_tokens(tokenizer) == []  # idempotent

    no_pad = AutoTokenizer.from_pretrained(str(path))
    no_pad.pad_token = None
    assert add_coat_tokens(no_pad)[-1] == "<|pad|>" and no_pad.pad_token_id == len(no_pad) - 1


def test_a_tokenizer_without_eos_is_refused(tmp_path):
    tokenizer = load_tokenizer(str(mid_vocab_pad_tokenizer(tmp_path)))
    tokenizer.eos_token = None
    with pytest.raises(ValueError, match="has no EOS token"):
        add_coat_tokens(tokenizer)


def test_load_tokenizer_accepts_objects_and_rejects_others():
    assert load_tokenizer(TOKENIZER) is TOKENIZER
    with pytest.raises(TypeError, match="tokenizer must be None"):
        load_tokenizer(42)
