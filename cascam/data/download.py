"""Download a file with a checksum check, and unpack tar/zip archives without letting them write
outside the target folder (absolute paths, ``..``, and links that escape are refused).
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

__all__ = ["download_and_verify", "file_digest", "safe_extract"]

_CHUNK = 1 << 20


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``algorithm`` is any :mod:`hashlib` name, e.g. ``"md5"``)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def download_and_verify(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    md5: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to the file ``dest`` and check its checksum.

    The bytes go to ``dest + ".part"`` first and are renamed to ``dest`` only after the checksum
    matches, so an interrupted or corrupt download never leaves a file that looks complete. When
    ``dest`` already exists and matches the checksum it is kept and nothing is downloaded.

    Args:
        url: any URL :func:`urllib.request.urlopen` accepts (``https://``, ``file://`` …).
        dest: path of the file to write (its folder is created).
        sha256, md5: expected hex digest; give at most one. With neither, nothing is checked.
        timeout: socket timeout in seconds.

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: the downloaded bytes do not match the checksum (the partial file is deleted).
    """
    if sha256 is not None and md5 is not None:
        raise ValueError("give one checksum: sha256 or md5, not both")
    algorithm, expected = ("sha256", sha256) if sha256 is not None else ("md5", md5)
    expected = expected.lower().strip() if expected is not None else None
    dest = Path(dest)
    if dest.exists() and expected is not None and file_digest(dest, algorithm) == expected:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    h = hashlib.new(algorithm)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                h.update(chunk)
                out.write(chunk)
        if expected is not None and h.hexdigest() != expected:
            raise ValueError(
                f"checksum mismatch for {url}: expected {algorithm} {expected}, got {h.hexdigest()}; "
                f"the download was deleted"
            )
        os.replace(part, dest)
    finally:
        if part.exists():
            part.unlink()
    return dest


def _check_member_path(name: str, kind: str) -> PurePosixPath:
    """Refuse an archive member name that is absolute or climbs with ``..``; return it as a path."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise ValueError(f"refusing to extract {kind} member {name!r}: absolute path")
    if ".." in posix.parts:
        raise ValueError(f"refusing to extract {kind} member {name!r}: '..' in path")
    return posix


def _inside(root: Path, path: Path) -> bool:
    return os.path.commonpath([root, path]) == str(root)


def _check_link(root: Path, member_name: str, link_target: str, relative_to_member: bool, kind: str) -> None:
    """Refuse a link whose target is absolute or resolves outside ``root``."""
    if PurePosixPath(link_target).is_absolute() or os.path.isabs(link_target):
        raise ValueError(
            f"refusing to extract {kind} member {member_name!r}: link to absolute path {link_target!r}"
        )
    base = (root / member_name).parent if relative_to_member else root
    resolved = Path(os.path.normpath(base / link_target))
    if not _inside(root, resolved):
        raise ValueError(
            f"refusing to extract {kind} member {member_name!r}: "
            f"link target {link_target!r} is outside {root}"
        )


def _check_member(root: Path, name: str, kind: str) -> None:
    """A member's own path is relative, has no ``..`` and stays inside ``root`` once joined."""
    _check_member_path(name, kind)
    if not _inside(root, Path(os.path.normpath(root / name))):
        raise ValueError(f"refusing to extract {kind} member {name!r}: outside {root}")


def _safe_extract_tar(archive: Path, root: Path) -> list[Path]:
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for m in members:
            _check_member(root, m.name, "tar")
            if m.issym():
                _check_link(root, m.name, m.linkname, relative_to_member=True, kind="tar")
            elif m.islnk():
                _check_link(root, m.name, m.linkname, relative_to_member=False, kind="tar")
            elif not (m.isfile() or m.isdir()):
                raise ValueError(f"refusing to extract tar member {m.name!r}: not a file, folder or link")
        if hasattr(tarfile, "data_filter"):  # Python ≥ 3.11.4 / 3.12: the standard library's own checks too
            tar.extractall(root, members=members, filter="data")
        else:  # pragma: no cover - older Pythons rely on the checks above
            tar.extractall(root, members=members)
        return [root / m.name for m in members]


def _safe_extract_zip(archive: Path, root: Path) -> list[Path]:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_member(root, info.filename, "zip")
            if stat.S_ISLNK(info.external_attr >> 16):
                # zipfile writes a link as a plain file holding the target; refuse escaping ones anyway.
                target = zf.read(info).decode("utf-8", errors="replace")
                _check_link(root, info.filename, target, relative_to_member=True, kind="zip")
        for info in infos:
            zf.extract(info, root)
        return [root / info.filename for info in infos]


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Unpack a tar (any compression) or zip ``archive`` into the folder ``dest``.

    Every member is checked before anything is written: an absolute path, a ``..`` component, a
    symbolic or hard link whose target lies outside ``dest``, or (tar) a device or FIFO raises
    ``ValueError`` naming the member. Tar archives are additionally extracted with the standard
    library's ``filter="data"``.

    Returns:
        the paths of the extracted members.

    Raises:
        ValueError: a member is unsafe, or the file is neither a tar nor a zip archive.
    """
    archive = Path(archive)
    root = Path(dest).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        return _safe_extract_zip(archive, root)
    if tarfile.is_tarfile(archive):
        return _safe_extract_tar(archive, root)
    raise ValueError(f"{archive} is neither a tar nor a zip archive")
