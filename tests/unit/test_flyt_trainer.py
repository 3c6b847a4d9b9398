"""Tests of the FLYT trainer pieces in curate.selection.flyt (docs/algorithms.md §6): heads, downstream logits,
the differentiable AdamW step, the one-step look-ahead and the M-FLYT driver."""

import copy
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

from curate.selection.flyt import (  # noqa: E402
    LOGIT_SCALE_MIN,
    TAU_DS_INIT,
    FlytHParams,
    GLUHead,
    MixingHead,
    apply_mixer,
    cosine_lr,
    downstream_logits,
    eflyt_features,
    flyt_step,
    functional_adamw_step,
    in_memory_loader,
    load_head,
    mixing_weights,
    new_adamw_state,
    sample_class_prompts,
    save_head,
    train_mflyt,
)
from curate.selection.fusion import column_stats, zscore  # noqa: E402
from curate.training.losses import weighted_clip_loss  # noqa: E402


# ----------------------------------------------------------------------------- heads
def test_mixing_head_on_standardised_scores():
    raw = np.array([[1.0, 10.0, -3.0], [2.0, 30.0, -1.0], [3.0, 20.0, 1.0], [6.0, 40.0, 3.0]])
    stats = column_stats([raw[:2], raw[2:]])  # pool-wide stats, streamed over two chunks
    z = zscore(raw, stats)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0, ddof=1), 1, atol=1e-12)
    head = MixingHead(3)
    with torch.no_grad():
        head.linear.weight.copy_(torch.tensor([[0.5, -1.0, 2.0]]))
        head.linear.bias.fill_(0.1)
    # row 0 by hand: col means 3, 25, 0; sample stds sqrt(14/3), sqrt(500/3), sqrt(20/3)
    z0 = [(1 - 3) / math.sqrt(14 / 3), (10 - 25) / math.sqrt(500 / 3), (-3 - 0) / math.sqrt(20 / 3)]
    expected0 = 0.5 * z0[0] - 1.0 * z0[1] + 2.0 * z0[2] + 0.1
    got = apply_mixer(head, z, chunk_size=3)  # chunk-wise, 2 chunks
    assert got.dtype == np.float32 and got.shape == (4,)
    assert got[0] == pytest.approx(expected0, abs=1e-6)
    np.testing.assert_allclose(got, z @ np.array([0.5, -1.0, 2.0]) + 0.1, atol=1e-6)
    np.testing.assert_allclose(mixing_weights(head), [0.5, -1.0, 2.0])
    assert head(torch.zeros(5, 3)).shape == (5,)
    zero = MixingHead(4, zero_init=True)
    assert float(zero.linear.weight.detach().abs().sum() + zero.linear.bias.detach().abs().sum()) == 0.0


def test_glu_head_formula_on_a_hand_example():
    head = GLUHead(2, hidden=2)
    with torch.no_grad():
        head.w1.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        head.w1.bias.zero_()
        head.w3.weight.copy_(torch.tensor([[1.0, 1.0], [1.0, -1.0]]))
        head.w3.bias.zero_()
        head.w2.weight.copy_(torch.tensor([[1.0, 2.0]]))
        head.w2.bias.fill_(0.5)
    # x = (1, 2): w1 x = (1, 2), silu = (1/(1+e^-1), 2/(1+e^-2)) = (.731059, 1.761594)
    # w3 x = (3, -1); product = (2.193176, -1.761594); w2 . + .5 = 2.193176 - 3.523188 + .5 = -.830012
    silu = lambda v: v / (1 + math.exp(-v))  # noqa: E731
    expected = 1.0 * silu(1) * 3 + 2.0 * silu(2) * (-1) + 0.5
    assert expected == pytest.approx(-0.830012, abs=1e-6)
    out = head(torch.tensor([[1.0, 2.0]]))
    assert out.shape == (1,) and out.item() == pytest.approx(expected, abs=1e-6)


