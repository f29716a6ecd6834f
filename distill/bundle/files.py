"""The files of a bundle besides the model: tokenizer.json and vocab.txt, and the README rendered from its
templates (`distill/bundle/readme/`)."""

from __future__ import annotations

import json
from pathlib import Path
from string import Template

from distill.data.metrics import fmt as fmt_metric

TEMPLATES = Path(__file__).parent / "readme"


def _tokenizer_spec(tok_json: dict) -> dict:
    """What a reimplementation on a phone needs besides vocab.txt: the tokenizer's model and rules."""
    model = tok_json.get("model", {})
    spec = {"type": model.get("type"), "unk_token": model.get("unk_token"),
            "continuing_subword_prefix": model.get("continuing_subword_prefix"),
            "max_input_chars_per_word": model.get("max_input_chars_per_word"),
            "normalizer": tok_json.get("normalizer"), "pre_tokenizer": tok_json.get("pre_tokenizer")}
    return {k: v for k, v in spec.items() if v is not None}


def write_tokenizer(tok, directory: Path, max_length: int, vocab_txt: bool = True) -> dict:
    """tokenizer.json (truncating at max_length, no special tokens, no padding) and, with vocab_txt, the same
    vocabulary again as vocab.txt (one token per line) for clients that implement the tokenizer from it."""
    from tokenizers import Tokenizer

    t = Tokenizer.from_str(tok.tokenizer.to_str())
    t.no_padding()
    t.enable_truncation(max_length)
    (directory / "tokenizer.json").write_text(t.to_str(pretty=False), encoding="utf-8")
    vocab = t.get_vocab(with_added_tokens=True)
    by_id = [""] * (max(vocab.values()) + 1)
    for token, i in vocab.items():
        by_id[i] = token
    if vocab_txt:
        (directory / "vocab.txt").write_text("\n".join(by_id) + "\n", encoding="utf-8")
    spec = _tokenizer_spec(json.loads(t.to_str()))
    # transformers.js' AutoTokenizer reads this beside tokenizer.json (and refuses a folder without it)
    config = {"tokenizer_class": "BertTokenizer" if spec.get("type") == "WordPiece" else "PreTrainedTokenizer",
              "model_max_length": max_length, "unk_token": spec.get("unk_token") or "[UNK]",
              "pad_token": by_id[tok.pad_id] if 0 <= tok.pad_id < len(by_id) else None,
              "clean_up_tokenization_spaces": False, "do_lower_case": False}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    return {"file": "tokenizer.json", "vocab_file": "vocab.txt" if vocab_txt else None,
            "config_file": "tokenizer_config.json",
            "kind": tok.kind,
            "vocab_size": tok.vocab_size, "pad_id": tok.pad_id, "unk_id": tok.unk_id,
            "add_special_tokens": False, "truncation": {"max_length": max_length, "side": "right"},
            "empty_text": "a text with no token becomes [unk_id]", **spec}


def versions(fmt: str) -> dict:
    import importlib.metadata as md

    names = ["torch", "tokenizers"] + (["onnx", "onnxscript", "onnxruntime"] if fmt == "onnx"
                                       else ["executorch"])
    out = {}
    for n in names:
        try:
            out[n] = md.version(n)
        except md.PackageNotFoundError:
            pass
    return out


def pct(x) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


# what the JavaScript snippet installs, tested together: transformers.js pins its own onnxruntime-node, and a
# second copy at another version fails to load beside it (`VERS_x.y.z not found`), so ours is the one it pins
JS_PACKAGES = ("@huggingface/transformers@4.3.2", "onnxruntime-node@1.30.0")


