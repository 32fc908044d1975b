"""Every file a run writes or reads outside Delta tables goes through here: call journals, run leases and the
writer lock, staged requests' clean-up, the hub download cache, exports and reports. (Set-up files — the jars
and spark-defaults of ``make setup`` — and ``mfr sample``'s synthetic dump are local files written directly.)

Why fsspec and not Hadoop's FileSystem through the JVM: journals are written by Python on executors and
read by the driver, and a Spark Connect client has no JVM at all; fsspec works the same in all three
places, reaches local folders, FUSE mounts (Databricks Volumes, ``/dbfs``), ``s3``/``s3a`` (s3fs),
``abfss`` (adlfs) and ``gs`` (gcsfs), and takes its S3 endpoint from the same ``spark.hadoop.fs.s3a.*``
settings Spark uses, so one config reaches the same bucket from both sides. Credentials come from each
library's usual chain (environment, instance profile), never from the YAML.

Only whole objects are written (a put is atomic on object stores; local files are written under a
temporary name and renamed): no appends, which Volumes' FUSE mount refuses, and nothing that needs an
atomic rename on an object store.
"""

from __future__ import annotations

import os
import posixpath
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:  # pragma: no cover
    from fsspec import AbstractFileSystem

    from mfr.config import Config


class StorageError(RuntimeError):
    """A path cannot be read or written; the message is one line that names the path and the setting."""


def scheme(path: str | os.PathLike[str]) -> str:
    s = urlparse(str(path)).scheme
    return "" if len(s) <= 1 else s  # C:\ on Windows is a drive, not a scheme


def is_local(path: str | os.PathLike[str]) -> bool:
    """Local folders and FUSE mounts (``/Volumes``, ``dbfs:/`` → ``/dbfs``) take the OS's file calls."""
    return scheme(path) in ("", "file", "dbfs")


def appendable(path: str | os.PathLike[str]) -> bool:
    """Whether a file there can be appended to and flushed line by line: local disks yes; object stores
    no; Volumes' and DBFS's FUSE mounts refuse appends."""
    return is_local(path) and not shared_mount(path)


def local_path(path: str | os.PathLike[str]) -> str:
    """The OS path of a local or FUSE path (``dbfs:/Volumes/x`` → ``/Volumes/x``, ``dbfs:/x`` → ``/dbfs/x``)."""
    path = str(path)
    s = scheme(path)
    if s == "file":
        return urlparse(path).path
    if s == "dbfs":
        rest = "/" + path[len("dbfs:"):].lstrip("/")
        return rest if rest.startswith("/Volumes/") else "/dbfs" + rest
    return path


def shared_mount(path: str | os.PathLike[str]) -> bool:
    """A Databricks FUSE path (``/Volumes``, ``/dbfs``): the same files on every node of the cluster."""
    return is_local(path) and local_path(path).startswith(("/Volumes/", "/dbfs/"))


def spark_path(path: str | os.PathLike[str]) -> str:
    """``path`` as Spark must be told it. A bare path means the cluster's default filesystem to Spark (HDFS
    on EMR, DBFS on Databricks), so a folder of this machine's disk goes as a ``file:`` URI and ``/dbfs/x``
    as ``dbfs:/x``; Volumes paths and URIs go as they are."""
    path = str(path)
    if not is_local(path) or scheme(path) == "dbfs" or local_path(path).startswith("/Volumes/"):
        return path
    where = local_path(path)
    if where.startswith("/dbfs/"):
        return "dbfs:" + where[len("/dbfs"):]
    return "file:" + os.path.abspath(where)  # not percent-encoded: Hadoop reads the path as it is written


def join(root: str | os.PathLike[str], *parts: str) -> str:
    """``root/part/…`` for local paths and URIs alike (URIs keep their scheme and bucket)."""
    root = str(root)
    if is_local(root) and scheme(root) == "":
        return os.path.join(root, *parts)
    return posixpath.join(root.rstrip("/"), *parts)


def relative(root: str, found: str) -> str:
    """``found`` (as ``Storage.list_files`` returns it) relative to ``root``, with ``/`` separators."""
    base = os.path.abspath(local_path(root)) if is_local(root) else root.rstrip("/")
    return found[len(base):].lstrip("/") if found.startswith(base) else posixpath.basename(found)


