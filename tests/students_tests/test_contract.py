"""Contract tests every student must pass (allennlp ModelTestCase style): it trains, every
parameter gets a gradient, it saves/reloads and predicts the same, and padding does not change
its predictions. Tiny configs, one thread.

Run: OMP_NUM_THREADS=1 .venv/bin/python -m pytest tests/students_tests -q
"""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from students import STUDENTS, TextCNNConfig, build_student, config_to_dict, student_from_config

torch.set_num_threads(1)

VOCAB = 50
PAD = 0
T = 10  # longest row in the test batches

TINY = {
    "bilstm": dict(embed_dim=8, width=8, depth=2, mlp_hidden=16),
    "cnn": dict(embed_dim=8, width=8, depth=3),  # widths (3, 4, 5): wider than a length-1 row
    "transformer": dict(width=16, depth=2, heads=2, ff_dim=32, max_len=T),
    # BERT's layout, which a transformer started from its teacher's layers has (--encoder-init teacher)
    "transformer-post": dict(width=16, depth=2, heads=2, ff_dim=32, max_len=T, norm="post"),
}
CASES = [(name, pair) for name in TINY for pair in (False, True)]
IDS = [f"{name}-{'pair' if pair else 'single'}" for name, pair in CASES]
# the same students with a low-rank (factored) token table, as distill.compress makes them
RANKED = [(name, pair, rank) for name, pair in CASES for rank in (0, 3)]
RANKED_IDS = [f"{i}-rank{rank}" for i in IDS for rank in (0, 3)]


def student(name: str) -> str:
    """The student a TINY entry is a variant of."""
    return name.split("-")[0]


def tiny(name: str, pair: bool, **overrides) -> torch.nn.Module:
    return build_student(
        student(name), vocab_size=VOCAB, num_labels=2, pair=pair, **{**TINY[name], **overrides}
    )


