"""Output files get the permissions the user's umask asks for, like files written with plain ``open``.

plmkit writes every output (checkpoints, model folders, prepared corpora, JSON results) under a
temporary name and renames it into place when complete. ``tempfile.mkstemp`` and ``mkdtemp`` create
those with modes 0600 and 0700 whatever the umask, which would leave an exported model or a prepared
corpus unreadable to the rest of a team on a shared machine (``transformers``' ``save_pretrained``
follows the umask). :func:`as_created` gives a temporary file or folder the mode ``open`` /
``mkdir`` would have given it.
"""

from __future__ import annotations

import os


def umask() -> int:
    """The process umask, read without changing it where Linux reports it (no race with other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def as_created(path: str | os.PathLike, directory: bool = False) -> None:
    """Give ``path`` (made by mkstemp / mkdtemp) the mode a plain ``open`` / ``mkdir`` would have given it."""
    os.chmod(path, (0o777 if directory else 0o666) & ~umask())
