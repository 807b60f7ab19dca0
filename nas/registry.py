"""The model registry: fine-tuned sub-networks with their exports, costs and lineage.

An embedded SQLite database plus an artifact directory by default (any SQLAlchemy URL for
a team). Entries are versioned per name and never overwritten. A registration writes its
artifacts into a fresh directory first, hashes them, and only then inserts the database
row in one transaction, so a crash leaves either a complete entry or none (at worst an
unreferenced directory that ``edgenas registry gc`` removes).

Every registry database holds a random registry id, and every artifact directory it
writes holds an ``OWNER`` file with that id. ``gc`` removes only unreferenced directories
that provably belong to the database it has open: a mistyped ``--registry-url`` (an empty
database of another id) or a lost ``registry.db`` can never make it delete models. Concurrent writers are safe:
the (name, version) pair is unique and a writer that loses the race takes the next
version. Every artifact's sha256 is checked when an entry is loaded or exported.

Example::

    registry = ModelRegistry("edgenas-workspace/registry")
    entry = registry.register("digits-cpu", model, space, arch, device="this-cpu",
                              metrics={"accuracy": 91.2}, lineage={"study": "s1"})
    model = registry.load_model(entry.ref)          # a plain nn.Module
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from latency_predictors.database import database_url, mask_password, open_engine, sqlite_path
from nas.errors import EdgenasError
from nas.export import export_model
from nas.training.checkpoint import sha256_file
from search_spaces import SearchSpace, space_from_description


@dataclass(frozen=True)
class RegistryEntry:
    """One registered model version (``ref`` is ``name:vN``)."""

    id: int
    name: str
    version: int
    created_at: float
    space: dict[str, Any]
    arch: dict[str, Any]
    device: str
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    artifacts: dict[str, dict[str, str]] = field(default_factory=dict)  # format -> {file, sha256}
    artifact_dir: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}:v{self.version}"


OWNER_FILE = "OWNER"
"""In every artifact directory: the id of the registry database that wrote it."""


class ModelRegistry:
    """Registry at ``root`` (artifacts under ``root/artifacts``; database ``root/registry.db``
    unless ``url`` names another SQLAlchemy database)."""

    def __init__(self, root: str | Path, url: str | None = None, create: bool = True) -> None:
        import sqlalchemy as sa

        self.root = Path(root)
        self.artifacts = self.root / "artifacts"
        self.url = database_url(url or self.root / "registry.db")
        file = sqlite_path(self.url)
        if not create and file is not None and not file.is_file():
            raise EdgenasError(
                f"no registry database at {file}; `edgenas finetune` creates it when it registers a model "
                "(check --workspace and --registry-url)"
            )
        if create:
            self.artifacts.mkdir(parents=True, exist_ok=True)
        self._sa = sa
        self._engine = open_engine(self.url, "model registry")
        meta = sa.MetaData()
        self._info = sa.Table(
            "registry_info",
            meta,
            sa.Column("key", sa.String(100), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )
        self._table = sa.Table(
            "registry_entries",
            meta,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("name", sa.String(200), nullable=False),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("record", sa.Text, nullable=False),
            sa.UniqueConstraint("name", "version", name="uq_name_version"),
        )
        try:
            if not create and not sa.inspect(self._engine).has_table("registry_entries"):
                raise EdgenasError(f"{mask_password(self.url)} holds no model registry; check --registry-url")
            meta.create_all(self._engine)
            self.registry_id = self._registry_id()
        except sa.exc.SQLAlchemyError as exc:
            first = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise EdgenasError(f"cannot open the registry database {mask_password(self.url)} ({first}); fix "
                               "--registry-url or move the damaged file aside") from None

    def _registry_id(self) -> str:
        """This database's id (made once). A registry made before ids existed gets one, and the
        directories its entries reference are marked as its own."""
        sa = self._sa
        with self._engine.begin() as conn:
            row = conn.execute(sa.select(self._info.c.value).where(self._info.c.key == "registry_id")).first()
            if row is not None:
                return str(row[0])
            new = uuid.uuid4().hex
            try:
                conn.execute(self._info.insert().values(key="registry_id", value=new))
            except sa.exc.IntegrityError:  # another process made it first
                pass
        with self._engine.connect() as conn:
            value = str(conn.execute(sa.select(self._info.c.value).where(self._info.c.key == "registry_id")).scalar())
        for entry in self.list():
            folder = self.artifacts / entry.artifact_dir
            if folder.is_dir() and not (folder / OWNER_FILE).exists():
                (folder / OWNER_FILE).write_text(value + "\n")
        return value

    # --- writing --------------------------------------------------------------------
    def register(
        self,
        name: str,
        model: nn.Module,
        space: SearchSpace,
        arch: Any,
        *,
        device: str,
        metrics: dict[str, Any] | None = None,
        lineage: dict[str, Any] | None = None,
        formats: tuple[str, ...] = ("safetensors", "onnx", "torch_export"),
        tvm_target: dict[str, Any] | None = None,
    ) -> RegistryEntry:
        """Export ``model`` and add it as the next version of ``name``."""
        if not name or any(c in name for c in "/\\:") or name.startswith("."):
            raise EdgenasError(f"registry name {name!r} may not be empty or contain '/', '\\' or ':'")
        if "safetensors" not in formats:
            formats = ("safetensors", *formats)  # loading needs the weights
        uid = uuid.uuid4().hex
        staging = self.artifacts / f".staging-{uid}"
        final = self.artifacts / uid
        try:
            staging.mkdir(parents=True)
            (staging / OWNER_FILE).write_text(self.registry_id + "\n")
            written = export_model(
                model, _export_input(space, arch), staging, formats, stem="model", tvm_target=tvm_target
            )
            artifacts = {fmt: {"file": p.name, "sha256": sha256_file(p)} for fmt, p in written.items()}
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        record = {
            "space": space.describe(),
            "arch": space.arch_to_json(arch),
            "device": device,
            "metrics": metrics or {},
            "lineage": lineage or {},
            "artifacts": artifacts,
            "artifact_dir": uid,
        }
        try:
            return self._insert(name, record)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise

    def _insert(self, name: str, record: dict[str, Any]) -> RegistryEntry:
        sa = self._sa
        t = self._table
        for _ in range(20):
            try:
                with self._engine.begin() as conn:
                    current = conn.execute(
                        sa.select(sa.func.max(t.c.version)).where(t.c.name == name)
                    ).scalar()
                    version = (current or 0) + 1
                    created = time.time()
                    result = conn.execute(
                        t.insert().values(
                            name=name, version=version, created_at=created, record=json.dumps(record)
                        )
                    )
                    row_id = result.inserted_primary_key[0]
                return self._entry(row_id, name, version, created, record)
            except sa.exc.IntegrityError:
                time.sleep(0.05)  # another writer took this version: take the next one
            except sa.exc.OperationalError as exc:
                if "locked" not in str(exc):
                    raise EdgenasError(f"registry database error: {exc.orig}") from None
                time.sleep(0.2)
        raise EdgenasError(f"could not register {name!r}: the registry stayed busy; try again")

    # --- reading --------------------------------------------------------------------
    def list(self, name: str | None = None) -> list[RegistryEntry]:
        t = self._table
        query = self._sa.select(t).order_by(t.c.name, t.c.version)
        if name:
            query = query.where(t.c.name == name)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [self._entry(r.id, r.name, r.version, r.created_at, json.loads(r.record)) for r in rows]

    def get(self, ref: str | int) -> RegistryEntry:
        """An entry by ``name:vN``, ``name`` (latest version) or numeric id."""
        t = self._table
        text = str(ref)
        if text.isdigit():
            query = self._sa.select(t).where(t.c.id == int(text))
        elif ":v" in text and text.rsplit(":v", 1)[1].isdigit():
            name, version = text.rsplit(":v", 1)
            query = self._sa.select(t).where(t.c.name == name, t.c.version == int(version))
        else:
            query = self._sa.select(t).where(t.c.name == text).order_by(t.c.version.desc()).limit(1)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise EdgenasError(f"no registry entry {text!r}; `edgenas registry list` shows what exists")
        return self._entry(row.id, row.name, row.version, row.created_at, json.loads(row.record))

    def verify(self, ref: str | int) -> list[str]:
        """Problems with an entry's artifacts (missing or changed files); empty when intact."""
        entry = self.get(ref)
        problems = []
        for fmt, info in entry.artifacts.items():
            path = self.artifacts / entry.artifact_dir / info["file"]
            if not path.is_file():
                problems.append(f"{fmt}: {path} is missing")
            elif sha256_file(path) != info["sha256"]:
                problems.append(f"{fmt}: {path} was changed on disk (sha256 mismatch)")
        return problems

    def artifact(self, ref: str | int, fmt: str) -> Path:
        """Path of an entry's artifact in ``fmt`` after checking its sha256."""
        entry = self.get(ref)
        if fmt not in entry.artifacts:
            have = ", ".join(sorted(entry.artifacts))
            raise EdgenasError(f"{entry.ref} has no {fmt} export (it has {have}); re-register with that format")
        info = entry.artifacts[fmt]
        path = self.artifacts / entry.artifact_dir / info["file"]
        if not path.is_file():
            raise EdgenasError(f"{entry.ref}: artifact {path} is missing; the entry cannot be used")
        if sha256_file(path) != info["sha256"]:
            raise EdgenasError(f"{entry.ref}: {path} does not match its sha256 (changed on disk); refusing to use it")
        return path

    def load_model(self, ref: str | int) -> nn.Module:
        """The registered sub-network as a plain ``nn.Module`` in eval mode (sha256 checked)."""
        from safetensors.torch import load_file

        entry = self.get(ref)
        space = space_from_description(entry.space)
        arch = space.arch_from_json(entry.arch)
        model = space.build_static(arch)
        model.load_state_dict(load_file(str(self.artifact(ref, "safetensors"))))
        return model.eval()

    def export(self, ref: str | int, fmt: str, out_dir: str | Path) -> Path:
        """Copy an entry's artifact in ``fmt`` to ``out_dir`` (sha256 checked first)."""
        source = self.artifact(ref, fmt)
        entry = self.get(ref)
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise EdgenasError(f"--out-dir {out} is a file; name a folder to copy the artifact into")
        out.mkdir(parents=True, exist_ok=True)
        target = out / f"{entry.name}-v{entry.version}{source.suffix}"
        shutil.copyfile(source, target)
        return target

    def unreferenced(self) -> tuple[list[Path], list[Path]]:
        """Artifact directories no entry refers to: ``(ours, unknown)``. ``ours`` provably
        belong to this database (their ``OWNER`` file holds its id; a crash left them);
        ``unknown`` do not (another registry's, or ours from before ids, or a lost database's).
        Registrations in progress (staging folders under an hour old) are in neither."""
        if not self.artifacts.is_dir():
            return [], []
        used = {e.artifact_dir for e in self.list()}
        ours, unknown = [], []
        for path in sorted(self.artifacts.iterdir()):
            if not path.is_dir() or path.name in used:
                continue
            if path.name.startswith(".staging-") and time.time() - path.stat().st_mtime < 3600:
                continue
            owner = path / OWNER_FILE
            try:
                mine = owner.is_file() and owner.read_text().strip() == self.registry_id
            except (OSError, UnicodeDecodeError):
                mine = False
            (ours if mine else unknown).append(path)
        return ours, unknown

    def gc(self, paths: list[Path] | None = None) -> list[Path]:
        """Remove unreferenced directories that provably belong to this registry (``paths``: the
        ones :meth:`unreferenced` listed and the user agreed to); returns what was removed."""
        ours, _ = self.unreferenced()
        chosen = ours if paths is None else [p for p in paths if p in ours]
        for path in chosen:
            shutil.rmtree(path, ignore_errors=True)
        return chosen

    @staticmethod
    def _entry(row_id: int, name: str, version: int, created: float, record: dict[str, Any]) -> RegistryEntry:
        return RegistryEntry(id=row_id, name=name, version=version, created_at=created, **record)

    def to_json(self, entry: RegistryEntry) -> dict[str, Any]:
        return {**asdict(entry), "ref": entry.ref}


def _export_input(space: SearchSpace, arch: Any) -> Any:
    """What exporters trace ``arch``'s model on: a float input's shape, or an example input
    of another kind (token ids) itself."""
    example = space.example_input(arch)
    return space.input_shape(arch) if example.is_floating_point() else example