def test_glu_head_default_shape_over_eflyt_features():
    img, txt = torch.randn(5, 8) * 3, torch.randn(5, 8)
    x = eflyt_features(img, txt)
    assert x.shape == (5, 16)
    np.testing.assert_allclose(x[:, :8].norm(dim=1), 1, atol=1e-6)
    np.testing.assert_allclose(x[:, 8:].norm(dim=1), 1, atol=1e-6)
    head = GLUHead(16)
    assert head.hidden == 1024 and head.w1.weight.shape == (1024, 16) and head.w2.weight.shape == (1, 1024)
    assert head(x).shape == (5,)


def test_save_and_load_heads(tmp_path):
    torch.manual_seed(0)
    for head, dim in ((MixingHead(3), 3), (GLUHead(4, hidden=6), 4)):
        path = tmp_path / f"{head.kind}.pt"
        save_head(path, head, meta={"inputs": ["a", "b"]})
        back, meta = load_head(path)
        assert type(back) is type(head) and meta == {"inputs": ["a", "b"]} and not back.training
        x = torch.randn(7, dim)
        torch.testing.assert_close(back(x), head(x))


# ----------------------------------------------------------------------------- downstream logits
def test_downstream_logits_one_seeded_template_per_class():
    K, T, D = 6, 4, 5
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(K, T, D, generator=g) * 2  # unnormalised template embeddings
    img = F.normalize(torch.randn(3, D, generator=g), dim=-1)
    tau = torch.tensor(math.log(10.0))
    out = downstream_logits(img, feats, tau, generator=torch.Generator().manual_seed(5))
    choice = torch.randint(T, (K,), generator=torch.Generator().manual_seed(5))  # the documented rule
    classifier = F.normalize(feats[torch.arange(K), choice], dim=-1)
    torch.testing.assert_close(out, 10.0 * img @ classifier.T)
    # same seed -> same choice; the result matches exactly one template per class
    again = downstream_logits(img, feats, tau, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(out, again)
    per_template = 10.0 * torch.einsum("nd,ktd->nkt", img, F.normalize(feats, dim=-1))
    for k in range(K):
        hits = [t for t in range(T) if torch.allclose(out[:, k], per_template[:, k, t])]
        assert hits == [int(choice[k])]
    # other seeds draw other templates
    choices = {tuple(torch.randint(T, (K,), generator=torch.Generator().manual_seed(s)).tolist()) for s in range(5)}
    assert len(choices) > 1
    # (K, D) input = already drawn; tau None = plain CE (scale 1)
    torch.testing.assert_close(downstream_logits(img, feats[:, 0], None), img @ F.normalize(feats[:, 0], dim=-1).T)
    assert TAU_DS_INIT == pytest.approx(math.log(1 / 0.07))


def test_sample_class_prompts_uses_the_same_seeded_rule():
    classnames = ["red square", "blue circle", "green star"]
    templates = ["a photo of a {c}.", "the {c}.", "a drawing of a {c}."]
    prompts = sample_class_prompts(classnames, templates, torch.Generator().manual_seed(3))
    choice = torch.randint(3, (3,), generator=torch.Generator().manual_seed(3)).tolist()
    assert prompts == [templates[t].format(c=c) for t, c in zip(choice, classnames)]
    assert prompts == sample_class_prompts(classnames, templates, torch.Generator().manual_seed(3))


# ----------------------------------------------------------------------------- functional AdamW
def _params(seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return {
        "matrix": torch.randn(3, 4, generator=g, dtype=dtype),
        "vector": torch.randn(4, generator=g, dtype=dtype),
        "scalar": torch.randn((), generator=g, dtype=dtype),
    }


def test_functional_adamw_matches_torch_adamw_two_steps():
    params = _params()
    grads = [_params(1), _params(2)]
    grads[1]["vector"][1] = 0.0  # a zero entry after a non-zero one: momentum still moves it
    lr, betas, eps, wd = 0.01, (0.9, 0.98), 1e-6, 0.2
    torch_params = {k: nn.Parameter(v.clone()) for k, v in params.items()}
    opt = torch.optim.AdamW(
        [
            {"params": [torch_params["matrix"]], "weight_decay": wd},
            {"params": [torch_params["vector"], torch_params["scalar"]], "weight_decay": 0.0},
        ],
        lr=lr,
        betas=betas,
        eps=eps,
    )
    state = new_adamw_state()
    ours = params
    for step in range(2):
        for k, p in torch_params.items():
            p.grad = grads[step][k].clone()
        opt.step()
        ours = functional_adamw_step(ours, grads[step], state, lr, betas=betas, eps=eps, weight_decay=wd)
        assert state["step"] == step + 1
        for k in params:
            torch.testing.assert_close(ours[k], torch_params[k].detach(), rtol=1e-6, atol=1e-7)
            torch.testing.assert_close(state["exp_avg"][k], opt.state[torch_params[k]]["exp_avg"])
            torch.testing.assert_close(state["exp_avg_sq"][k], opt.state[torch_params[k]]["exp_avg_sq"])
    # decay really is on matrices only: with zero grads only the matrix shrinks
    zero = {k: torch.zeros_like(v) for k, v in params.items()}
    st = new_adamw_state()
    out = functional_adamw_step(params, zero, st, lr=0.5, weight_decay=0.2)
    torch.testing.assert_close(out["matrix"], params["matrix"] * (1 - 0.5 * 0.2))
    torch.testing.assert_close(out["vector"], params["vector"])
    torch.testing.assert_close(out["scalar"], params["scalar"])
    # an explicit mask overrides the default; a None grad leaves the parameter alone
    out = functional_adamw_step(
        params,
        {"matrix": None, "vector": zero["vector"], "scalar": None},
        new_adamw_state(),
        lr=0.5,
        weight_decay=0.2,
        decay_mask={"matrix": True, "vector": True, "scalar": True},
    )
    assert out["matrix"] is params["matrix"]
    torch.testing.assert_close(out["vector"], params["vector"] * 0.9)


def test_functional_adamw_is_differentiable_in_the_grads():
    params = _params(0, torch.float64)
    g0 = _params(1, torch.float64)
    state0 = new_adamw_state()
    functional_adamw_step(params, g0, state0, lr=0.1)  # step 1 fills the moments

    def step2(matrix_grad, vector_grad):
        st = copy.deepcopy(state0)
        grads = {"matrix": matrix_grad, "vector": vector_grad, "scalar": g0["scalar"]}
        new = functional_adamw_step(params, grads, st, lr=0.1)
        return new["matrix"].sum() + (new["vector"] ** 2).sum()

    g1 = _params(2, torch.float64)
    inputs = (g1["matrix"].requires_grad_(True), g1["vector"].requires_grad_(True))
    assert torch.autograd.gradcheck(step2, inputs)


# ----------------------------------------------------------------------------- the look-ahead
class ToyCLIP(nn.Module):
    """open_clip-like toy: linear image encoder, one embedding row per text token, log logit scale."""

    def __init__(self, d_in=8, vocab=4, dim=6, seed=0, logit_scale=math.log(10.0)):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.visual = nn.Parameter(torch.randn(dim, d_in, generator=g) * 0.3)
        self.token_embedding = nn.Parameter(torch.randn(vocab, dim, generator=g) * 0.3)
        self.bias = nn.Parameter(torch.zeros(dim))
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale)))

    def forward(self, image=None, text=None):
        i = F.normalize(image @ self.visual.T + self.bias, dim=-1) if image is not None else None
        t = F.normalize(self.token_embedding[text].mean(1), dim=-1) if text is not None else None
        return i, t, self.logit_scale.exp()