def _s3_options(spark_conf: Mapping[str, Any]) -> dict[str, Any]:
    """s3fs options from the ``fs.s3a.*`` settings a Spark config carries (endpoint, path style, region)."""
    def get(name: str) -> str | None:
        for key in (f"spark.hadoop.fs.s3a.{name}", f"fs.s3a.{name}"):
            if spark_conf.get(key) not in (None, ""):
                return str(spark_conf[key])
        return None

    opts: dict[str, Any] = {}
    endpoint = get("endpoint")
    if endpoint:
        ssl = (get("connection.ssl.enabled") or "true").lower() != "false"
        opts["endpoint_url"] = endpoint if "://" in endpoint else ("https://" if ssl else "http://") + endpoint
    config: dict[str, Any] = {"connect_timeout": 10, "retries": {"max_attempts": 3, "mode": "standard"}}
    if (get("path.style.access") or "").lower() == "true":
        config["s3"] = {"addressing_style": "path"}
    region = get("endpoint.region")
    if region:
        opts["client_kwargs"] = {"region_name": region}
    opts["config_kwargs"] = config
    return opts


@dataclass(frozen=True)
class Storage:
    """Non-table file I/O for one config. Picklable: tasks on executors get a copy and open their own
    filesystem clients."""

    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Config) -> Storage:
        s = cfg.settings
        s3 = _s3_options(s.spark.conf or {})
        options: dict[str, dict[str, Any]] = {"s3": s3, "s3a": s3}
        for proto, extra in (s.storage.options or {}).items():
            merged = {**options.get(proto, {}), **dict(extra or {})}
            options[proto] = merged
            if proto in ("s3", "s3a"):
                options["s3"] = options["s3a"] = merged
        return cls(options)

    # ---- one filesystem per call (fsspec caches instances) ------------------------------------
    def _fs(self, path: str) -> tuple[AbstractFileSystem, str]:
        import fsspec

        if is_local(path):
            return fsspec.filesystem("file"), local_path(path)
        proto = scheme(path)
        try:
            fs = fsspec.filesystem(proto, **dict(self.options.get(proto, {})))
        except ImportError as exc:
            extra = {"s3": "s3", "s3a": "s3", "abfss": "azure", "abfs": "azure", "gs": "gcs"}.get(proto, proto)
            raise StorageError(f"{path}: {proto}:// needs an fsspec filesystem ({exc}); pip install 'mfr[{extra}]'") from None
        return fs, fs._strip_protocol(path)

    def _uri(self, path: str, found: str) -> str:
        """A path listed by fsspec, with the scheme the caller used (s3fs lists ``bucket/key``)."""
        if is_local(path):
            return found
        return f"{scheme(path)}://{found.lstrip('/')}"

    # ---- reads --------------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        fs, p = self._fs(path)
        return bool(fs.exists(p))

    def is_dir(self, path: str) -> bool:
        fs, p = self._fs(path)
        return bool(fs.isdir(p))

    def read_bytes(self, path: str) -> bytes:
        fs, p = self._fs(path)
        return bytes(fs.cat_file(p))

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8")

    def open(self, path: str, mode: str = "rb") -> Any:
        """A file object (reads fetch only the ranges asked for on object stores)."""
        fs, p = self._fs(path)
        return fs.open(p, mode)

    def list_files(self, root: str, suffix: str = "") -> list[str]:
        """Every file under ``root`` (recursive) whose name ends with ``suffix``, sorted; [] when absent."""
        fs, p = self._fs(root)
        try:
            found = fs.find(p)
        except FileNotFoundError:
            return []
        return sorted(self._uri(root, f) for f in found if f.endswith(suffix))

    def list_sizes(self, root: str, suffix: str = "") -> dict[str, int]:
        """``list_files`` with each file's size, from one listing (no request per file)."""
        fs, p = self._fs(root)
        try:
            found = fs.find(p, detail=True)
        except FileNotFoundError:
            return {}
        return {self._uri(root, f): int(d.get("size") or 0) for f, d in sorted(found.items()) if f.endswith(suffix)}

    def read_from(self, path: str, start: int) -> bytes:
        """The bytes of ``path`` from offset ``start`` on (a ranged read on object stores)."""
        fs, p = self._fs(path)
        return bytes(fs.cat_file(p, start=start))

    def list_dirs(self, root: str) -> list[str]:
        """Names of the folders directly under ``root``; [] when absent."""
        fs, p = self._fs(root)
        try:
            entries = fs.ls(p, detail=True)
        except FileNotFoundError:
            return []
        return sorted(posixpath.basename(e["name"].rstrip("/")) for e in entries if e.get("type") == "directory")

    def size(self, path: str) -> int | None:
        fs, p = self._fs(path)
        try:
            return int(fs.size(p))
        except FileNotFoundError:
            return None

    # ---- writes -------------------------------------------------------------------------------
    def write_bytes(self, path: str, data: bytes) -> None:
        """One whole object. Locally written under a temporary name and renamed, so a reader (or a retried
        task) never sees half a file; an object-store put is already all or nothing."""
        if is_local(path):
            target = local_path(path)
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            tmp = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.tmp-{secrets.token_hex(4)}")
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
            return
        fs, p = self._fs(path)
        fs.pipe_file(p, data)

    def write_text(self, path: str, text: str) -> None:
        self.write_bytes(path, text.encode("utf-8"))

    def put_file(self, local: str, path: str) -> None:
        """Copy a local file to ``path``."""
        if is_local(path):
            with open(local, "rb") as fh:
                self.write_bytes(path, fh.read())
            return
        fs, p = self._fs(path)
        fs.put_file(local, p)

    def download_folder(self, path: str, dest: str) -> str:
        """Copy every file under ``path`` into the local folder ``dest`` (layout kept); returns ``dest``."""
        for f in self.list_files(path):
            rel = relative(path, f)
            target = os.path.join(dest, *rel.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as fh:
                fh.write(self.read_bytes(f))
        return dest

    # ---- conditional writes (a lock object; local folders and S3 only) -----------------------
    # A token names one written content: the ETag on S3, a hash of the bytes locally. Each call either
    # happens whole against the content its token names, or not at all (S3's If-None-Match / If-Match;
    # locally O_EXCL, and a sidecar flock around compare-and-act).
    def create_new(self, path: str, text: str) -> str | None:
        """Write ``path`` only if it does not exist: its token, or None when it exists."""
        data = text.encode("utf-8")
        if is_local(path):
            target = local_path(path)
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            with _local_guard(target):
                try:
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    return None
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
            return _local_token(data)
        return self._s3_put(path, data, IfNoneMatch="*")

    def read_with_token(self, path: str) -> tuple[str, str] | None:
        """(text, token) of ``path``, None when absent."""
        if is_local(path):
            try:
                with open(local_path(path), "rb") as fh:
                    data = fh.read()
            except FileNotFoundError:
                return None
            return data.decode("utf-8"), _local_token(data)
        fs, bucket, key = self._s3(path)
        try:
            head = fs.call_s3("head_object", Bucket=bucket, Key=key)
            data = fs.cat_file(f"{bucket}/{key}")
        except FileNotFoundError:
            return None
        # the ETag read first: if the object changed in between, a write against this token is refused
        return data.decode("utf-8"), str(head["ETag"])

    def replace_if(self, path: str, token: str, text: str) -> str | None:
        """Overwrite ``path`` only while its content is the one ``token`` names: the new token, or None."""
        data = text.encode("utf-8")
        if is_local(path):
            return _local_token(data) if self._local_if(path, token, lambda _: self.write_bytes(path, data)) else None
        return self._s3_put(path, data, IfMatch=token)

    def delete_if(self, path: str, token: str) -> bool:
        """Remove ``path`` only while its content is the one ``token`` names."""
        if is_local(path):
            return self._local_if(path, token, os.remove)
        fs, bucket, key = self._s3(path)
        try:
            fs.call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=token)
        except Exception as exc:
            if _precondition_failed(exc) or isinstance(exc, FileNotFoundError):
                return False
            raise
        fs.invalidate_cache(f"{bucket}/{key}")
        return True

    def _local_if(self, path: str, token: str, act: Callable[[str], object]) -> bool:
        """``act`` on the local file ``path`` only while its content is the one ``token`` names."""
        target = local_path(path)
        with _local_guard(target):
            found = self.read_with_token(path)
            if found is None or found[1] != token:
                return False
            act(target)
        return True

    def _s3(self, path: str) -> tuple[Any, str, str]:
        if scheme(path) not in ("s3", "s3a", "s3n"):
            raise StorageError(f"{path}: conditional writes are used on local folders and S3 only")
        fs, p = self._fs(path)
        bucket, key, _ = fs.split_path(p)
        return fs, bucket, key

    def _s3_put(self, path: str, data: bytes, **condition: str) -> str | None:
        fs, bucket, key = self._s3(path)
        try:
            out = fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **condition)
        except Exception as exc:
            if _precondition_failed(exc) or ("IfMatch" in condition and isinstance(exc, FileNotFoundError)):
                return None
            raise
        finally:
            fs.invalidate_cache(f"{bucket}/{key}")
        return str(out["ETag"])

    def delete(self, path: str) -> None:
        """Remove a file or a folder with everything under it; nothing when absent."""
        fs, p = self._fs(path)
        try:
            if fs.exists(p):
                fs.rm(p, recursive=True)
        except FileNotFoundError:
            pass

    def makedirs(self, path: str) -> None:
        fs, p = self._fs(path)
        fs.makedirs(p, exist_ok=True)

    # ---- checks before a run writes anything --------------------------------------------------
    def check_readable(self, path: str, setting: str) -> None:
        """``path`` exists and can be listed, else a one-line StorageError naming it."""
        try:
            fs, p = self._fs(path)
            if not fs.exists(p):
                raise StorageError(f"{setting}: {path} does not exist")
            if not fs.isdir(p):
                raise StorageError(f"{setting}: {path} is a file, not a folder")
            fs.ls(p)
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"{setting}: cannot read {path}: {describe(exc)}") from None

    def check_writable(self, path: str, setting: str) -> None:
        """A probe object can be written under ``path`` and removed, else a one-line StorageError."""
        try:
            fs, p = self._fs(path)
            if fs.isfile(p):
                raise StorageError(f"{setting}: {path} is a file, not a folder")
            probe = join(path, f"_mfr_probe_{secrets.token_hex(4)}")
            self.write_bytes(probe, b"")
            self.delete(probe)
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"{setting}: cannot write under {path}: {describe(exc)}") from None


