"""The CPU attention: its matmul form computes what SDPA computes (values and gradients), it is
taken only where it was measured faster, and a model switched to it is saved as a plain one."""

import pytest
import torch
import torch.nn.functional as F

import agents.attention as attention
from agents.attention import MATMUL_MAX_KEYS, NAME, attention_forward, use_fast_attention
from agents.models import build_model, load_policy


class _Layer(torch.nn.Module):
    is_causal = True


def _inputs(batch=3, heads=4, kv_heads=4, queries=6, keys=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, queries, 16, generator=generator)
    k = torch.randn(batch, kv_heads, keys, 16, generator=generator)
    v = torch.randn(batch, kv_heads, keys, 16, generator=generator)
    return q, k, v


def _reference(q, k, v, mask):
    """SDPA in fp32 on the same (bf16-rounded) inputs; (B, q, heads, d) like the interface."""
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    if mask is None and q.shape[2] > 1:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2)


@pytest.mark.parametrize(
    "shape, masked",
    [
        (dict(queries=6, keys=6), False),  # causal without a mask (SDPA's is_causal)
        (dict(queries=6, keys=6), True),  # right padding: the last keys of row 1 masked
        (dict(queries=1, keys=9), True),  # a decoding step over a cache
        (dict(queries=6, keys=6, kv_heads=2), True),  # grouped-query attention
    ],
)
def test_the_matmul_form_computes_what_sdpa_computes(shape, masked):
    q, k, v = (t.to(torch.bfloat16).requires_grad_() for t in _inputs(**shape))
    queries, keys = q.shape[2], k.shape[2]
    mask = None
    if masked:
        mask = torch.ones(queries, keys, dtype=torch.bool).tril(keys - queries).repeat(3, 1, 1, 1)
        mask[1, :, :, -2:] = False
        mask[1, :, 0, 0] = True  # every query row keeps a key
    out, weights = attention_forward(_Layer(), q, k, v, mask)
    assert weights is None and out.dtype == torch.bfloat16 and out.shape == (3, queries, 4, 16)
    rounded = [t.detach().float().requires_grad_() for t in (q, k, v)]
    expected = _reference(*rounded, mask)
    torch.testing.assert_close(out.float(), expected, rtol=0.02, atol=0.02)
    out.float().square().sum().backward()
    expected.square().sum().backward()
    for ours, theirs in zip((q, k, v), rounded):
        torch.testing.assert_close(ours.grad.float(), theirs.grad, rtol=0.05, atol=0.05)


def test_a_query_with_no_key_to_attend_gets_no_nan():
    q, k, v = (t.to(torch.bfloat16) for t in _inputs())
    mask = torch.ones(3, 1, 6, 6, dtype=torch.bool)
    mask[0, :, :2] = False  # left padding of a prompt: those positions see nothing
    out, _ = attention_forward(_Layer(), q, k, v, mask)
    assert torch.isfinite(out.float()).all()


def test_the_matmul_form_is_taken_only_where_it_was_measured_faster(monkeypatch):
    """On a CPU in 16 bits (bf16 tensors or bf16 autocast), one query position or at most
    MATMUL_MAX_KEYS keys; everything else (fp32, long sequences) goes to transformers' SDPA."""
    sent = []
    monkeypatch.setattr(attention, "sdpa_attention_forward", lambda *args, **kwargs: sent.append(1) or (None, None))

    def to_sdpa(q, k, autocast=False):
        sent.clear()
        with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            attention_forward(_Layer(), q, k, k, None)
        return bool(sent)

    q, k, _ = _inputs()
    assert to_sdpa(q, k) and not to_sdpa(q.bfloat16(), k.bfloat16()) and not to_sdpa(q, k, autocast=True)
    long_q, long_k, _ = _inputs(batch=1, queries=MATMUL_MAX_KEYS + 16, keys=MATMUL_MAX_KEYS + 16)
    assert to_sdpa(long_q, long_k, autocast=True)  # long: the fused kernel is faster there
    one_q, _, _ = _inputs(batch=1, queries=1)
    assert not to_sdpa(one_q, long_k, autocast=True)  # a decoding step: matmuls at any length
    assert not attention._as_matmuls(q.bfloat16().to("meta"), k.bfloat16().to("meta"))  # not a CPU


def test_a_loaded_policy_uses_it_and_is_saved_as_a_plain_model(tmp_path):
    from transformers import AutoModelForCausalLM

    build_model("tiny", tmp_path / "base", seed=0)
    model, _ = load_policy(str(tmp_path / "base"), device="cpu")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "base")
    assert model.config._attn_implementation == NAME and plain.config._attn_implementation == "sdpa"
    tokens = torch.randint(3, 500, (2, 40), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(tokens)
    mask[1, 30:] = 0
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        ours, theirs = (m(input_ids=tokens, attention_mask=mask).logits.float() for m in (model, plain))
    torch.testing.assert_close(ours[mask.bool()], theirs[mask.bool()], rtol=0.05, atol=0.05)
    model.save_pretrained(tmp_path / "saved")
    assert NAME not in (tmp_path / "saved" / "config.json").read_text()
    assert not use_fast_attention(AutoModelForCausalLM.from_pretrained(tmp_path / "base", attn_implementation="eager"))
