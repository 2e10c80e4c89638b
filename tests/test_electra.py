"""ELECTRA (Clark et al., 2020) in the one encoder: the sampling rules, the shared embeddings, the loss and its
counts, the presets' sizes, and end to end on real Brown text: pretrain → export (discriminator + generator)
→ transformers opens both with equal outputs → resume is exact → fine-tuning through every task family →
score through the generator → embed. The Hugging Face parity of the six Electra classes, in both directions,
is in tests/test_hf_parity.py with the other families'."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

import plmkit
from plmkit import ConfigError, UsageError
from plmkit.cli import main
from plmkit.config import generator_config, model_config_from_preset
from plmkit.models import PlmModel
from plmkit.models.electra import ElectraPretrainingModel, replace_masked, sample_tokens
from plmkit.models.protocol import LABELLED, TOKENS

V = 99


def tiny_electra(**kw) -> ElectraPretrainingModel:
    config = model_config_from_preset("electra-tiny", {"vocab_size": V, "hidden_size": 32, "num_attention_heads": 4,
                                                       "intermediate_size": 64, "embedding_size": 8,
                                                       "max_position_embeddings": 64, "generator_size": 0.5, **kw})
    torch.manual_seed(0)
    return ElectraPretrainingModel(config)


def masked_batch(seed: int = 0, B: int = 3, T: int = 12) -> dict[str, torch.Tensor]:
    """A batch as the rtd objective serves it: [MASK] (id 4) at the chosen positions, labels there, padding."""
    g = torch.Generator().manual_seed(seed)
    original = torch.randint(5, V, (B, T), generator=g)
    chosen = torch.rand(B, T, generator=g) < 0.3
    chosen[:, 0] = True  # at least one masked token per row
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 9:] = 0
    chosen &= mask.bool()
    ids = original.masked_fill(chosen, 4)
    labels = original.masked_fill(~chosen, -100)
    types = torch.zeros(B, T, dtype=torch.long)
    types[:, 6:] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask, "token_type_ids": types}


# --------------------------------------------------------------------------- sizes and presets
def test_presets_have_the_papers_sizes_and_the_generator_is_a_fraction_of_them():
    small, base = model_config_from_preset("electra-small"), model_config_from_preset("electra-base")
    assert (small.num_hidden_layers, small.hidden_size, small.num_attention_heads, small.embedding_size) == (12, 256, 4, 128)
    assert (base.num_hidden_layers, base.hidden_size, base.num_attention_heads, base.embed_dim) == (12, 768, 12, 768)
    # Table 6 of the paper: generator size 1/4 (Small), 1/3 (Base) of hidden size, FFN size and heads
    g = generator_config(small)
    assert (g.hidden_size, g.intermediate_size, g.num_attention_heads, g.embed_dim) == (64, 256, 1, 128)
    g = generator_config(base)
    assert (g.hidden_size, g.intermediate_size, g.num_attention_heads, g.embed_dim) == (256, 1024, 4, 768)
    assert small.rtd_weight == 50.0 and not g.discriminator
    # The paper's Table 1: ELECTRA-Small 14M, ELECTRA-Base 110M parameters (the discriminators)
    for config, published in ((small, 14e6), (base, 110e6)):
        with torch.device("meta"):
            n = PlmModel(config, task="pretraining").num_parameters()
        assert abs(n - published) / published < 0.05, (n, published)
    # a config diff on the encoder: the same Block class, factorized embeddings, no pooler
    with torch.device("meta"):
        model = PlmModel(small)
    assert model.body.pooler is None and model.body.embed_proj.weight.shape == (256, 128)


def test_the_objective_and_the_layout_must_agree():
    from plmkit.data.objectives import data_config_from_preset
    from plmkit.training.pretrain import build_model_config

    class Tok:
        vocab_size, pad_token_id, bos_token_id, eos_token_id, sep_token_id = V, 0, None, None, 3

    data = data_config_from_preset("electra-tiny")
    assert (data.objective, data.pair, data.masking, data.replace_mask, data.replace_random) == \
        ("rtd", "none", "dynamic", 0.85, 0.0)
    assert build_model_config("electra-tiny", {}, Tok(), 32, data=data).discriminator
    with pytest.raises(ConfigError, match="discriminator=true does not fit model_type 'bert'"):
        build_model_config("bert-tiny", {}, Tok(), 32, data=data_config_from_preset("bert-tiny", {
            "objective": "rtd", "pair": "none"}))
    with pytest.raises(ConfigError, match="contradicts data.objective"):
        build_model_config("electra-tiny", {"discriminator": False}, Tok(), 32, data=data)
    with pytest.raises(ConfigError, match="has no sentence-pair task"):
        data_config_from_preset("electra-tiny", {"pair": "nsp"})
    # the MLM objective on the electra layout trains a plain masked LM (ElectraForMaskedLM)
    mlm = build_model_config("electra-tiny", {}, Tok(), 32, data=data_config_from_preset("electra-tiny",
                                                                                          {"objective": "mlm"}))
    assert not mlm.discriminator and PlmModel(mlm, task="pretraining").active_heads == ("mlm",)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5), st.booleans(), st.none(),
                 st.text(max_size=5), st.fractions(0, 2).map(float)))
def test_generator_size_from_outside_is_a_valid_generator_or_a_config_error(value):
    """--set model.generator_size=…: a fraction in (0, 1] (or null: the default) gives a generator that can be
    built; anything else is a ConfigError, never another exception."""
    valid = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                              and math.isfinite(value) and 0 < value <= 1)
    try:
        config = model_config_from_preset("electra-base", {"generator_size": value})
    except ConfigError:
        assert not valid, value
        return
    assert valid, value
    g = generator_config(config)
    assert 1 <= g.hidden_size <= config.hidden_size and g.hidden_size % g.num_attention_heads == 0
    assert 1 <= g.num_attention_heads <= config.num_attention_heads and g.embed_dim == config.embed_dim


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 100), st.text(max_size=4)))
def test_rtd_weight_from_outside_is_positive_or_a_config_error(value):
    try:
        config = model_config_from_preset("electra-tiny", {"rtd_weight": value})
    except ConfigError:
        return
    assert config.rtd_weight > 0 and math.isfinite(config.rtd_weight)


JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-3, 300), st.floats(allow_nan=True),
                              st.sampled_from(["first", "last", "gelu", "tanh", "relu", "pooled", "first-token",
                                               "last-token", "none", "nsp", "sop", ""])),
                    lambda inner: st.lists(inner, max_size=2), max_leaves=3)
ELECTRA_KEYS = ("summary_type", "summary_use_proj", "summary_activation", "summary_last_dropout",
                "summary_proj_to_labels", "summary_first_dropout", "embedding_size", "classifier_dropout")
PLMKIT_KEYS = ("classifier_pooling", "choice_pooling", "head_act", "mlm_act", "pair_head", "discriminator")


def test_an_electra_config_json_from_outside_loads_or_is_a_plmkit_error(tmp_path):
    """Any value of the keys ELECTRA adds (transformers' summary_* and embedding_size, plmkit's head fields under
    "plmkit") loads a model or ends in a PlmkitError naming the problem — never another exception."""
    from plmkit import PlmkitError

    folder = tmp_path / "electra"
    tiny_electra().discriminator.save_pretrained(folder)
    base = json.loads((folder / "config.json").read_text())

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.dictionaries(st.sampled_from(ELECTRA_KEYS), JSON, max_size=3),
           st.dictionaries(st.sampled_from(PLMKIT_KEYS), JSON, max_size=2))
    def check(top, ours):
        d = {**base, **top, "plmkit": {**base["plmkit"], "model": ours}}
        (folder / "config.json").write_text(json.dumps(d))
        try:
            model = plmkit.from_pretrained(folder, meta=True)
        except PlmkitError:
            return
        assert model.config.model_type == "electra" and all(p.is_meta for p in model.parameters())

    check()


# --------------------------------------------------------------------------- the pretraining step
def test_samples_follow_the_generators_softmax():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, 0.5]]).expand(40000, 5)
    rng = torch.Generator().manual_seed(0)
    counts = torch.bincount(sample_tokens(logits, rng), minlength=5).double() / 40000
    expected = torch.softmax(logits[0].double(), -1)
    # 4 standard errors of a frequency near 0.45 over 40k draws is 0.01: a biased sampler is caught
    assert torch.allclose(counts, expected, atol=0.01), (counts, expected)
    # no gradient flows through sampling
    leaf = torch.randn(7, 5, requires_grad=True)
    assert not sample_tokens(leaf * 2).requires_grad


def test_a_sample_equal_to_the_original_token_counts_as_original():
    ids = torch.tensor([[1, 4, 4, 7, 4]])
    labels = torch.tensor([[-100, 11, 12, -100, 13]])
    corrupted, replaced = replace_masked(ids, labels, torch.tensor([11, 20, 13]))  # one real replacement
    assert corrupted.tolist() == [[1, 11, 20, 7, 13]]
    assert replaced.tolist() == [[0, 0, 1, 0, 0]]
    # a generator that is sure of the original token (42 at every masked position) replaces nothing
    model = tiny_electra()
    batch = masked_batch()
    mask = batch["labels"] != -100
    batch["labels"][mask] = 42
    with torch.no_grad():
        model.generator.heads["mlm"].bias.fill_(-1e4)
        model.generator.heads["mlm"].bias[42] = 0.0
    out = model(**batch)
    assert int(out.rtd_labels.sum()) == 0 and (out.corrupted_ids[mask] == 42).all()
    assert torch.equal(out.corrupted_ids[~mask], batch["input_ids"][~mask])


def test_embeddings_are_shared_and_gradients_go_where_the_paper_sends_them():
    model = tiny_electra(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    gen, disc = model.generator, model.discriminator
    assert gen.body.embeddings is disc.body.embeddings  # token, position, segment tables and their LayerNorm
    assert gen.body.embed_proj.weight.shape == (16, 8) and disc.body.embed_proj.weight.shape == (32, 8)
    assert gen.config.hidden_size == 16 and gen.config.num_attention_heads == 2
    # the generator's MLM decoder is the shared token table
    names = {n for n, _ in model.named_parameters()}
    assert not any(n.startswith("generator.body.embeddings.") for n in names)  # counted once
    batch = masked_batch()
    out = model(**batch)
    # RTD alone: no gradient reaches the generator's own weights (sampling is not differentiable)
    out.weighted_rtd_loss.backward(retain_graph=True)
    own = {n: p for n, p in gen.named_parameters() if not n.startswith("body.embeddings.")}
    assert all(p.grad is None or not p.grad.any() for p in own.values())
    assert disc.body.embeddings.word.weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    # MLM alone: none reaches the discriminator's own weights; both reach the shared embeddings
    out.mlm_loss.backward()
    assert all(p.grad is None for n, p in disc.named_parameters() if not n.startswith("body.embeddings."))
    assert gen.body.embed_proj.weight.grad.abs().sum() > 0 and disc.body.embeddings.word.weight.grad.abs().sum() > 0


def test_loss_is_mlm_plus_lambda_rtd_with_each_term_a_mean_over_its_count():
    model = tiny_electra(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).eval()
    batch = masked_batch(1)
    out = model(**batch)
    torch.testing.assert_close(out.loss, out.mlm_loss + 50.0 * out.rtd_loss)
    counts = model.loss_counts(batch)
    assert counts[LABELLED] == int((batch["labels"] != -100).sum()) and counts[TOKENS] == int(batch["attention_mask"].sum())
    terms = {t.name: t for t in out.loss_terms}
    assert (terms["mlm_loss"].count, terms["weighted_rtd_loss"].count, terms["rtd_loss"].count) == (LABELLED, TOKENS, TOKENS)
    assert terms["mlm_loss"].in_loss and terms["weighted_rtd_loss"].in_loss and not terms["rtd_loss"].in_loss
    assert terms["rtd_loss"].logged and not terms["weighted_rtd_loss"].logged
    # the RTD term is the binary cross-entropy averaged over the real tokens, padding excluded
    real = batch["attention_mask"].bool()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(out.logits[real], out.rtd_labels[real].float(),
                                                               reduction="sum")
    torch.testing.assert_close(out.rtd_loss * counts[TOKENS], bce)
    # eval mode samples from a fixed seed: the same batch gives the same loss, and the global RNG is untouched
    state = torch.random.get_rng_state()
    assert torch.equal(model(**batch).loss, out.loss) and torch.equal(torch.random.get_rng_state(), state)
    # λ is a config field
    heavier = tiny_electra(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, rtd_weight=10.0).eval()
    out10 = heavier(**batch)
    torch.testing.assert_close(out10.loss, out10.mlm_loss + 10.0 * out10.rtd_loss)


# --------------------------------------------------------------------------- end to end on Brown
BROWN_FILES = [f"c{g}{i:02d}" for g in "abfgjkn" for i in range(1, 5)]


@pytest.fixture(scope="module")
def corpus(data_dir, tmp_path_factory) -> Path:
    from plmkit.data import prepare_corpus, read_sentences
    from plmkit.tokenization import train_tokenizer

    root = tmp_path_factory.mktemp("electra-data")
    files = [data_dir / "corpora" / "brown" / f for f in BROWN_FILES]
    tok = train_tokenizer("wordpiece", read_sentences(files), vocab_size=2000)
    tok.save_pretrained(root / "tok")
    prepare_corpus(files, root / "prep", tokenizer=root / "tok")
    return root / "prep"


def pretrain_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["pretrain", "--preset", "electra-tiny", "--data", str(corpus), "--out", str(out), "--batch-size", "8",
            "--max-length", "64", "--log-every", "1", "--no-progress", "--seed", "3", *extra]


def records(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def exported(corpus, tmp_path_factory) -> Path:
    """electra-tiny pretrained for 40 steps on Brown, exported."""
    root = tmp_path_factory.mktemp("electra-run")
    assert main(pretrain_args(corpus, root / "run", "--max-steps", "40", "--lr", "2e-3", "--warmup", "4",
                              "--eval-every", "20")) == 0
    assert main(["export", str(root / "run"), "--out", str(root / "model")]) == 0
    return root / "model"


def test_pretraining_learns_both_tasks_and_exports_discriminator_and_generator(exported):
    recs = records(exported.parent / "run")
    train = [r for r in recs if "loss" in r]
    evals = [r for r in recs if "eval_rtd_loss" in r]
    assert {"mlm_loss", "rtd_loss"} <= set(train[0]) and [r["step"] for r in evals] == [20, 40]
    assert train[0]["loss"] == pytest.approx(train[0]["mlm_loss"] + 50 * train[0]["rtd_loss"], rel=1e-4)
    last = evals[-1]
    assert last["eval_mlm_loss"] < train[0]["mlm_loss"] - 0.5  # the generator learned
    # the discriminator learned at least how often tokens are replaced: its loss is down from ln 2 to the
    # entropy of the replaced fraction (a model that knows nothing about the tokens), or below
    p = last["eval_replaced_fraction"]
    assert 0.05 < p < 0.2 and last["eval_rtd_loss"] < -(p * math.log(p) + (1 - p) * math.log(1 - p)) + 0.01
    assert train[0]["rtd_loss"] > 0.6
    # export: the discriminator here, the generator beside it, both inside the one folder plmkit owns
    marker = json.loads((exported / ".plmkit-output.json").read_text())
    assert "generator" in marker["entries"] and (exported / "generator" / "tokenizer.json").is_file()
    cfg = json.loads((exported / "config.json").read_text())
    assert cfg["architectures"] == ["ElectraForPreTraining"] and cfg["plmkit"]["electra"]["generator"] == "generator"
    gen_cfg = json.loads((exported / "generator" / "config.json").read_text())
    assert gen_cfg["architectures"] == ["ElectraForMaskedLM"] and gen_cfg["hidden_size"] == 32
    assert gen_cfg["embedding_size"] == cfg["embedding_size"] == 128


def test_transformers_opens_both_folders_with_no_missing_keys_and_equal_outputs(exported):
    T = pytest.importorskip("transformers")
    tok = plmkit.load_tokenizer(exported)
    batch = tok(["The jury said it did find that the city was well run.", "It rained."])
    for folder, cls, task in ((exported, T.ElectraForPreTraining, "pretraining"),
                              (exported / "generator", T.ElectraForMaskedLM, "masked-lm")):
        theirs, info = cls.from_pretrained(folder, output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
        ours = plmkit.from_pretrained(folder)
        assert ours.task == task
        with torch.no_grad():
            a, b = theirs.eval()(**batch).logits, ours(**batch).logits
        assert a.shape == b.shape and (a - b).abs().max() <= 1e-5
    # the two exported models share the embedding tables they were trained with
    d, g = load_file(str(exported / "model.safetensors")), load_file(str(exported / "generator" / "model.safetensors"))
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings", "LayerNorm"):
        keys = [k for k in d if k.startswith(f"electra.embeddings.{name}.")]
        assert keys and all(torch.equal(d[k], g[k]) for k in keys)


def test_resume_is_exact(corpus, tmp_path):
    """The generator's samples come from the trainer's random stream, which the checkpoint restores."""
    assert main(pretrain_args(corpus, tmp_path / "a", "--max-steps", "6")) == 0
    assert main(pretrain_args(corpus, tmp_path / "b", "--max-steps", "6", "--stop-after", "3")) == 0
    assert main(pretrain_args(corpus, tmp_path / "b", "--max-steps", "6", "--resume")) == 0
    la = [(r["step"], r["loss"], r["rtd_loss"]) for r in records(tmp_path / "a") if "loss" in r]
    lb = [(r["step"], r["loss"], r["rtd_loss"]) for r in records(tmp_path / "b") if "loss" in r]
    assert la == lb and len(la) == 6
    for sub in ("model.safetensors", "generator/model.safetensors"):
        wa, wb = (load_file(str(sorted((r / "checkpoints").glob("step-*"))[-1] / sub)) for r in (tmp_path / "a", tmp_path / "b"))
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), sub


FAST = ["--epochs", "1", "--batch-size", "8", "--lr", "1e-3", "--max-length", "64", "--no-tensorboard",
        "--max-steps", "2"]


def _quiet_main(*argv) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return main([str(a) for a in argv])


def test_finetunes_through_every_task_family(exported, data_dir, tmp_path):
    """Fine-tuning starts from the exported discriminator: sentence pairs (RTE), spans (SQuAD), choices (SWAG),
    tags (CoNLL NER); each result opens in transformers' Electra class for its task."""
    T = pytest.importorskip("transformers")
    rte = tmp_path / "rte.tsv"
    rte.write_text("".join((data_dir / "glue/RTE/train.tsv").read_text().splitlines(keepends=True)[:33]))
    squad = json.loads((data_dir / "squad/squad-v1.1-dev-part-a.json").read_text())
    squad["data"] = [dict(squad["data"][0], paragraphs=squad["data"][0]["paragraphs"][:2])]
    (tmp_path / "squad.json").write_text(json.dumps(squad))
    rng = np.random.default_rng(0)
    words = "the a man dog plays runs red big house car river city music game".split()
    rows = [",video-id,fold-ind,startphrase,sent1,sent2,gold-source,ending0,ending1,ending2,ending3,label"]
    for i in range(16):
        ends = [" ".join(rng.choice(words, 4)) for _ in range(4)]
        rows.append(f"{i},v{i},{i},x,{' '.join(rng.choice(words, 5))},the man,gold,{','.join(ends)},{i % 4}")
    (tmp_path / "swag.csv").write_text("\n".join(rows) + "\n")
    blocks = [b for b in (data_dir / "conll2003/eng.train").read_text().split("\n\n") if b.strip()]
    (tmp_path / "ner.txt").write_text("\n\n".join(blocks[1:25]) + "\n")
    cases = [("rte", tmp_path / "rte.tsv", [], "ElectraForSequenceClassification"),
             ("squad", tmp_path / "squad.json", ["--doc-stride", "24"], "ElectraForQuestionAnswering"),
             ("swag", tmp_path / "swag.csv", [], "ElectraForMultipleChoice"),
             ("conll-ner", tmp_path / "ner.txt", [], "ElectraForTokenClassification")]
    for task, train, extra, cls in cases:
        out = tmp_path / task
        assert _quiet_main("finetune", task, "--model", exported, "--train", train, "--eval", train, "--out", out,
                           *FAST, *extra) == 0, task
        assert json.loads((out / "metrics.json").read_text())["metrics"], task
        assert json.loads((out / "config.json").read_text())["architectures"] == [cls]
        _, info = getattr(T, cls).from_pretrained(out, output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"], (task, info)
    # the fine-tuned folder evaluates and predicts like any other
    assert _quiet_main("evaluate", "rte", "--model", tmp_path / "rte", "--eval", rte, "--out", tmp_path / "m.json") == 0
    test = tmp_path / "test.tsv"
    test.write_text("index\tsentence1\tsentence2\n0\tA man plays.\tA person plays.\n")
    assert _quiet_main("predict", "rte", "--model", tmp_path / "rte", "--input", test, "--out", tmp_path / "p.tsv") == 0
    assert len((tmp_path / "p.tsv").read_text().splitlines()) == 2


def test_score_uses_the_generator_and_embed_the_discriminator(exported, tmp_path, capsys):
    texts = ["The jury said it did find that the city was well run.", "Run well city the jury did that said."]
    through_discriminator = plmkit.score(str(exported), texts)
    through_generator = plmkit.score(str(exported / "generator"), texts)
    assert [s.log_likelihood for s in through_discriminator] == [s.log_likelihood for s in through_generator]
    assert "generator" in through_discriminator.model and through_discriminator[0].num_tokens > 5
    f = tmp_path / "s.txt"
    f.write_text("\n".join(texts) + "\n")
    capsys.readouterr()
    assert main(["score", "--model", str(exported), str(f)]) == 0
    assert "pseudo-log-likelihood" in capsys.readouterr().out
    # a discriminator without its generator: a clear error, no traceback
    alone = tmp_path / "alone"
    shutil.copytree(exported, alone, ignore=shutil.ignore_patterns("generator", ".plmkit-*"))
    with pytest.raises(UsageError, match=r"ELECTRA discriminator.*generator.*does not exist"):
        plmkit.score(str(alone), texts)
    assert main(["score", "--model", str(alone), str(f)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "is an ELECTRA discriminator" in err and "Traceback" not in err
    # embed reads the discriminator's layers (the model fine-tuning starts from)
    out = tmp_path / "v.npy"
    assert main(["embed", "--model", str(exported), "--out", str(out), str(f)]) == 0
    vectors = np.load(out)
    assert vectors.shape[1] == 128 and np.isfinite(vectors).all()


def test_a_damaged_generator_folder_is_refused_on_resume(corpus, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(pretrain_args(corpus, run, "--max-steps", "4", "--stop-after", "2")) == 0
    newest = sorted((run / "checkpoints").glob("step-*"))[-1]
    state = load_file(str(newest / "generator" / "model.safetensors"))
    from safetensors.torch import save_file

    state["electra.embeddings.word_embeddings.weight"] = state["electra.embeddings.word_embeddings.weight"] + 1
    save_file(state, str(newest / "generator" / "model.safetensors"))
    capsys.readouterr()
    # the checkpoint's manifest covers generator/: the changed file fails its checksum
    assert main(pretrain_args(corpus, run, "--max-steps", "4", "--resume")) != 0
    err = " ".join(capsys.readouterr().err.split())
    assert "generator/model.safetensors does not match its recorded checksum" in err and "Traceback" not in err
    # a generator that passes its checksum but does not share the discriminator's embeddings is refused too
    from plmkit.training.checkpoint import STATE_NAME, sha256

    trainer_state = json.loads((newest / STATE_NAME).read_text())
    trainer_state["files"]["generator/model.safetensors"] = sha256(newest / "generator" / "model.safetensors")
    (newest / STATE_NAME).write_text(json.dumps(trainer_state))
    assert main(pretrain_args(corpus, run, "--max-steps", "4", "--resume")) != 0
    err = capsys.readouterr().err
    assert "embeddings" in err and "do not belong together" in err and "Traceback" not in err
