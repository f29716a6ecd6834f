"""Loading encoders and teachers from a hub id or a local `save_pretrained` folder, with one-line errors.

    model, tokenizer = load_teacher("../shared/teachers/minilm-sst2", task)      # for labelling
    config = load_encoder_config("bert-base-uncased")                           # for fine-tuning
    model, new_keys = load_model("bert-base-uncased", task)

`trust_remote_code` is off unless the user asks: a hub model's own code runs only then.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from pathlib import Path

import torch

from distill.data.tasks import Task
from distill.errors import DistillError


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' load report and progress bars; we print one line of our own."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def first_line(e: Exception) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()  # no terminal colour codes
    return text.splitlines()[0][:200] if text else type(e).__name__


def load_encoder_config(name: str, trust_remote_code: bool = False):
    """The model's config, checked to be an encoder that a classification head can sit on."""
    from transformers import AutoConfig
    from transformers.models.auto import modeling_auto

    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")):
        if not path.is_dir():
            raise DistillError(f"--model {name}: no such folder; pass a local folder saved with "
                               "save_pretrained, or a hub id")
        if not (path / "config.json").is_file():
            raise DistillError(f"--model {name}: the folder has no config.json, so it is not a saved model; "
                               "save the encoder there with model.save_pretrained(...) and "
                               "tokenizer.save_pretrained(...)")
    try:
        with quiet_transformers():
            config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as e:
        raise DistillError(f"--model {name}: could not load its config ({first_line(e)}); if the Hugging Face "
                           "hub cannot be reached, pass a local folder saved with save_pretrained") from None
    kind = getattr(config, "model_type", "") or "unknown"
    decoder_only = (kind in modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
                    and kind not in modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES)
    if getattr(config, "is_encoder_decoder", False):
        raise DistillError(f"--model {name} is a {kind} encoder-decoder model, not an encoder; fine-tune an "
                           "encoder (BERT, RoBERTa, DistilBERT, DeBERTa, MiniLM, ModernBERT, ...)")
    if decoder_only or getattr(config, "is_decoder", False):
        raise DistillError(f"--model {name} is a {kind} model, a decoder-only language model, not an encoder; "
                           "fine-tune an encoder (BERT, RoBERTa, DistilBERT, DeBERTa, MiniLM, ModernBERT, ...)")
    return config


def position_limit(config, tokenizer) -> tuple[int | None, str]:
    """The most tokens the model takes per example, and where that number comes from."""
    positions = getattr(config, "max_position_embeddings", None)
    tok_max = getattr(tokenizer, "model_max_length", None)
    tok_max = tok_max if isinstance(tok_max, int) and 0 < tok_max < 1_000_000 else None
    if positions is None:
        return tok_max, "its tokenizer's model_max_length"
    if tok_max is not None and positions - 2 <= tok_max < positions:
        # RoBERTa-style position ids start after the padding index: 514 positions hold 512 tokens.
        return tok_max, f"max_position_embeddings {positions}, of which {tok_max} hold tokens"
    return positions, f"max_position_embeddings {positions}"


