"""Input mistakes a notebook user makes with seqgan_core, each refused at the public entry
point with a ValueError or TypeError that names the argument and the fix. These ended in an
IndexError from inside torch's embedding (a device-side assert on CUDA), an unfold error,
or a silent wrong result: a float prefix truncated to ids, NaN weights sampling the last id
of the vocabulary for every token, a misspelt settings key dropped, a str scored by BLEU
character by character."""
from __future__ import annotations

import pytest
import torch

from seqgan_core import Discriminator, Generator, Oracle, rollout, sequence_nll
from seqgan_core.bleu import bleu, self_bleu
from seqgan_core.generators import GENERATORS
from seqgan_core.leakgan import LeakGANGenerator
from seqgan_core.methods import METHODS
from seqgan_core.rmc import RelationalMemoryGenerator

V, T = 12, 6
SMALL_D = dict(filter_sizes=(2, 3), num_filters=(4, 4))


def build(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "leakgan":
        return LeakGANGenerator(V, seq_len=T, d_filter_sizes=(2, 3), d_num_filters=(4, 4), step_size=2)
    if kind == "rmc":
        return RelationalMemoryGenerator(V, seq_len=T)
    return Generator(V, seq_len=T)


KINDS = sorted(GENERATORS)
OUT_OF_RANGE = [torch.full((2, T), V), torch.full((2, T), -1)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", OUT_OF_RANGE, ids=["past_vocab", "negative"])
def test_scoring_ids_outside_the_vocabulary_is_named(kind: str, bad: torch.Tensor) -> None:
    model = build(kind)
    with pytest.raises(ValueError, match=rf"tokens contains ids outside the vocabulary \[0, {V}\)"):
        sequence_nll(model, bad)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.token_log_probs(bad)


@pytest.mark.parametrize("kind", KINDS)
def test_float_or_non_tensor_tokens_are_refused(kind: str) -> None:
    model = build(kind)
    tokens = model.sample(3)
    with pytest.raises(TypeError, match="must hold integer token ids, got torch.float32"):
        sequence_nll(model, tokens.float())
    with pytest.raises(TypeError, match=r"must be a torch.Tensor of token ids, got ndarray .*torch.as_tensor"):
        sequence_nll(model, tokens.numpy())
    with pytest.raises(ValueError, match=r"one sequence: tokens.unsqueeze\(0\)"):
        model.token_log_probs(tokens[0])


@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_prefix_is_refused_not_truncated_or_indexed(kind: str) -> None:
    model = build(kind)
    with pytest.raises(TypeError, match="prefix must hold integer token ids"):
        model.sample(2, prefix=torch.tensor([1.7]))  # was silently sampled after id 1
    with pytest.raises(ValueError, match="prefix contains ids outside the vocabulary"):
        model.sample(2, prefix=torch.tensor([V + 3]))
    assert model.sample(2, prefix=torch.tensor([V - 1]))[:, 0].tolist() == [V - 1, V - 1]


@pytest.mark.parametrize("kind", KINDS)
def test_nan_weights_refuse_to_sample(kind: str) -> None:
    model = build(kind)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    # Sampling used to return id V - 1 at every position.
    with pytest.raises(ValueError, match="holds NaN or infinite values, so it cannot sample"):
        model.sample(3)


def test_oracle_nll_names_foreign_ids() -> None:
    oracle = Oracle(seed=0, vocab_size=V, seq_len=T)
    with pytest.raises(ValueError, match=rf"outside the vocabulary \[0, {V}\): smallest 0, largest {V + 4}"):
        oracle.nll(torch.tensor([[0, 1, 2, 3, 4, V + 4]]))


def test_discriminator_names_foreign_ids_and_short_rows() -> None:
    D = Discriminator(V, T, **SMALL_D)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        D.prob_real(torch.full((2, T), V))
    with pytest.raises(TypeError, match="integer token ids"):
        D.prob_real(torch.zeros(2, T))
    with pytest.raises(ValueError, match=r"rows of 2 tokens are shorter than this discriminator's widest filter \(3\)"):
        D.prob_real(torch.zeros(2, 2, dtype=torch.long))


def test_rollout_names_bad_samples_nan_policies_and_other_generators() -> None:
    G, D = build("lstm"), Discriminator(V, T, **SMALL_D)
    assert rollout(G, D, G.sample(2), n_rollouts=2).shape == (2, T)
    with pytest.raises(ValueError, match="samples contains ids outside the vocabulary"):
        rollout(G, D, torch.full((2, T), V), n_rollouts=2)
    with pytest.raises(TypeError, match="samples must hold integer token ids"):
        rollout(G, D, G.sample(2).float(), n_rollouts=2)
    for kind in ("rmc", "leakgan"):  # were AttributeError: no _teacher_forced_states
        with pytest.raises(TypeError, match=rf"rollout takes an LSTM generator .* got '{kind}'"):
            rollout(build(kind), D, G.sample(2), n_rollouts=2)
    samples = G.sample(2)
    with torch.no_grad():
        G.W_out[0, 0] = float("nan")
    with pytest.raises(ValueError, match="rollout policy parameter W_out holds NaN"):
        rollout(G, D, samples, n_rollouts=2)


def test_leakgan_scores_an_empty_batch_and_names_a_wrong_length() -> None:
    G = build("leakgan")
    assert G.token_log_probs(torch.zeros(0, T, dtype=torch.long)).shape == (0, T)  # was torch.cat([]) error
    with pytest.raises(ValueError, match=rf"LeakGAN scores rows of its seq_len \({T}\) tokens, got 4"):
        G.token_log_probs(torch.zeros(2, 4, dtype=torch.long))


def test_settings_from_dict_refuses_unknown_keys_and_defaults_missing_ones() -> None:
    settings = METHODS["seqgan"].Settings
    with pytest.raises(ValueError, match=r"has no setting 'reducton'; its settings are reduction, "):
        settings.from_dict({"reducton": "mean"})
    assert settings.from_dict({"reduction": "mean"}) == settings(reduction="mean")
    assert settings.from_dict({"rollout": {"n_rollouts": 4}}).rollout.n_rollouts == 4
    with pytest.raises(ValueError, match="has no setting 'n_rollout'"):
        settings.from_dict({"rollout": {"n_rollout": 4}})


def test_bleu_refuses_untokenised_strings_and_a_bare_sentence() -> None:
    with pytest.raises(TypeError, match=r"got the string 'the cat sat'; split it into tokens"):
        bleu(["the cat sat"], [["the", "cat", "sat"]], 2)  # was 0.0
    with pytest.raises(TypeError, match="split it into tokens"):
        self_bleu(["a b c", "a b d"], 2)  # was character-level Self-BLEU
    with pytest.raises(TypeError, match=r"a single sentence goes in a list: \[sentence\]"):
        bleu(torch.tensor([1, 2, 3]), [[1, 2, 3]], 2)
    assert bleu([["the", "cat", "sat"]], [["the", "cat", "sat"]], 2) == 1.0


def test_filter_widths_too_wide_for_short_sequences_name_the_argument_to_change() -> None:
    # The paper's widths reach 20: Discriminator(V, seq_len=8) said only "do not fit".
    with pytest.raises(ValueError, match=r"pass filter_sizes \(and num_filters, one count per width\) with widths in 1..8"):
        Discriminator(V, seq_len=8)
    with pytest.raises(ValueError, match=r"pass d_filter_sizes \(and d_num_filters"):
        LeakGANGenerator(V, seq_len=8)

