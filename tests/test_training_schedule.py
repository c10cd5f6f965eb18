"""The two-phase training schedule (frozen body, then discriminative learning rates) and the
pre-training of the small CNN on box-free synthetic images (docs/method.md, § The training schedule)."""

from __future__ import annotations

import copy
import threading
import time

import pytest
import torch
import torch.nn.functional as F
from conftest import make_toy_data
from torch import nn

import cascam.pretrain as pretrain_mod
import cascam.training as training_mod
from cascam.cascade import run_cascade
from cascam.claims import claim_run
from cascam.config import CascadeConfig, ConfigError
from cascam.data import load_data
from cascam.models import small_cnn
from cascam.pretrain import pretrain_images, pretrain_key, pretrained_body
from cascam.training import predict_logits, train_classifier


def _split(n=48, size=16):
    d = make_toy_data(n=n, size=size)
    x = d.images.float() / 255
    return x[:36], d.labels[:36], x[36:], d.labels[36:]


def _net(seed=3):
    torch.manual_seed(seed)
    return small_cnn(2, width=8)


def _is_bn(module):
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def _body_tensors(model, *, bn: bool):
    """Parameters (and buffers when ``bn``) of the body's batch-norm layers, or of all its other layers."""
    out = {}
    for name, module in model.features.named_modules():
        if _is_bn(module) != bn:
            continue
        for pname, p in module.named_parameters(recurse=False):
            out[f"{name}.{pname}"] = p.detach().clone()
        if bn:
            for bname, b in module.named_buffers(recurse=False):
                out[f"{name}.{bname}"] = b.detach().clone()
    return out


