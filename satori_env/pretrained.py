"""Where a pretrained model or tokenizer comes from: a local directory or a hub id, told apart
before anything is looked up, so that a mistyped local path fails at once with one line
instead of minutes of hub retries and a traceback from the hub client."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["load_pretrained", "locate_pretrained"]

T = TypeVar("T")

# A hub id: "name" or "owner/name", letters, digits, "-", "_", "." (at most 96 characters each).
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(?:/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")


def locate_pretrained(name_or_path: str | os.PathLike, what: str = "model") -> str:
    """``name_or_path`` as ``from_pretrained`` should get it: an existing local directory, or a
    hub id. A path that does not exist fails here with ``FileNotFoundError``: anything given as
    a ``Path``, anything that starts like a path (``/``, ``./``, ``../``, ``~``), has more than
    one ``/``, or whose first component is a local directory (``runs/model`` where ``runs/``
    exists), or is not shaped like a hub id at all."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"{what} must be a local directory or a hub id (str or path), got {type(name_or_path).__name__}"
        )
    text = os.fspath(name_or_path)
    local = Path(text).expanduser()
    if local.is_dir():
        return str(local)
    if local.exists():
        raise NotADirectoryError(
            f"{what} {text!r} is a file; pass the directory that holds it (as save_pretrained wrote it)"
        )
    looks_like_path = (
        isinstance(name_or_path, os.PathLike)
        or text.startswith(("/", "./", "../", "~", "."))
        or os.sep != "/"
        and os.sep in text
        or text.count("/") > 1
        or ("/" in text and Path(text.split("/", 1)[0]).is_dir())
        or not _HUB_ID.match(text)
    )
    if looks_like_path:
        raise FileNotFoundError(
            f"{what} {text!r}: no such local directory (and not a hub id, which is 'name' or 'owner/name')"
        )
    return text


def load_pretrained(loader: Callable[..., T], name_or_path: str | os.PathLike, what: str = "model", **kwargs: Any) -> T:
    """``loader(source, **kwargs)`` (e.g. ``AutoTokenizer.from_pretrained``) for the source
    :func:`locate_pretrained` finds. A hub id is taken from the local hub cache when it is
    there; otherwise the hub is asked only once it answers a connection (no minutes of retries
    offline), and a hub id it cannot give fails with one line."""
    source = locate_pretrained(name_or_path, what)
    if Path(source).is_dir():
        return loader(source, **kwargs)  # a local directory: the loader's errors are about what it holds
    try:
        return loader(source, local_files_only=True, **kwargs)
    except OSError:
        pass  # not in the local hub cache
    unreachable = _hub_unreachable()
    if unreachable:
        raise OSError(
            f"{what} {source!r} is not a local directory, not in the local hub cache, and the hub cannot be reached "
            f"({unreachable})"
        )
    try:
        return loader(source, **kwargs)
    except OSError as error:
        first_line = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise OSError(
            f"{what} {source!r} is not a local directory, and the hub could not give it: {first_line[:300]}"
        ) from None


def _hub_unreachable(timeout: float = 5.0) -> str | None:
    """Why the hub cannot be asked now (offline mode, no connection), or None."""
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    endpoint = urlparse(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=timeout).close()
    except OSError as error:
        return f"{constants.ENDPOINT}: {error}"
    return None
