"""Embedding tables without fine-tuning: teacher-initialised student tables and low-rank factors.

Two jobs share the maths here:

- **Initialisation** (`distill.train --embedding-init`). The teacher's table E (V, D_t) is brought
  down to the student's width d, either by PCA (`teacher-svd`: centre the rows, keep the top-d
  principal directions) or by an autoencoder (`teacher-autoencoder`) whose code is the new table.
  Either result is scaled to unit RMS, the scale a randomly initialised table would give.
- **Compression** (`distill.compress`). A trained student's table E (V, d) is factored as
  E ~ A B with A (V, r) and B (r, d), by truncated SVD (the best rank-r fit in squared error) or
  by the same autoencoder with a linear decoder: A is the encoder's output, B the decoder.

The autoencoder follows Bałazy et al. 2021 ("Direction is what you need"): its loss adds a
cosine-distance term, which scores each reconstructed vector by its direction whatever its length,
to a squared-error term scaled to the table's size. Words with short vectors (often the rare
ones) count as much as common ones under the cosine term; under squared error alone they barely
count. Its encoder is a small MLP, so the code of a word may be a non-linear function of its
vector; its decoder is one linear map without bias, so E ~ A B holds exactly as stored.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from distill.cli import progress_bar

INITS = ("auto", "teacher-svd", "teacher-contextual", "teacher-autoencoder", "random")
METHODS = ("svd", "autoencoder")
# What --embedding-init auto starts a student from with the teacher's tokenizer, where it is not teacher-svd:
# chosen on SST-2 dev by scripts/bench_init.py (README: The table from the teacher's hidden states). The BiLSTM
# gained from the pooled hidden states beyond the spread of its seeds; the CNN and the transformer did not.
AUTO_INIT = {"bilstm": "teacher-contextual"}


def auto_init(student: str, tokenizer: str, has_contextual: bool) -> str:
    """The init `auto` means for this student: random with a word vocabulary (there is no teacher table),
    else the student's choice in AUTO_INIT when the label set holds that table, else teacher-svd."""
    if tokenizer != "teacher":
        return "random"
    if AUTO_INIT.get(student) == "teacher-contextual" and has_contextual:
        return "teacher-contextual"
    return "teacher-svd"


def wants_contextual(students: list[str], embedding_init: str, tokenizer: str) -> bool:
    """Whether a label set made for these students should store the contextual table."""
    if embedding_init == "auto":
        return any(auto_init(s, tokenizer, has_contextual=True) == "teacher-contextual" for s in students)
    return embedding_init == "teacher-contextual"


def _unit_rms(x: torch.Tensor) -> torch.Tensor:
    return x / x.pow(2).mean().sqrt().clamp_min(1e-12)


def _fill_absent(rows: torch.Tensor, present: torch.Tensor, dim: int, g: torch.Generator) -> torch.Tensor:
    """A (V, dim) table holding `rows` where present, N(0, 1) rows (a random table's scale) elsewhere."""
    out = torch.randn(present.shape[0], dim, generator=g)
    out[present] = rows
    return out


def pca_table(table: torch.Tensor, dim: int, seed: int = 0, present: torch.Tensor | None = None) -> torch.Tensor:
    """(V, D_t) -> (V, dim) by PCA, scaled to unit RMS.

    Columns past D_t (if dim > D_t) are small random noise. Rows where `present` is False (the
    label set did not store them) get N(0, 1) rows, the scale of a random table."""
    g = torch.Generator().manual_seed(seed)
    present = torch.ones(table.shape[0], dtype=torch.bool) if present is None else present
    x = table[present].float()
    x = x - x.mean(dim=0, keepdim=True)
    k = min(dim, x.shape[1])
    # Right singular vectors of the centred table = principal directions. (D_t, D_t) SVD is cheap.
    _, _, vh = torch.linalg.svd(x.T @ x, full_matrices=False)
    out = _fill_absent(_unit_rms(x @ vh[:k].T), present, k, g)
    if dim > k:
        out = torch.cat([out, 0.02 * torch.randn(table.shape[0], dim - k, generator=g)], dim=1)
    return out


# ----------------------------------------------------------------------------- the autoencoder


@dataclass(frozen=True)
class AutoencoderConfig:
    """How the direction-loss autoencoder trains. Both weights > 0 is Bałazy et al.'s loss;
    cos_weight=0 is a plain squared-error autoencoder (the ablation)."""

    cos_weight: float = 1.0  # weight of mean (1 - cos(x, x_hat))
    mse_weight: float = 1.0  # weight of mean squared error, on the table scaled to unit RMS
    hidden: int = 512  # encoder: Linear(D, hidden) -> GELU -> Linear(hidden, dim)
    epochs: int = 40
    batch_size: int = 256
    lr: float = 2e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.cos_weight < 0 or self.mse_weight < 0 or self.cos_weight + self.mse_weight == 0:
            raise ValueError("autoencoder loss weights must be >= 0 and not both 0")


@dataclass
class Autoencoded:
    codes: torch.Tensor  # (N, dim): the encoder's output for each row
    decoder: torch.Tensor  # (dim, D): rows ~ codes @ decoder, at the input's scale
    history: list[dict] = field(default_factory=list)  # per epoch: loss, cosine, mse terms
    seconds: float = 0.0


class _Autoencoder(torch.nn.Module):
    def __init__(self, d_in: int, dim: int, hidden: int):
        super().__init__()
        self.encoder = torch.nn.Sequential(
            torch.nn.Linear(d_in, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, dim))
        self.decoder = torch.nn.Linear(dim, d_in, bias=False)