def reference_train(model, xt, yt, xv, yv, *, epochs, batch_size, lr, seed):
    """The one-phase training loop as it was before ``freeze_epochs`` existed (CPU, flips, no early
    stopping, best validation loss restored). Checked against the earlier ``train_classifier`` before
    the schedule was added: both gave bit-identical weights."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    best, best_state = float("inf"), None
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(xt), batch_size):
            idx = order[start : start + batch_size]
            xb, yb = xt[idx], yt[idx]
            flips = torch.rand(len(idx), generator=gen) < 0.5
            xb = torch.where(flips.view(-1, 1, 1, 1), xb.flip(-1), xb)
            loss = F.cross_entropy(model(xb).float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        vl = float(F.cross_entropy(predict_logits(model, xv, 4 * batch_size), yv))
        if vl < best:
            best, best_state = vl, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return model


def test_no_freeze_reproduces_the_one_phase_training_bit_for_bit():
    xt, yt, xv, yv = _split()
    a, b = _net(), _net()
    res = train_classifier(a, xt, yt, xv, yv, epochs=2, min_epochs=2, batch_size=8, lr=1e-2, seed=5,
                           progress=False, freeze_epochs=0, body_lr_mult=1.0)
    reference_train(b, xt, yt, xv, yv, epochs=2, batch_size=8, lr=1e-2, seed=5)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [row["phase"] for row in res.history] == ["unfrozen"] * 2


def test_frozen_phase_keeps_the_body_but_trains_its_batch_norm_and_the_head():
    xt, yt, xv, yv = _split()
    model = _net()
    convs, bns = _body_tensors(model, bn=False), _body_tensors(model, bn=True)
    head = model.classifier.weight.detach().clone()
    res = train_classifier(model, xt, yt, xv, yv, epochs=1, min_epochs=0, batch_size=8, lr=1e-2, seed=5,
                           progress=False, freeze_epochs=1)
    after = _body_tensors(model, bn=False)
    assert convs and all(torch.equal(convs[k], after[k]) for k in convs)
    bn_after = _body_tensors(model, bn=True)
    for kind in ("running_mean", "running_var", "weight", "bias"):
        keys = [k for k in bns if k.endswith(kind)]
        assert keys and all(not torch.equal(bns[k], bn_after[k]) for k in keys), kind
    assert not torch.equal(head, model.classifier.weight)
    assert [row["phase"] for row in res.history] == ["frozen"]
    assert all(p.requires_grad for p in model.parameters())  # unfrozen again afterwards


def test_train_bn_false_freezes_the_whole_body():
    xt, yt, xv, yv = _split()
    model = _net()
    before = model.features.state_dict()
    before = {k: v.clone() for k, v in before.items()}
    train_classifier(model, xt, yt, xv, yv, epochs=1, min_epochs=0, batch_size=8, lr=1e-2, seed=5,
                     progress=False, freeze_epochs=1, train_bn=False)
    after = model.features.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_unfrozen_phase_trains_the_body_at_lr_times_mult(monkeypatch):
    made = []

    class RecordingAdam(torch.optim.Adam):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(training_mod.torch.optim, "Adam", RecordingAdam)
    xt, yt, xv, yv = _split()
    model = _net()
    res = train_classifier(model, xt, yt, xv, yv, epochs=2, min_epochs=0, patience=5, batch_size=8, lr=1e-2,
                           seed=5, progress=False, freeze_epochs=1, body_lr_mult=0.1)
    (opt,) = made
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["head"]["lr"] == pytest.approx(1e-2) and groups["body"]["lr"] == pytest.approx(1e-3)
    body_ids = {id(p) for p in model.features.parameters()}
    assert {id(p) for p in groups["body"]["params"]} == body_ids
    assert {id(p) for p in groups["head"]["params"]} == {id(model.classifier.weight)}
    # Adam counts the updates each parameter received: a conv weight of the body only those of epoch 2,
    # its batch norm and the head those of both epochs.
    batches = -(-len(xt) // 8)
    conv = model.features[0][0].weight
    bn = model.features[0][1].weight
    assert float(opt.state[conv]["step"]) == batches
    assert float(opt.state[bn]["step"]) == 2 * batches
    assert float(opt.state[model.classifier.weight]["step"]) == 2 * batches
    assert [row["phase"] for row in res.history] == ["frozen", "unfrozen"]


def test_early_stopping_waits_for_the_unfrozen_phase():
    """A frozen phase longer than ``patience`` never stops the run: patience counts unfrozen epochs."""
    xt, yt, xv, yv = _split()
    res = train_classifier(_net(), xt, yt, xv, yv, epochs=4, min_epochs=0, patience=0, batch_size=8, lr=1e-2,
                           seed=5, progress=False, freeze_epochs=3, min_delta=10.0)
    # min_delta=10 makes every epoch "no progress": one-phase training would stop after epoch 1
    assert [row["phase"] for row in res.history] == ["frozen"] * 3 + ["unfrozen"]
    assert not res.stopped_early


def test_schedule_arguments_are_checked():
    xt, yt, xv, yv = _split()
    with pytest.raises(ValueError, match="freeze_epochs"):
        train_classifier(_net(), xt, yt, xv, yv, epochs=1, progress=False, freeze_epochs=-1)
    with pytest.raises(ValueError, match="body_lr_mult"):
        train_classifier(_net(), xt, yt, xv, yv, epochs=1, progress=False, body_lr_mult=0.0)
    with pytest.raises(ValueError, match="features"):
        train_classifier(nn.Sequential(nn.Flatten(), nn.Linear(768, 2)), xt, yt, xv, yv, epochs=1, progress=False,
                         freeze_epochs=1)


# ---------------------------------------------------------------------------------- configuration

def test_new_fields_keep_the_stored_runs_names():
    """Hashes computed before these fields existed (engine version 2, drawing version 1)."""
    assert CascadeConfig(benchmark_version=1).key() == "0f1f30e53000"
    assert CascadeConfig(benchmark_version=1).first_model_key() == "b22755d425f3"
    explicit = CascadeConfig(freeze_epochs=0, body_lr_mult=1.0, pretrain="none", pretrain_epochs=5,
                             pretrain_n_images=2000, benchmark_version=1)
    assert explicit.key() == "0f1f30e53000"
    mixed = dict(arch="resnet18", pretrained=True, mask_dilate=0.06, K=3, explainer=("cam", "gradcam", "cam"),
                 benchmark_version=1)
    assert CascadeConfig(**mixed).key() == "d3616a479656"
    # pretrain_* matter only when pre-training
    assert CascadeConfig(pretrain_epochs=3, pretrain_n_images=100, benchmark_version=1).key() == "0f1f30e53000"


def test_schedule_fields_change_what_is_trained():
    base = CascadeConfig()
    for change in ({"freeze_epochs": 1}, {"body_lr_mult": 0.1}, {"pretrain": "clean"}):
        cfg = base.replace(**change)
        assert cfg.key() != base.key() and cfg.first_model_key() != base.first_model_key(), change
    clean = base.replace(pretrain="clean")
    assert clean.replace(pretrain_epochs=3).key() != clean.key()
    assert clean.replace(theta=0.1).first_model_key() == clean.first_model_key()


@pytest.mark.parametrize(
    ("values", "name"),
    [
        ({"freeze_epochs": -1}, "freeze_epochs"),
        ({"freeze_epochs": "one"}, "freeze_epochs"),
        ({"freeze_epochs": 16}, "freeze_epochs"),
        ({"body_lr_mult": 0}, "body_lr_mult"),
        ({"body_lr_mult": -0.1}, "body_lr_mult"),
        ({"body_lr_mult": float("nan")}, "body_lr_mult"),
        ({"body_lr_mult": "low"}, "body_lr_mult"),
        ({"pretrain": "imagenet"}, "pretrain"),
        ({"pretrain": "clean", "pretrain_epochs": 0}, "pretrain_epochs"),
        ({"pretrain": "clean", "pretrain_n_images": 4}, "pretrain_n_images"),
        ({"pretrain": "clean", "data": "folder", "data_path": "/x"}, "pretrain"),
        ({"pretrain": "clean", "data": "oxford", "data_path": "/x"}, "pretrain"),
        ({"pretrain": "clean", "arch": "resnet18"}, "pretrain"),
    ],
)
def test_schedule_fields_are_validated_in_one_line(values, name):
    with pytest.raises(ConfigError, match=rf"^{name}: ") as info:
        CascadeConfig(**values)
    assert "\n" not in str(info.value)


def test_freeze_epochs_may_equal_epochs_and_help_lists_the_fields():
    from cascam.cli import config_help

    assert CascadeConfig(epochs=2, freeze_epochs=2).freeze_epochs == 2
    text = config_help()
    for item in ("freeze_epochs=0", "body_lr_mult=1", "pretrain=none (none|clean)", "pretrain_epochs=5",
                 "pretrain_n_images=2000"):
        assert item in text


# ---------------------------------------------------------------------------------- pre-training

def _tiny(**changes) -> CascadeConfig:
    values = dict(n_images=24, image_size=16, K=2, epochs=1, min_epochs=0, patience=0, batch_size=16, device="cpu",
                  progress=False, pretrain="clean", pretrain_n_images=24, pretrain_epochs=1, freeze_epochs=1)
    values.update(changes)
    return CascadeConfig(**values)


def test_pretraining_images_are_box_free_and_not_the_runs():
    cfg = _tiny()
    pre, run = pretrain_images(cfg), load_data(cfg)
    assert len(pre) == cfg.pretrain_n_images
    assert not bool(pre.artifact_masks.any())
    assert torch.equal(pre.images, pre.clean_images)
    assert not set(pre.names) & set(run.names)
    assert pre.images.shape[-1] == cfg.image_size


@pytest.fixture
def count_pretraining(monkeypatch):
    calls = []
    original = pretrain_mod.train_pretrain_model

    def counted(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(pretrain_mod, "train_pretrain_model", counted)
    return calls


def test_pretraining_is_cached_and_shared_by_runs_that_differ_in_theta(store, count_pretraining):
    a = run_cascade(_tiny(), store)
    b = run_cascade(_tiny(theta=0.1), store)
    assert len(count_pretraining) == 1
    key = pretrain_key(_tiny())
    assert pretrain_key(_tiny(theta=0.1)) == key
    assert [p.name for p in (store.root / "_pretrain").iterdir()] == [key]
    assert b.record.stats(1).get("shared_from") == a.record.dir.name  # model 1 shared as before
    assert a.record.stats(2)["pretrain_key"] == b.record.stats(2)["pretrain_key"] == key
    # with freeze_epochs == epochs, every model's body (but its batch norm) is the pre-trained one
    body, stats = pretrained_body(_tiny(), store)
    assert len(count_pretraining) == 1 and 0 <= stats["valid_accuracy"] <= 1
    for model in (*a.models, *b.models):
        convs = _body_tensors(model, bn=False)
        assert convs and all(torch.equal(v, body[k]) for k, v in convs.items())
    # another geometry is another pre-training
    run_cascade(_tiny(seed=1, K=1), store)
    assert len(count_pretraining) == 2


def test_a_second_process_waits_for_the_pretraining_in_progress(store, count_pretraining, monkeypatch):
    monkeypatch.setattr(pretrain_mod, "POLL_S", 0.05)
    cfg = _tiny()
    folder = store.pretrain_dir(pretrain_key(cfg))
    folder.mkdir(parents=True)
    lock = claim_run(folder)  # "another process" pre-trains now
    got = {}
    waiter = threading.Thread(target=lambda: got.update(body=pretrained_body(cfg, store)[0]))
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive() and not count_pretraining  # it waits rather than train a second copy
    lock.release()
    waiter.join(timeout=120)
    assert not waiter.is_alive() and len(count_pretraining) == 1 and got["body"]
