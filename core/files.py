"""One atomic write for every file the project keeps (run files, checkpoints, the data cache)."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write `path` through a temporary file of its own and a rename, so a reader never sees half a file.

    The temporary name is unique per call (two threads writing one file do not collide), and it is
    removed when the write fails, so a full disk is not kept full by our leftovers.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