def load_tokenizer(name: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DistillError(f"--model {name}: could not load its tokenizer ({first_line(e)}); save it into the "
                           "folder with tokenizer.save_pretrained(...)") from None
    if tokenizer.pad_token_id is None:
        raise DistillError(f"--model {name}: its tokenizer has no padding token, which batches need; an "
                           "encoder's tokenizer has one (is this a decoder?)")
    return tokenizer


def load_model(name: str, task: Task, trust_remote_code: bool = False):
    """The encoder with a fresh classification head for the task's labels; returns (model, head keys)."""
    from transformers import AutoModelForSequenceClassification

    id2label = dict(enumerate(task.label_names))
    try:
        with quiet_transformers():
            model, info = AutoModelForSequenceClassification.from_pretrained(
                name, num_labels=task.num_labels, id2label=id2label,
                label2id={n: i for i, n in id2label.items()}, ignore_mismatched_sizes=True,
                output_loading_info=True, trust_remote_code=trust_remote_code)
    except ValueError as e:  # no sequence-classification class for this config
        raise DistillError(f"--model {name}: transformers has no sequence classifier for it "
                           f"({first_line(e)}); fine-tune a text encoder") from None
    except OSError as e:
        raise DistillError(f"--model {name}: could not load its weights ({first_line(e)})") from None
    except Exception as e:  # noqa: BLE001 - weights that do not fit the config, a pickle torch refuses, ...
        raise _folder_error("--model", name, e) from None
    model.config.problem_type = "single_label_classification"
    new = sorted(set(info.get("missing_keys", ())) | {k[0] if isinstance(k, tuple) else k
                                                      for k in info.get("mismatched_keys", ())})
    return model.float(), new


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _folder_error(flag: str, name: str, e: Exception) -> DistillError:
    """A local model folder that transformers cannot load, on one line, with the likely fix."""
    text = str(e)
    if "weights_only" in text or "torch.load" in text or "pickle" in text.lower():
        why = ("its weights are a pickled pytorch_model.bin, which torch no longer loads safely; save the model "
               "again with save_pretrained (safetensors), or convert the file to model.safetensors")
    elif "size mismatch" in text or "shape" in text or "mismatched_sizes" in text:
        why = ("its weights do not fit its config.json (e.g. num_labels / id2label says another number of labels "
               "than the classifier head has); fix config.json or save the model again")
    else:
        why = "the folder is damaged or incomplete; save the model again with save_pretrained"
    detail = first_line(e).split(" For details")[0][:160]  # transformers' report it points to is silenced
    return DistillError(f"{flag} {name} cannot be loaded ({type(e).__name__}: {detail}): {why}")


def _hub_error(name: str, e: Exception) -> DistillError:
    return DistillError(
        f"could not load teacher '{name}' ({first_line(e)}); if the Hugging Face hub cannot be reached, "
        "pass --teacher PATH to a local folder saved with save_pretrained, or --labels DIR"
    )


def load_teacher(name: str, task: Task, device: torch.device | None = None,
                 trust_remote_code: bool = False):
    """Load a teacher and its tokenizer from a hub id or a local folder, and check its labels."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if name.startswith((".", "/", "~")) and not Path(name).expanduser().exists():
        raise DistillError(f"--teacher {name}: no such folder; pass a local model folder or a hub id")
    try:
        with quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(
                name, trust_remote_code=trust_remote_code)
            tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        if Path(name).expanduser().is_dir():
            raise _folder_error("--teacher", name, e) from None
        raise _hub_error(name, e) from None
    except Exception as e:  # noqa: BLE001 - weights that do not fit the config (a 2-row head, 3 labels), ...
        raise _folder_error("--teacher", name, e) from None
    check_teacher_labels(model.config, task, name)
    model.eval().to(device or default_device())
    return model, tokenizer


def check_teacher_labels(config, task: Task, name: str) -> None:
    """The teacher must predict the task's labels: same count, and same names when it names them."""
    n = config.num_labels
    if n != task.num_labels:
        raise DistillError(
            f"teacher '{name}' has {n} labels but task {task.name} has {task.num_labels} "
            f"({', '.join(task.label_names)}); use a teacher fine-tuned on this task"
        )
    names = [str(config.id2label[i]).lower() for i in range(n)]
    generic = all(x == f"label_{i}" for i, x in enumerate(names))
    if not generic and names != [x.lower() for x in task.label_names]:
        raise DistillError(
            f"teacher '{name}' labels {names} do not match task {task.name}'s "
            f"{list(task.label_names)}; check the label order, or fix id2label in its config.json"
        )


def fingerprint(model: torch.nn.Module) -> str:
    """A hash of the teacher's weights: the same weights give the same label-set key."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def count_hf_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(all parameters, parameters without the word/position/type embedding tables) of an HF model."""
    total = sum(p.numel() for p in model.parameters())
    emb = sum(p.numel() for n, p in model.named_parameters() if n.endswith("_embeddings.weight"))
    return total, total - emb