def render_readme(meta: dict, bundle_name: str = "bundle") -> str:
    """The bundle's README (readme/README.md) with the calls that run it in Python, Kotlin and Swift."""
    fmt, T, pair = meta["format"], meta["max_length"], meta["pair"]
    par, q = meta["parity"], meta.get("quantization")
    if meta["length"]["dynamic"]:
        length = f"any length from {meta['min_length']} to {T} tokens"
    else:
        length = f"exactly {T} tokens, every text padded to {T} ({meta['length']['why_fixed']})"
    values = {
        "student": meta["student"], "task": meta["task"]["name"], "fmt": fmt, "precision": meta["precision"],
        "run_name": meta["source"]["run_name"], "model_file": meta["model_file"],
        "size_mb": f"{meta['model_bytes'] / 1e6:.1f}", "T": T,
        "labels": ", ".join(f"{i}: {n}" for i, n in enumerate(meta["labels"])), "num_labels": len(meta["labels"]),
        "shape": "(batch, 2, length)" if pair else "(batch, length)",
        "batch": "any batch" if meta["batch"]["dynamic"] else f"a batch of exactly {meta['batch']['size']}",
        "length": length, "pad_id": meta["tokenizer"]["pad_id"], "unk_id": meta["tokenizer"]["unk_id"],
        "pair_note": (" Pairs: tokenize each side on its own; input_ids[b, 0] is the first text, "
                      "input_ids[b, 1] the second." if pair else ""),
        "parity_rows": par["rows"], "max_diff": f"{par['max_abs_logit_diff']:.2e}",
        "agreement": f"{100 * par['label_agreement']:.2f}", "metric": par["metric"],
        "bundle_metric": fmt_metric(par["metric"], par["bundle_metric"]),
        "pytorch_metric": fmt_metric(par["metric"], par["pytorch_metric"]),
        "quantization_line": (f"\nint8 was requested and not kept: {q['reason']}.\n" if q and not q["kept"] else
                              "\n**Batches**: run one text per call (`batch_policy` \"row\" in metadata.json): "
                              "dynamic int8 scales activations over the whole input, so in a batch a text's "
                              "label could depend on the other texts.\n" if meta.get("batch_policy") == "row"
                              else "") + (
            "\n**Embedding table**: 4-bit, blockwise (`GatherBlockQuantized`, an ONNX Runtime contrib op): "
            "it needs onnxruntime >= 1.20 (any platform's full package), not a runtime limited to standard "
            "ONNX ops.\n" if q and q["kept"] and q.get("table_bits") == 4 else ""),
        "py_len": "len(enc)" if meta["length"]["dynamic"] else str(T),  # a fixed-length model: pad to T
        "n_ids": f"<= {T}" if meta["length"]["dynamic"] else f"exactly {T} (padded)",
        "tokenizer_type": meta["tokenizer"].get("type"),
        "vocab_row": ("\n| `vocab.txt` | the vocabulary, one token per line, line number = id |"
                      if meta["tokenizer"].get("vocab_file") else ""),
        "vocab_source": ("`vocab.txt`" if meta["tokenizer"].get("vocab_file") else
                         "the vocabulary in `tokenizer.json` → `model.vocab` (token: id)"),
    }
    values |= {
        "bundle_name": bundle_name,
        "js_packages": " ".join(JS_PACKAGES),
        "labels_js": '", "'.join(meta["labels"]),
        "js_pad": ("  const mask = ids.map(() => 1);" if meta["length"]["dynamic"] else
                   f"  const mask = ids.map(() => 1).concat(Array({T} - ids.length).fill(0));\n"
                   f"  ids = ids.concat(Array({T} - ids.length).fill({meta['tokenizer']['pad_id']}));  "
                   f"// this model takes exactly {T} tokens"),
        "js_pair_note": (" Pairs: tokenize each text on its own and stack them as (1, 2, length)."
                         if pair else ""),
    }
    snippets = {key: _template(f"{fmt}.{ext}").substitute(values).rstrip("\n")
                for key, ext in (("python_run", "py.txt"), ("kotlin", "kt"), ("swift", "swift"),
                                 ("javascript", "js"))}
    return _template("README.md").substitute(values | snippets)
