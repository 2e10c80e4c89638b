"""``plmkit info`` and ``plmkit presets``: look at model folders and the preset table."""

from __future__ import annotations

import json

from . import common_parent


def register(sub) -> None:
    p = sub.add_parser("info", parents=[common_parent()], help="describe a model folder (plmkit or Hugging Face)")
    p.add_argument("model", help="model folder with config.json and model.safetensors")
    p.set_defaults(func=run_info)
    p = sub.add_parser("presets", parents=[common_parent()], help="list the named model presets")
    p.add_argument("--json", action="store_true", help="print the full preset table as JSON")
    p.set_defaults(func=run_presets)


def run_info(args) -> int:
    from ..models import from_pretrained

    # Built on the meta device from config.json and the safetensors headers: shapes are checked and
    # parameters counted, but no weight is read or allocated, so info answers at once for any size.
    model = from_pretrained(args.model, meta=True)
    info = {
        "folder": args.model,
        **model.describe(),  # model_type, task, heads: the model protocol (models/protocol.py)
        "parameters": model.num_parameters(),
        "config": {k: v for k, v in model.config.to_dict().items() if k != "hf_extra"},
    }
    print(json.dumps(info, indent=2))
    return 0


def run_presets(args) -> int:
    from ..config import PRESETS, model_config_from_preset

    if args.json:
        print(json.dumps(PRESETS, indent=2))
        return 0
    print(f"{'preset':<16} {'type':<8} {'layers':>6} {'hidden':>6} {'heads':>5} {'emb':>5}  objective")
    for name in sorted(PRESETS):
        entry = PRESETS[name]
        if "model" not in entry:
            continue
        d = entry.get("data", {})
        objective = "+".join(x for x in (d.get("objective"), d.get("pair")) if x and x != "none")
        if entry["model"].get("model_type") == "elmo":  # biLSTM: layers, LSTM cells, projection
            from ..config import elmo_config_from_preset

            e = elmo_config_from_preset(name)
            print(f"{name:<16} {'elmo':<8} {e.num_layers:>6} {e.lstm_dim:>6} {'-':>5} {e.projection_dim:>5}  "
                  f"{objective} (char-CNN {e.num_filters} filters, {e.softmax} softmax)")
            continue
        c = model_config_from_preset(name)
        print(f"{name:<16} {c.model_type:<8} {c.num_hidden_layers:>6} {c.hidden_size:>6} {c.num_attention_heads:>5} "
              f"{c.embed_dim:>5}  {objective} ({d.get('masking', '-')} masking, {d.get('packing', '-')})")
    return 0