def right_pad(rows: list[list[int]], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of token ids -> right-padded input_ids and attention_mask, both (len(rows), width)."""
    ids = torch.full((len(rows), width), PAD, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def random_batch(g: torch.Generator, lengths: list[int], pair: bool, width: int = T):
    """Random rows of the given lengths; for pairs the b side gets the lengths in reverse."""

    def rows(lens):
        return [torch.randint(1, VOCAB, (n,), generator=g).tolist() for n in lens]

    if not pair:
        return right_pad(rows(lengths), width)
    a, am = right_pad(rows(lengths), width)
    b, bm = right_pad(rows(lengths[::-1]), width)
    return torch.stack([a, b], dim=1), torch.stack([am, bm], dim=1)  # (B, 2, T)


def marker_task(g: torch.Generator, n: int, pair: bool):
    """Separable toy task: a marker token (2 or 3) hidden among random tokens decides the label;
    for pairs the label says whether both sides carry the same marker."""
    lengths = torch.randint(2, T + 1, (n,), generator=g).tolist()
    ids, mask = random_batch(g, lengths, pair)
    ids = ids.clamp(min=4) * mask  # keep tokens 1..3 out of the filler (pads stay 0)
    markers = torch.randint(2, 4, (n, 2 if pair else 1), generator=g)
    for i, n_real in enumerate(lengths):
        for side in range(markers.shape[1]):
            row = ids[i, side] if pair else ids[i]
            real = n_real if side == 0 else lengths[::-1][i]
            row[torch.randint(0, real, (1,), generator=g)] = markers[i, side]
    labels = (markers[:, 0] == markers[:, 1]).long() if pair else (markers[:, 0] == 3).long()
    return ids, mask, labels


@pytest.mark.parametrize("name,pair", CASES, ids=IDS)
def test_it_trains(name, pair):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = tiny(name, pair, dropout=0.0)
    ids, mask, labels = marker_task(g, 32, pair)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(ids, mask), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("name,pair,rank", RANKED, ids=RANKED_IDS)
def test_every_parameter_gets_a_gradient(name, pair, rank):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    model = tiny(name, pair, embedding_rank=rank)
    ids, mask = random_batch(g, [T, 1, 3, 7], pair)
    model(ids, mask).logsumexp(dim=-1).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{pname} got no gradient"
    # the pad row of the token table (of its lookup factor, when factored) is frozen by padding_idx
    table = model.embedding.lookup if rank else model.embedding
    assert table.weight.grad[PAD].abs().sum() == 0


def test_a_cnn_saved_before_context_layers_existed_reloads_without_them(tmp_path):
    """Its config.json has no context_layers: it was Kim's CNN then, whatever today's default is."""
    torch.manual_seed(0)
    model = tiny("cnn", False, context_layers=0).eval()
    saved = config_to_dict(model)
    del saved["context_layers"]
    again = student_from_config("cnn", saved)
    assert TextCNNConfig.context_layers != 0 and again.config == model.config
    again.load_state_dict(model.state_dict())  # strict: the same weights, no context convolutions
    assert student_from_config("cnn", config_to_dict(tiny("cnn", False))).config.context_layers == 3


@pytest.mark.parametrize("name,pair,rank", RANKED, ids=RANKED_IDS)
def test_save_reload_predicts_the_same(name, pair, rank, tmp_path):
    torch.manual_seed(0)
    model = tiny(name, pair, embedding_rank=rank).eval()
    save_file(model.state_dict(), tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(config_to_dict(model)))

    torch.manual_seed(1)  # a different init, so the reload has to restore the weights
    again = student_from_config(student(name), json.loads((tmp_path / "config.json").read_text()))
    again.load_state_dict(load_file(tmp_path / "model.safetensors"))
    again.eval()
    assert again.config == model.config

    ids, mask = random_batch(torch.Generator().manual_seed(2), [T, 4, 1], pair)
    with torch.no_grad():
        torch.testing.assert_close(again(ids, mask), model(ids, mask), rtol=0, atol=0)


@pytest.mark.parametrize("name,pair,rank", RANKED, ids=RANKED_IDS)
@pytest.mark.parametrize("extra", [0, 3])
def test_padding_does_not_change_predictions(name, pair, rank, extra):
    torch.manual_seed(0)
    more = {"max_len": T + 3} if student(name) == "transformer" else {}
    assert_rows_alone_as_in_a_batch(tiny(name, pair, embedding_rank=rank, **more), pair, [1, 5, T, 2, 8], extra, seed=3)


def assert_rows_alone_as_in_a_batch(model, pair: bool, lengths: list[int], extra: int, seed: int) -> None:
    """Each row of a right-padded batch (extra columns of padding beyond the longest) gets the logits it
    gets alone, trimmed to its own length."""
    model.eval()
    ids, mask = random_batch(torch.Generator().manual_seed(seed), lengths, pair, width=T + extra)
    with torch.no_grad():
        batched = model(ids, mask)
        for i in range(len(lengths)):
            n = int(mask[i].sum(dim=-1).max())  # the row's own longest side: no padding left over
            alone = model(ids[i : i + 1, ..., :n], mask[i : i + 1, ..., :n])
            torch.testing.assert_close(batched[i : i + 1], alone, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name,pair", CASES, ids=IDS)
def test_all_padding_row_is_finite(name, pair):
    torch.manual_seed(0)
    model = tiny(name, pair).eval()
    ids, mask = random_batch(torch.Generator().manual_seed(4), [4, 0], pair)
    with torch.no_grad():
        assert torch.isfinite(model(ids, mask)).all()


def test_pair_model_rejects_single_inputs():
    ids, mask = random_batch(torch.Generator().manual_seed(5), [3], pair=False)
    with pytest.raises(ValueError, match=r"\(B, 2, T\)"):
        tiny("cnn", pair=True)(ids, mask)


# ---- sizes ------------------------------------------------------------------------------------


def bilstm_count(E, H, layers, M, n, pair):
    lstm = sum(2 * (4 * H * (d_in + H) + 8 * H) for d_in in [E] + [2 * H] * (layers - 1))
    feat = 2 * H * (4 if pair else 1)
    return lstm + feat * M + M + M * n + n


def cnn_count(E, F, widths, n, pair, context=TextCNNConfig.context_layers):
    feat = F * len(widths) * (4 if pair else 1)
    return context * (E * E * 3 + E) + sum(F * E * k + F for k in widths) + feat * n + n


def transformer_count(d, layers, ff, M, n, pair):
    block = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (d * ff + ff) + (ff * d + d)
    feat = d * (4 if pair else 1)
    return layers * block + 2 * d + feat * M + M + M * n + n


@pytest.mark.parametrize("pair", [False, True])
@pytest.mark.parametrize("width,depth", [(8, 1), (8, 2), (16, 1), (16, 3)])
def test_width_and_depth_set_the_size(width, depth, pair):
    kw = dict(vocab_size=VOCAB, num_labels=3, pair=pair, width=width, depth=depth)
    m = build_student("bilstm", embed_dim=8, mlp_hidden=16, **kw)
    assert m.num_parameters(exclude_embeddings=True) == bilstm_count(8, width, depth, 16, 3, pair)
    m = build_student("cnn", embed_dim=8, **kw)
    widths = tuple(range(3, 3 + depth))
    assert m.config.filter_widths == widths
    assert m.num_parameters(exclude_embeddings=True) == cnn_count(8, width, widths, 3, pair)
    m = build_student("transformer", heads=2, **kw)
    expect = transformer_count(width, depth, 4 * width, width, 3, pair)
    assert m.num_parameters(exclude_embeddings=True) == expect
    assert m.num_parameters() == expect + VOCAB * width + m.config.max_len * width


@pytest.mark.parametrize("name", list(STUDENTS))
def test_embeddings_are_excluded(name):
    model = tiny(name, False)
    assert model.num_parameters(exclude_embeddings=True) < model.num_parameters()
    total = sum(p.numel() for p in model.parameters())
    assert model.num_parameters() == total


@pytest.mark.parametrize("name", list(STUDENTS))
def test_a_factored_table_counts_as_embeddings_and_costs_r_times_v_plus_d(name):
    full, low = tiny(name, False), tiny(name, False, embedding_rank=3)
    d = full.config.embed_dim
    assert low.num_parameters(exclude_embeddings=True) == full.num_parameters(exclude_embeddings=True)
    assert low.num_parameters() - low.num_parameters(exclude_embeddings=True) == \
        full.num_parameters() - full.num_parameters(exclude_embeddings=True) - VOCAB * d + 3 * (VOCAB + d)


def test_default_bilstm_matches_tang_et_al():
    model = build_student("bilstm", vocab_size=30522, num_labels=2)
    assert model.config.hidden == 150  # Tang et al.'s hidden size on SST-2
    assert 9_700_000 <= model.num_parameters() <= 10_000_000
    assert 600_000 <= model.num_parameters(exclude_embeddings=True) <= 700_000


def test_transformer_embedding_projection():
    model = build_student("transformer", vocab_size=VOCAB, num_labels=2, width=16, embed_dim=8)
    assert model.embedding.weight.shape == (VOCAB, 8)
    ids, mask = random_batch(torch.Generator().manual_seed(6), [3, 5], pair=False)
    assert model(ids, mask).shape == (2, 2)


# ---- config errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,overrides,field",
    [
        ("bilstm", dict(num_labels=1), "num_labels"),
        ("bilstm", dict(pad_id=50), "pad_id"),
        ("bilstm", dict(dropout=1.0), "dropout"),
        ("bilstm", dict(hidden=0), "hidden"),
        ("bilstm", dict(embed_dim=0), "embed_dim"),
        ("cnn", dict(filter_widths=()), "filter_widths"),
        ("cnn", dict(num_filters=0), "num_filters"),
        ("cnn", dict(vocab_size=0), "vocab_size"),
        ("transformer", dict(layers=5), "layers"),
        ("transformer", dict(layers=0), "layers"),
        ("transformer", dict(d_model=30, heads=4), "d_model"),
        ("transformer", dict(pair="yes"), "pair"),
        ("bilstm", dict(embedding_rank=300), "embedding_rank"),
        ("cnn", dict(embedding_rank=-1), "embedding_rank"),
    ],
)
def test_bad_config_names_the_field(name, overrides, field):
    config = {"vocab_size": VOCAB, "num_labels": 2, **overrides}
    with pytest.raises(ValueError, match=field):
        STUDENTS[name].config_class(**config)


def test_build_student_errors():
    names = "bilstm, cnn, transformer"
    with pytest.raises(ValueError, match=f"unknown student 'rnn'; choose one of: {names}$"):
        build_student("rnn", vocab_size=VOCAB, num_labels=2)
    with pytest.raises(ValueError, match="hiden.*valid fields:.*hidden"):
        build_student("bilstm", vocab_size=VOCAB, num_labels=2, hiden=8)
    with pytest.raises(ValueError, match="filter_widths"):
        build_student("cnn", vocab_size=VOCAB, num_labels=2, depth=2, filter_widths=(2, 3))
    with pytest.raises(ValueError, match="depth"):
        build_student("cnn", vocab_size=VOCAB, num_labels=2, depth=0)
    with pytest.raises(ValueError, match="layers"):
        build_student("transformer", vocab_size=VOCAB, num_labels=2, depth=5)
    with pytest.raises(ValueError, match="unknown student"):
        student_from_config("rnn", {})
    with pytest.raises(ValueError, match="bogus"):
        student_from_config("cnn", {"vocab_size": VOCAB, "num_labels": 2, "bogus": 1})


def test_cnn_with_mlp_head():
    torch.manual_seed(0)
    model = tiny("cnn", True, mlp_hidden=16)
    ids, mask = random_batch(torch.Generator().manual_seed(7), [1, 6, T], pair=True)
    model(ids, mask).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    feat = 4 * 8 * 3  # pair x num_filters x widths
    linear, mlp = feat * 2 + 2, feat * 16 + 16 + 16 * 2 + 2
    expect = cnn_count(8, 8, (3, 4, 5), 2, True) - linear + mlp
    assert model.num_parameters(exclude_embeddings=True) == expect


@pytest.mark.parametrize("pair", [False, True])
def test_cnn_context_layers_train_count_and_ignore_padding(pair):
    torch.manual_seed(0)
    model = tiny("cnn", pair, context_layers=2, depth=1)  # one filter width (3) over 7 tokens of context
    ids, mask = random_batch(torch.Generator().manual_seed(8), [1, 6, T], pair=pair)
    model(ids, mask).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    E = 8
    assert model.num_parameters(exclude_embeddings=True) == cnn_count(E, 8, (3,), 2, pair, context=2)
    plain = tiny("cnn", pair, context_layers=0, depth=1)  # Kim's CNN
    assert plain.num_parameters(exclude_embeddings=True) == cnn_count(E, 8, (3,), 2, pair, context=0)
    assert_rows_alone_as_in_a_batch(model, pair, [1, 5, T, 2], extra=3, seed=9)


def test_cnn_context_layers_see_past_the_filter_width():
    """Without context layers a width-3 filter's first outputs (inputs 0-2) do not see token 7; with
    three (dilations 1, 2, 4: 7 tokens each side) they do."""
    torch.manual_seed(0)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12]])
    far = ids.clone()
    far[0, 7] = 13
    mask = torch.ones_like(ids, dtype=torch.bool)
    for layers, sees in ((0, False), (3, True)):
        model = tiny("cnn", False, context_layers=layers, depth=1).eval()
        with torch.no_grad():
            near_out, far_out = (torch.relu(model.convs[0](model.positions(x, mask)))[0, :, :3] for x in (ids, far))
        assert (not torch.equal(near_out, far_out)) == sees
