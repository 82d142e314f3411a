"""A run as a zip archive: exported for download, imported from a stranger's upload. An archive passes the
same schema as a folder (run_schema.py), after its zip directory, names and sizes are checked."""

from __future__ import annotations

import io
import json
import secrets
import shutil
import string
import struct
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from .i18n import _
from .owners import QuotaError, make_room
from .run_schema import ARCHIVE_FILES, REQUIRED_FILES, RunError, parse_run, shown
from .runs import STUDY_STORE, load_run, runs_root

MAX_ARCHIVE_BYTES = sum(ARCHIVE_FILES.values()) + 64_000
MAX_ARCHIVE_ENTRIES = 16  # the seven files, a folder entry some zip tools add, and room to spare
_MAX_DIRECTORY_BYTES = MAX_ARCHIVE_ENTRIES * 1_024  # the zip's central directory: one short record per entry
_SAFE_ID = set(string.ascii_letters + string.digits + "-._")


def export_run(path: Path | str) -> bytes:
    """The run folder as one zip archive: config, metrics CSVs, report and weights."""
    path = Path(path)
    load_run(path, with_model=True)  # refuse to share a damaged run
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ARCHIVE_FILES:
            if (path / name).is_file():
                archive.write(path / name, arcname=f"{path.name}/{name}")
    return buffer.getvalue()


def export_runs(paths: list[Path] | list[str]) -> bytes:
    """Several runs as one zip that holds each run's archive (``<run>.zip``, as ``export_run`` makes it):
    unpack it and add each archive back on the Runs page."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as bundle:  # the archives inside are compressed already
        for path in paths:
            bundle.writestr(f"{Path(path).name}.zip", export_run(path))
    return buffer.getvalue()


def _check_directory(data: bytes) -> None:
    """Refuse a zip whose central directory is larger than a run's before ``zipfile`` reads it: it builds an
    object per entry, and 25 MB of empty entries would be half a million of them. The end record is found
    the way ``zipfile`` finds it; zip64 (for archives of 4 GB or 65,535 entries) is never a run's."""
    end = len(data) - 22
    if not (end >= 0 and data[end : end + 4] == b"PK\x05\x06" and data[-2:] == b"\x00\x00"):
        end = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 65_535))
    if end < 0 or len(data) < end + 22:
        raise RunError(_("not a zip archive of a run (it has no zip directory)."))
    if end >= 20 and data[end - 20 : end - 16] == b"PK\x06\x07":
        raise RunError(_("the archive is a zip64 archive; a run's archive is small and never needs one."))
    entries, size = struct.unpack_from("<HI", data, end + 10)
    if entries > MAX_ARCHIVE_ENTRIES or size > _MAX_DIRECTORY_BYTES:
        raise RunError(
            _("the archive lists {entries:,} entries ({size:,} bytes); a run has at most {most} files.").format(
                entries=entries, size=size, most=len(ARCHIVE_FILES)
            )
        )


def _members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The archive's files by name: only a run's, each once, all in one folder, each within its size limit."""
    infos = archive.infolist()
    if len(infos) > MAX_ARCHIVE_ENTRIES:
        message = _("the archive holds {entries:,} entries; a run has at most {most} files.")
        raise RunError(message.format(entries=len(infos), most=len(ARCHIVE_FILES)))
    files: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if info.is_dir():
            continue
        name = PurePosixPath(info.filename).name
        if name not in ARCHIVE_FILES:
            raise RunError(
                _("unexpected file {file} in the archive; a run holds only {files}.").format(
                    file=shown(info.filename), files=", ".join(ARCHIVE_FILES)
                )
            )
        if name in files:
            raise RunError(_("{name} is in the archive twice.").format(name=name))
        if info.file_size > ARCHIVE_FILES[name]:
            message = _("{name} is {size:,} bytes, more than a run's {most:,}.")
            raise RunError(message.format(name=name, size=info.file_size, most=ARCHIVE_FILES[name]))
        files[name] = info
    missing = [n for n in REQUIRED_FILES if n not in files]
    if missing:
        raise RunError(_("the archive lacks {files}.").format(files=", ".join(missing)))
    if len({PurePosixPath(i.filename).parent for i in files.values()}) > 1:
        raise RunError(_("the archive's files are in different folders; a run's are in one."))
    return files


def _unpack(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> bytes:
    with archive.open(info) as src:
        content = src.read(ARCHIVE_FILES[name] + 1)  # never more than the limit, whatever the header said
    if len(content) > ARCHIVE_FILES[name]:
        message = _("{name} is larger than it claims (more than a run's {most:,} bytes).")
        raise RunError(message.format(name=name, most=ARCHIVE_FILES[name]))
    return content


def import_run(data: bytes, root: Path | str | None = None, owner: str = "") -> Path:
    """Add a run from an archive made by ``export_run`` for ``owner`` (an owners.owner_id; "" from the command
    line: shared). Untrusted: every file is bounded in size before it is unpacked and checked with the same
    schema as any run folder before anything is written, weights are read with safetensors (never unpickled),
    and the run is marked imported, private to ``owner``. It gets a new id (the archive's folder name and
    48 random bits), so it never takes the place of a run that is or was here. A refused archive changes
    nothing; one that does not fit the owner's or the server's disk budget is refused."""
    if len(data) > MAX_ARCHIVE_BYTES:
        message = _("the archive is {size:,} bytes; the limit is {most:,}.")
        raise RunError(message.format(size=len(data), most=MAX_ARCHIVE_BYTES))
    _check_directory(data)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = _members(archive)
            files = {name: _unpack(archive, info, name) for name, info in members.items()}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, EOFError, OSError) as exc:
        message = _("not a zip archive of a run, or a damaged one ({error}).")
        raise RunError(message.format(error=str(exc)[:200])) from None
    except (RuntimeError, NotImplementedError, ValueError) as exc:  # encrypted, an unknown compression
        raise RunError(_("the archive cannot be unpacked ({error}).").format(error=str(exc)[:200])) from None
    meta, *_rest = parse_run(files, lambda name: members[name].filename, with_model=True)
    # whatever the archive said: a run from elsewhere is its importer's, private, never another visitor's default
    meta.imported, meta.owner, meta.shared = True, owner, False
    files["run.json"] = json.dumps(meta.to_dict(), indent=2).encode()

    name = PurePosixPath(members["run.json"].filename).parent.name
    if name.lower().startswith(STUDY_STORE):
        message = _("the archive's folder is named {name}, like this app's study store; rename the folder.")
        raise RunError(message.format(name=repr(name)))
    if not name or not set(name) <= _SAFE_ID or name.startswith(".") or len(name) > 80:
        name = "imported"
    root = runs_root(root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        make_room(root, owner, sum(map(len, files.values())))
    except QuotaError as exc:
        raise RunError(str(exc)) from None
    tmp = root / f".import-{secrets.token_hex(4)}.partial"
    tmp.mkdir()
    try:
        for file_name, content in files.items():
            (tmp / file_name).write_bytes(content)
        target = root / f"{name.removesuffix('.partial')}-i{secrets.token_hex(6)}"
        while target.exists():  # 48 random bits: never in practice, but never two imports in one folder
            target = root / f"{name.removesuffix('.partial')}-i{secrets.token_hex(6)}"
        tmp.rename(target)
        return target
    except OSError as exc:
        raise RunError(_("the run could not be written to {root} ({error}).").format(root=root, error=exc)) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