def _toy_data(K=4, d_in=8, n_up=16, n_ds=16, seed=1):
    """Upstream: even rows are correctly captioned (text = class), odd rows carry the SHIFTED
    caption (class + 1) mod K. Downstream: images of class c labelled c."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(K, d_in, generator=g)
    cls = torch.arange(n_up) % K
    up_img = protos[cls] + 0.3 * torch.randn(n_up, d_in, generator=g)
    good = torch.arange(n_up) % 2 == 0
    txt = torch.where(good, cls, (cls + 1) % K)[:, None]
    ds_cls = torch.arange(n_ds) % K
    ds_img = protos[ds_cls] + 0.3 * torch.randn(n_ds, d_in, generator=g)
    return up_img, txt, good, ds_img, ds_cls, torch.arange(K)[:, None]


def _run_toy(ds_shift, steps=6, ref_lr=0.05):
    up_img, up_txt, good, ds_img, ds_cls, cls_tokens = _toy_data()
    labels = (ds_cls + ds_shift) % 4  # shift 1: the downstream task is the shifted captions
    feature = torch.where(good, 1.0, -1.0)[:, None]  # head input: +1 correct caption, -1 shifted
    model, head = ToyCLIP(), MixingHead(1, zero_init=True)
    opt = torch.optim.AdamW(head.parameters(), lr=0.05, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.0)
    state, hp = new_adamw_state(), FlytHParams(ref_lr=ref_lr, weight_decay=0.0)
    losses = []
    for _ in range(steps):
        info = flyt_step(model, head, opt, (up_img, up_txt), feature, (ds_img, labels), cls_tokens, None, state, hp)
        losses.append(info["downstream_loss"])
    with torch.no_grad():
        w = torch.softmax(head(feature), 0)
    return head.linear.weight.item(), float(w[good].sum()), float(w[~good].sum()), losses, state


def test_lookahead_gradient_reaches_the_head_and_follows_the_downstream_task():
    # downstream = the true classes: the head learns to up-weight the correctly captioned half
    a, w_good, w_bad, losses, state = _run_toy(ds_shift=0)
    assert a > 0.1 and w_good > 0.55 > w_bad
    assert losses[-1] < losses[0]
    assert state["step"] == 6 and all(v.abs().sum() > 0 for v in state["exp_avg"].values())
    # same upstream data and head inputs, downstream labelled like the shifted captions: the
    # preference flips, so the sign comes from the look-ahead gradient, not from the features
    a2, w_good2, w_bad2, _, _ = _run_toy(ds_shift=1)
    assert a2 < -0.1 and w_bad2 > 0.55 > w_good2


def test_flyt_step_updates_the_reference_model_like_torch_adamw():
    up_img, up_txt, good, ds_img, ds_cls, cls_tokens = _toy_data()
    feature = torch.where(good, 1.0, -1.0)[:, None]
    model = ToyCLIP()
    twin = copy.deepcopy(model)
    head = MixingHead(1)
    opt = torch.optim.AdamW(head.parameters(), lr=0.05)
    hp = FlytHParams(ref_lr=0.01)  # weight decay 0.2 on matrices, betas (.9, .98), eps 1e-6
    twin_opt = torch.optim.AdamW(
        [
            {"params": [twin.visual, twin.token_embedding], "weight_decay": 0.2},
            {"params": [twin.bias, twin.logit_scale], "weight_decay": 0.0},
        ],
        lr=0.01,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    state = new_adamw_state()
    for step in range(2):
        with torch.no_grad():
            w = torch.softmax(head(feature), 0)  # the head BEFORE this step's update
        i, t, _ = twin(up_img, up_txt)
        twin_opt.zero_grad()
        weighted_clip_loss(i, t, twin.logit_scale, w).backward()
        twin_opt.step()
        head_before = head.linear.weight.detach().clone()
        # plain CE (no learned tau_DS): the reference optimizer steps once per iteration
        info = flyt_step(model, head, opt, (up_img, up_txt), feature, (ds_img, ds_cls), cls_tokens, None, state, hp)
        for (n, p), (_, q) in zip(model.named_parameters(), twin.named_parameters()):
            torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6, msg=n)
        assert not torch.equal(head.linear.weight, head_before)  # the head stepped
        assert LOGIT_SCALE_MIN <= info["logit_scale"] == info["logit_scale_unclamped"]
        assert math.isfinite(info["upstream_loss"]) and math.isfinite(info["downstream_loss"])
    assert state["step"] == 2


def test_tau_ds_is_stepped_by_the_reference_optimizer_sharing_its_step_counter():
    """The FLYT code steps tau_DS with the reference model's differentiable AdamW: the reference
    lr, no weight decay, its own moments, and the same step counter, which each call advances.
    So the counter reaches 2 after one iteration and tau_DS's first update is AdamW's at t = 2:
    m_hat = 0.1 g / (1 - 0.9^2) = g / 1.9, sqrt(v_hat) = |g| sqrt(0.02 / (1 - 0.98^2)) =
    |g| sqrt(0.02 / 0.0396), so |delta| = lr * (1 / 1.9) / sqrt(0.02 / 0.0396) = 0.740592 lr
    (at t = 1 it would be lr: 1.0 lr)."""
    up_img, up_txt, good, ds_img, ds_cls, cls_tokens = _toy_data()
    feature = torch.where(good, 1.0, -1.0)[:, None]
    model, head = ToyCLIP(), MixingHead(1)
    opt = torch.optim.AdamW(head.parameters(), lr=0.05)
    tau = nn.Parameter(torch.tensor(TAU_DS_INIT, dtype=torch.float64))
    state, hp = new_adamw_state(), FlytHParams(ref_lr=0.01, eps=1e-12)
    info = flyt_step(
        model, head, opt, (up_img, up_txt), feature, (ds_img, ds_cls), cls_tokens, tau, state, hp, tau_lr=0.02
    )
    assert state["step"] == 2 and "tau_ds" in state["exp_avg"] and tau.grad is None
    assert abs(tau.item() - TAU_DS_INIT) == pytest.approx(0.02 / 1.9 / math.sqrt(0.02 / 0.0396), rel=1e-6)
    assert 0.02 / 1.9 / math.sqrt(0.02 / 0.0396) == pytest.approx(0.740592 * 0.02, rel=1e-5)
    assert info["tau_ds"] == pytest.approx(tau.item())
    flyt_step(model, head, opt, (up_img, up_txt), feature, (ds_img, ds_cls), cls_tokens, tau, state, hp)
    assert state["step"] == 4  # the reference model's 2nd update ran at t = 3, tau_DS's at t = 4
    # tau_DS in the head's optimizer would be stepped twice: refused
    opt.add_param_group({"params": [tau], "lr": 0.01, "weight_decay": 0.0})
    with pytest.raises(ValueError, match="reference model's optimizer"):
        flyt_step(model, head, opt, (up_img, up_txt), feature, (ds_img, ds_cls), cls_tokens, tau, state, hp)


def test_logit_scale_is_clamped_to_two_after_a_step_that_pushes_it_lower():
    up_img, up_txt, _, ds_img, ds_cls, cls_tokens = _toy_data()
    # every caption shifted: a lower logit scale lowers the CLIP loss of these pairs
    up_txt = (up_txt + 1) % 4
    model = ToyCLIP(logit_scale=2.05)
    head = MixingHead(1, zero_init=True)
    opt = torch.optim.AdamW(head.parameters(), lr=0.01)
    i, t, _ = model(up_img, up_txt)
    ls = model.logit_scale.detach().clone().requires_grad_(True)
    weighted_clip_loss(i.detach(), t.detach(), ls, torch.full((16,), 1 / 16)).backward()
    assert ls.grad > 0  # gradient descent lowers it
    info = flyt_step(
        model,
        head,
        opt,
        (up_img, up_txt),
        torch.zeros(16, 1),
        (ds_img, ds_cls),
        cls_tokens,
        None,
        new_adamw_state(),
        FlytHParams(ref_lr=0.5, weight_decay=0.0),
    )
    assert info["logit_scale_unclamped"] < 1.7  # Adam's first step moves it by about lr
    assert model.logit_scale.item() == LOGIT_SCALE_MIN == 2.0 == info["logit_scale"]


# ----------------------------------------------------------------------------- driver
def test_cosine_lr_with_warmup():
    assert cosine_lr(0, 1.0, 4, 10) == pytest.approx(0.25)
    assert cosine_lr(3, 1.0, 4, 10) == pytest.approx(1.0)
    assert cosine_lr(4, 1.0, 4, 10) == pytest.approx(1.0)
    assert cosine_lr(7, 1.0, 4, 10) == pytest.approx(0.5)
    assert cosine_lr(10, 1.0, 4, 10) == pytest.approx(0.0, abs=1e-12)
    hp = FlytHParams()
    assert (hp.ref_lr, hp.head_lr, hp.warmup, hp.weight_decay, hp.upstream_batch, hp.downstream_batch, hp.steps) == (
        5e-5,
        1e-3,
        100,
        0.2,
        4096,
        3072,
        5000,
    )
    assert hp.betas == (0.9, 0.98) and hp.eps == 1e-6


def test_in_memory_loader_is_seeded_per_pass():
    a, b = np.arange(10), [f"t{i}" for i in range(10)]
    loader = in_memory_loader(a, b, seed=3)
    p0 = list(loader(4, 0))
    assert len(p0) == 2 and all(len(x) == 4 for x, _ in p0)  # the incomplete tail is dropped
    assert [list(x) for x, _ in p0] == [list(x) for x, _ in loader(4, 0)]
    assert [list(x) for x, _ in p0] != [list(x) for x, _ in loader(4, 1)]
    assert all(y == [f"t{i}" for i in x] for x, y in p0)
    assert len(list(loader(20, 0))) == 1  # a set smaller than the batch comes whole


def _objects_set(path):
    """``(images, labels, classnames)`` of a one-per-class labelled set of the objects task."""
    from curate.data.synthetic.curated import write_labelled_set

    write_labelled_set(path, task="objects", n_per_class=1, seed=0, image_size=32)
    with np.load(path, allow_pickle=False) as z:
        return z["images"], z["labels"].astype(np.int64), [str(c) for c in z["classnames"]]


def test_train_mflyt_runs_on_a_tiny_open_clip_model(tmp_path):
    from curate.data.synthetic.tasks import TEMPLATES
    from curate.scoring.clip import write_arch_dir

    ds_images, ds_labels, classnames = _objects_set(tmp_path / "ds.npz")
    rng = np.random.default_rng(0)
    pool_images = rng.integers(0, 256, size=(12, 32, 32, 3), dtype=np.uint8)
    pool_texts = [f"a {c}" for c in classnames[:12]]
    raw = rng.normal(size=(12, 3)) * [1.0, 5.0, 0.1] + [0.0, 3.0, -1.0]
    scores = zscore(raw, column_stats([raw]))
    arch = write_arch_dir("tiny-vit-narrow", tmp_path / "ref")
    hp = FlytHParams(steps=3, warmup=1, upstream_batch=6, downstream_batch=8, ref_lr=1e-3, head_lr=0.05, tau_ds_lr=0.05)
    logs = []
    result = train_mflyt(
        f"local-dir:{arch}",
        in_memory_loader(pool_images, pool_texts, scores, seed=0),
        in_memory_loader(ds_images, ds_labels, seed=1),
        classnames,
        TEMPLATES["objects"],
        hparams=hp,
        seed=0,
        log=lambda s, info: logs.append(s),
    )
    head = result.head
    assert isinstance(head, MixingHead) and head.k == 3 and not head.training
    assert logs == [0, 1, 2] and len(result.history) == 3
    assert result.adam_state["step"] == 6  # the reference model's and tau_DS's steps, one counter
    assert result.tau_ds != pytest.approx(TAU_DS_INIT)
    for info in result.history:
        assert math.isfinite(info["downstream_loss"]) and math.isfinite(info["upstream_loss"])
        assert 2.0 <= info["logit_scale"] <= math.log(100) + 1e-6
    assert [h["ref_lr"] for h in result.history] == pytest.approx([cosine_lr(s, 1e-3, 1, 3) for s in range(3)])
    # the head moved away from its seeded initialisation: nn.Linear's, as FLYT's (not zero)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        init = MixingHead(3)
    assert not torch.allclose(init.linear.weight, head.linear.weight)
    assert init.linear.weight.abs().min() > 0
    logits = apply_mixer(head, scores, chunk_size=5)
    assert logits.shape == (12,) and np.isfinite(logits).all()
    # deterministic for a seed
    again = train_mflyt(
        f"local-dir:{arch}",
        in_memory_loader(pool_images, pool_texts, scores, seed=0),
        in_memory_loader(ds_images, ds_labels, seed=1),
        classnames,
        TEMPLATES["objects"],
        hparams=hp,
        seed=0,
    )
    torch.testing.assert_close(again.head.linear.weight, head.linear.weight)


def test_the_reference_batches_get_open_clips_training_preprocessing_seeded_and_eflyt_reads_them(tmp_path):
    """The FLYT code feeds the reference model open_clip's training preprocessing (a random resized
    crop), up- and downstream, and E-FLYT's frozen extractor embeds the same augmented images."""
    from torchvision import transforms

    from curate.data.synthetic.tasks import TEMPLATES
    from curate.scoring.clip import load_model, write_arch_dir
    from curate.selection.flyt import FrozenFeatures, augmentation_seed, train_eflyt

    arch = f"local-dir:{write_arch_dir('tiny-vit-narrow', tmp_path / 'ref')}"
    _, preprocess_train, _ = load_model(arch, train_preprocess=True)
    crop = [t for t in preprocess_train.transforms if isinstance(t, transforms.RandomResizedCrop)]
    assert crop and crop[0].scale == (0.9, 1.0)  # open_clip's default
    assert not any(isinstance(t, transforms.RandomResizedCrop) for t in load_model(arch)[1].transforms)

    ds_images, ds_labels, classnames = _objects_set(tmp_path / "ds.npz")
    rng = np.random.default_rng(0)
    pool_images = rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    pool_texts = [f"a {c}" for c in classnames[:6]]
    torch.manual_seed(7)  # the weightless test architecture initialises randomly
    extractor = FrozenFeatures(arch)
    seen = []

    def features(images, tokens):
        seen.append(images.clone())
        return extractor(images, tokens)

    from curate.selection.flyt import train_flyt

    hp = FlytHParams(steps=2, warmup=1, upstream_batch=6, downstream_batch=4, ref_lr=1e-3, head_lr=0.01)
    result = train_flyt(
        arch,
        in_memory_loader(pool_images, pool_texts, seed=0),
        in_memory_loader(ds_images, ds_labels, seed=1),
        classnames,
        TEMPLATES["objects"],
        head=lambda k: GLUHead(k, hidden=8),
        hparams=hp,
        seed=3,
        features=features,
    )
    assert result.head.in_dim == 2 * extractor.model.encode_image(seen[0][:1]).shape[1]
    # step 0's upstream images: the first pass's permutation, augmented under step 0's seed
    order = np.random.default_rng([0, 0]).permutation(6)
    from PIL import Image

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(augmentation_seed(3, 0))
        expected = torch.stack([preprocess_train(Image.fromarray(pool_images[i])) for i in order])
    torch.testing.assert_close(seen[0], expected)
    unaugmented = torch.stack([load_model(arch)[1](Image.fromarray(pool_images[i])) for i in order])
    assert not torch.allclose(seen[0], unaugmented)
    # E-FLYT through its driver: the extractor's features of each batch
    torch.manual_seed(7)
    again = train_eflyt(
        arch,
        in_memory_loader(pool_images, pool_texts, seed=0),
        in_memory_loader(ds_images, ds_labels, seed=1),
        classnames,
        TEMPLATES["objects"],
        hparams=hp,
        seed=3,
        hidden=8,
        extractor=arch,
    )
    torch.testing.assert_close(again.head.w2.weight, result.head.w2.weight)  # same seeds, same run
