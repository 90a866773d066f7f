"""The real Yemeni proverbs (CC BY 4.0, data/sources/yemeni_proverbs.yaml) into data/yemeni_proverbs/: linked from a
shared copy when there is one ($SHARED_DATA, default ../shared/data), else downloaded from GitHub at a pinned commit;
each file checked against data/yemeni_proverbs.sha256 before it takes its place (a bad or partial file never does).

    arabic-sft data                 # make data

The files are not shipped in this repository (their licence asks for attribution, and their owner publishes them);
without them `arabic-sft demo` runs on the shipped sample rows instead, and says so. Written with the standard
library (urllib, hashlib): no library of the stack fetches a plain file from a Git host.
"""

import hashlib
import os
import shutil
import urllib.request
from pathlib import Path

from arabic_sft.named import PROJECT_ROOT
from arabic_sft.runtime.errors import UserError


URL = "https://raw.githubusercontent.com/NasserThmer/Yemeni-Proverbs-LLM-Benchmark/c3635bd645bf908efc9e8ebaec1179a859d2df48/data"
FOLDER = Path("data") / "yemeni_proverbs"
SUMS = PROJECT_ROOT / "data" / "yemeni_proverbs.sha256"


def expected_sums() -> dict[str, str]:
    """{file name: sha256} as data/yemeni_proverbs.sha256 lists them."""
    lines = SUMS.read_text(encoding="utf-8").split("\n")
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(shared: str | Path | None = None, folder: str | Path | None = None) -> list[Path]:
    """Put each proverbs file in `folder` (a link to the shared copy, else a download), checked; returns them. A
    file that cannot be had is one line naming it and why."""
    shared = Path(shared or os.environ.get("SHARED_DATA") or PROJECT_ROOT.parent / "shared" / "data")
    folder = Path(folder or FOLDER)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, digest in expected_sums().items():
        target = folder / name
        if target.is_file() and sha256(target) == digest:
            written.append(target)
            continue
        partial = target.with_name(target.name + ".part")
        partial.unlink(missing_ok=True)
        source = shared / "yemeni_proverbs" / name
        if source.is_file():
            partial.symlink_to(source.resolve())
        else:
            print(f"downloading {name}")
            try:
                with urllib.request.urlopen(f"{URL}/{name}", timeout=30) as response, partial.open("wb") as out:
                    shutil.copyfileobj(response, out)
            except OSError as error:
                partial.unlink(missing_ok=True)
                reason = getattr(error, "reason", None) or error
                raise UserError(f"{name}: cannot be downloaded from GitHub ({reason}); give SHARED_DATA=DIR, a folder "
                                "with yemeni_proverbs/ in it") from None  # fmt: skip
        if (actual := sha256(partial)) != digest:
            partial.unlink()
            raise UserError(f"{name}: sha256 {actual}, expected {digest} ({source if source.is_file() else URL})")
        os.replace(partial, target)
        written.append(target)
    print(f"the proverbs are in {folder}: {', '.join(path.name for path in written)} (sha256 checked)")
    return written