def _loss_terms(x_hat: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    cos = (1 - F.cosine_similarity(x_hat, x, dim=1, eps=1e-8)).mean()
    mse = (x_hat - x).pow(2).mean()
    return cos, mse


def train_autoencoder(x: torch.Tensor, dim: int, cfg: AutoencoderConfig = AutoencoderConfig(),
                      progress: bool = True, desc: str = "autoencoder") -> Autoencoded:
    """Fit encoder/decoder to the rows of x (N, D); returns the codes (N, dim) and the decoder."""
    import time

    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(cfg.seed)
    x = x.float()
    scale = x.pow(2).mean().sqrt().clamp_min(1e-12)
    xn = x / scale  # unit RMS: the squared-error term means the same for any table
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        ae = _Autoencoder(x.shape[1], dim, cfg.hidden)
    opt = torch.optim.Adam(ae.parameters(), lr=cfg.lr)
    steps = cfg.epochs * -(-len(xn) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.1)
    history = []
    bar = progress_bar(range(cfg.epochs), desc=desc, unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        order = torch.randperm(len(xn), generator=g)
        sums = torch.zeros(3)
        for i in range(0, len(xn), cfg.batch_size):
            xb = xn[order[i : i + cfg.batch_size]]
            cos, mse = _loss_terms(ae.decoder(ae.encoder(xb)), xb)
            loss = cfg.cos_weight * cos + cfg.mse_weight * mse
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            sums += torch.stack([loss.detach(), cos.detach(), mse.detach()]) * len(xb)
        loss, cos, mse = (sums / len(xn)).tolist()
        history.append({"epoch": epoch + 1, "loss": loss, "cosine": cos, "mse": mse})
        bar.set_postfix(loss=f"{loss:.4f}", cos=f"{cos:.4f}")
    bar.close()
    with torch.no_grad():
        codes = torch.cat([ae.encoder(xn[i : i + 4096]) for i in range(0, len(xn), 4096)])
        decoder = ae.decoder.weight.T * scale  # (dim, D)
    return Autoencoded(codes, decoder, history, time.perf_counter() - t0)


def _table_key(table: torch.Tensor, present: torch.Tensor, dim: int, cfg: AutoencoderConfig) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": 1, "dim": dim, "cfg": asdict(cfg), "shape": list(table.shape)}).encode())
    h.update(table.float().contiguous().numpy().tobytes())
    h.update(present.numpy().tobytes())
    return h.hexdigest()


def autoencoder_table(table: torch.Tensor, dim: int, seed: int = 0, present: torch.Tensor | None = None,
                      cfg: AutoencoderConfig | None = None, progress: bool = True) -> torch.Tensor:
    """(V, D_t) -> (V, dim): the direction-loss autoencoder's code of each present row, unit RMS.

    Cached by the table's content, `dim` and the settings under $DISTILL_CACHE/autoencoders, so
    the students of one teacher share one autoencoder."""
    from safetensors.torch import load_file

    from distill.io import save_tensors
    from distill.teacher.labelling import cache_dir

    cfg = cfg or AutoencoderConfig(seed=seed)
    present = torch.ones(table.shape[0], dtype=torch.bool) if present is None else present
    path = cache_dir() / "autoencoders" / f"{_table_key(table, present, dim, cfg)[:24]}.safetensors"
    if path.is_file():
        codes = load_file(str(path))["codes"]
        print(f"teacher autoencoder: reusing {path}")
    else:
        x = table[present].float()
        result = train_autoencoder(x - x.mean(dim=0, keepdim=True), dim, cfg, progress,
                                   desc=f"teacher autoencoder {table.shape[1]}->{dim}")
        codes = _unit_rms(result.codes)
        last = result.history[-1]
        print(f"teacher autoencoder {table.shape[1]}->{dim} on {len(x):,} rows: {result.seconds:.1f} s, "
              f"cosine distance {last['cosine']:.4f}, mse {last['mse']:.4f} (unit-RMS table)")
        path.parent.mkdir(parents=True, exist_ok=True)
        save_tensors(path, {"codes": codes.contiguous()})
    return _fill_absent(codes, present, dim, torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- low-rank factors


def svd_factors(table: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """E (V, d) ~ A (V, r) @ B (r, d) by truncated SVD: A = U_r S_r, B = V_r^T (exact at full rank)."""
    u, s, vh = torch.linalg.svd(table.double(), full_matrices=False)
    return (u[:, :rank] * s[:rank]).float(), vh[:rank].float()


def autoencoder_factors(table: torch.Tensor, rank: int, cfg: AutoencoderConfig = AutoencoderConfig(),
                        progress: bool = True) -> tuple[torch.Tensor, torch.Tensor, Autoencoded]:
    """E (V, d) ~ A (V, r) @ B (r, d), A the encoder's codes and B the linear decoder."""
    result = train_autoencoder(table, rank, cfg, progress, desc=f"autoencoder rank {rank}")
    return result.codes, result.decoder, result


def fidelity(table: torch.Tensor, approx: torch.Tensor, rows: torch.Tensor | None = None) -> dict:
    """How close approx is to table: relative Frobenius error and mean cosine similarity per row."""
    if rows is not None:
        table, approx = table[rows], approx[rows]
    err = (approx - table).norm() / table.norm().clamp_min(1e-12)
    cos = F.cosine_similarity(approx.float(), table.float(), dim=1, eps=1e-8).mean()
    return {"relative_error": round(float(err), 6), "mean_cosine": round(float(cos), 6)}