def describe(exc: BaseException) -> str:
    """One line for a storage failure: what kind, then the first line of the library's message."""
    name = type(exc).__name__
    text = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    low = f"{name} {text}".lower()
    if "nocredentials" in low or "unable to locate credentials" in low or "credentials" in low and "missing" in low:
        kind = "no credentials"
    elif isinstance(exc, PermissionError) or "accessdenied" in low or "access denied" in low or "forbidden" in low or "403" in low:
        kind = "permission denied"
    elif "nosuchbucket" in low or "bucket does not exist" in low or "specified bucket" in low:
        kind = "no such bucket"
    elif "connect" in low or "endpoint" in low or "timed out" in low or "name or service" in low:
        kind = "endpoint unreachable"
    elif isinstance(exc, (NotADirectoryError, FileExistsError)):
        kind = "a file is in the way"
    else:
        kind = name
    return f"{kind} ({name}: {text[:200]})" if text else kind


def _local_token(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@contextmanager
def _local_guard(target: str) -> Iterator[None]:
    """Exclusive among processes on this host for the compare-and-act on ``target`` (a sidecar lock file)."""
    import fcntl

    with open(f"{target}.guard", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _precondition_failed(exc: BaseException) -> bool:
    """S3 refused a conditional request: the object exists (If-None-Match) or changed (If-Match); 409 is a
    conditional request racing another on the same key, which also lost."""
    text = f"{type(exc).__name__} {exc}"
    return isinstance(exc, FileExistsError) or any(
        code in text for code in ("PreconditionFailed", "pre-conditions you specified", "ConditionalRequestConflict"))
