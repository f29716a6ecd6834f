"""Static token vectors made from the teacher's contextual ones, for the students' embedding tables.

A student starts from a table of one vector per token. The teacher's input table is one such table,
but its vectors know nothing of the task or of context. Bommasani et al. 2020 ("Interpreting
Pretrained Contextualized Representations via Reductions to Static Embeddings") pool a model's
hidden states over a token's occurrences in a corpus, and find the pooled vectors of a middle layer
better static embeddings than the input table. Here the corpus is the training set's original rows,
seen by the fine-tuned teacher, so each vector also carries what the teacher learned of the task.

For each token id: the mean over its occurrences in those rows of the hidden state after layer
`layer` (0 is the embedding layer's output, the teacher's depth is its last layer). A stored token
that the rows never contain gets the teacher's hidden state for it alone ([CLS] token [SEP]), so
every row comes from the same space. `distill.train --embedding-init teacher-contextual` brings the
table down to the student's width by PCA, like the input table.
"""

from __future__ import annotations

import numpy as np
import torch

from distill.cli import progress_bar
from distill.data.batching import longest_first_batches

MAX_ROWS = 100_000  # original rows pooled at most (evenly spaced): a few minutes of teacher time on a CPU


def default_layer(num_layers: int) -> int:
    """The middle layer (3 of MiniLM-L6's 6, 6 of BERT-base's 12)."""
    return num_layers // 2


def num_layers(model) -> int:
    n = getattr(model.config, "num_hidden_layers", None)
    if not isinstance(n, int) or n < 1:
        raise ValueError("the teacher's config has no num_hidden_layers")
    return n


def pool_rows(n: int, max_rows: int = MAX_ROWS) -> np.ndarray:
    """Indices of the rows to pool: all of them, or `max_rows` evenly spaced ones."""
    if n <= max_rows:
        return np.arange(n)
    return np.linspace(0, n - 1, max_rows).round().astype(np.int64)


@torch.inference_mode()
def contextual_table(model, tokenizer, texts: list[tuple[str, ...]], layer: int, max_length: int,
                     batch_size: int, device: torch.device, rows: list[int] | None = None,
                     progress: bool = True) -> tuple[torch.Tensor, int]:
    """(V, D) float32 table of pooled hidden states after `layer`, and how many of `rows` were seen.

    `rows`: the token ids the table must hold (None: the whole vocabulary); those the texts never
    contain get their own hidden state in [CLS] token [SEP]. Other unseen rows stay zero."""
    n_layers = num_layers(model)
    if not 0 <= layer <= n_layers:
        raise ValueError(f"layer {layer}: the teacher has layers 0 to {n_layers}")
    vocab = model.get_input_embeddings().weight.shape[0]
    dim = model.config.hidden_size
    sums = torch.zeros(vocab, dim, dtype=torch.float64)
    counts = torch.zeros(vocab, dtype=torch.float64)
    was_training = model.training
    model.eval()
    with progress_bar(total=len(texts), desc="contextual table", unit="row", disable=not progress,
                      mininterval=1.0) as bar:
        for idx, enc in longest_first_batches(tokenizer, texts, max_length, batch_size):
            enc = enc.to(device)
            hidden = model(**enc, output_hidden_states=True).hidden_states[layer]
            keep = enc["attention_mask"].reshape(-1).bool()
            ids = enc["input_ids"].reshape(-1)[keep].cpu()
            counts.index_add_(0, ids, torch.ones(len(ids), dtype=torch.float64))
            sums.index_add_(0, ids, hidden.reshape(-1, dim)[keep].double().cpu())
            bar.update(len(idx))
    table = (sums / counts.clamp_min(1)[:, None]).float()
    wanted = torch.arange(vocab) if rows is None else torch.as_tensor(rows, dtype=torch.long)
    unseen = wanted[counts[wanted] == 0]
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    for i in range(0, len(unseen), 512):
        u = unseen[i : i + 512]
        parts = [u[:, None]]
        if cls_id is not None:
            parts.insert(0, torch.full((len(u), 1), cls_id))
        if sep_id is not None:
            parts.append(torch.full((len(u), 1), sep_id))
        ids = torch.cat(parts, dim=1).to(device)
        hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True).hidden_states
        table[u] = hidden[layer][:, 1 if cls_id is not None else 0].float().cpu()
    model.train(was_training)
    return table, int(len(wanted) - len(unseen))
