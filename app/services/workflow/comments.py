"""Comments and attachments on any work item, and the item addressing the whole workflow shares.

A work item is (``item_type``, ``item_id``) where ``item_type`` is the item's table name, the word the audit trail
and the change feed use (``breaks``, ``trades``, ``recon_matches``, ``settlement_instructions``, ``corrections``);
the singular words a person types (``break``, ``trade`` ...) are accepted too.

Comments are append-only notes (never edited, never deleted: they are part of the item's story). Attachments are
files kept in the database (a custodian's screenshot, a confirmation PDF) with their SHA-256, checked again when
the file is read back, and a size limit so a mistaken drop of a huge file does not bloat the shared database.
Both are audited and announced on the change feed under the item's own table, so the item's pane refreshes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import mimetypes
import posixpath
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from app.models import Break, ReconMatch, SettlementInstruction, Trade, User
from app.models.enums import ChangeAction
from app.models.workflow import Attachment, Comment, Correction
from app.services import audit
from app.services.db import Database
from app.services.errors import NotFound, ValidationFailed
from app.services.permissions import Actor, Permission, require

# item_type (table name) -> model; the singular aliases people type.
ITEM_MODELS: dict[str, type] = {
    "breaks": Break,
    "trades": Trade,
    "recon_matches": ReconMatch,
    "settlement_instructions": SettlementInstruction,
    "corrections": Correction,
}
_ALIASES = {
    "break": "breaks",
    "trade": "trades",
    "match": "recon_matches",
    "recon_match": "recon_matches",
    "instruction": "settlement_instructions",
    "settlement_instruction": "settlement_instructions",
    "correction": "corrections",
}
ITEM_LABELS = {
    "breaks": "break",
    "trades": "trade",
    "recon_matches": "match",
    "settlement_instructions": "settlement instruction",
    "corrections": "correction",
}

MAX_COMMENT_CHARS = 10_000
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024  # 10 MiB: statements and screenshots, not archives


def item_table(item_type: str) -> str:
    """The table name for a work-item word; ValidationFailed for an unknown kind."""
    key = (item_type or "").strip().lower()
    key = _ALIASES.get(key, key)
    if key not in ITEM_MODELS:
        raise ValidationFailed(
            f"'{item_type}' is not a kind of work item; use one of {', '.join(sorted(ITEM_MODELS))}."
        )
    return key


def item_label(item_type: str, item_id: int) -> str:
    return f"{ITEM_LABELS.get(item_table(item_type), item_type)} #{item_id}"


def require_item(session: Session, item_type: str, item_id: int) -> str:
    """The item's table name, after checking the item exists (NotFound otherwise)."""
    table = item_table(item_type)
    model = ITEM_MODELS[table]
    if session.scalar(select(func.count()).select_from(model).where(model.id == item_id)) == 0:
        raise NotFound(f"The {ITEM_LABELS[table]} #{item_id} does not exist (it may have been deleted).")
    return table


def usernames(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(session.execute(select(User.id, User.username).where(User.id.in_(wanted))).all())


@dataclass(frozen=True)
class CommentView:
    id: int
    item_type: str
    item_id: int
    author: str
    body: str
    created_at: dt.datetime  # aware UTC


@dataclass(frozen=True)
class AttachmentInfo:
    id: int
    item_type: str
    item_id: int
    file_name: str
    media_type: str
    size: int
    sha256: str
    uploaded_by: str
    uploaded_at: dt.datetime


@dataclass(frozen=True)
class AttachmentData:
    info: AttachmentInfo
    content: bytes


def add_comment(db: Database, actor: Actor, item_type: str, item_id: int, body: str) -> int:
    """Append a comment to an item. Returns the comment's id."""
    require(actor, Permission.WORK_ITEMS)
    text = (body or "").strip()
    if not text:
        raise ValidationFailed("A comment needs some text.")
    if len(text) > MAX_COMMENT_CHARS:
        raise ValidationFailed(
            f"A comment is at most {MAX_COMMENT_CHARS:,} characters (this one has {len(text):,})."
        )
    with db.write() as s:
        return add_comment_in(s, actor, item_type, item_id, text)


def add_comment_in(session: Session, actor: Actor, item_type: str, item_id: int, body: str) -> int:
    """Append a comment in the caller's unit of work (used by rejections, which comment as they reject)."""
    table = require_item(session, item_type, item_id)
    row = Comment(item_type=table, item_id=item_id, author_id=actor.user_id, body=body)
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "comments.add",
        "comments",
        row.id,
        after={"item_type": table, "item_id": item_id, "body": body},
        change=None,
    )
    # The item's own pane reloads on its table's change (its history shows the comment).
    audit.publish(session, actor, table, item_id, ChangeAction.UPDATE, {"action": "comment"})
    return int(row.id)


def comments(db: Database, actor: Actor, item_type: str, item_id: int) -> list[CommentView]:
    """The comments on an item, oldest first."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        table = item_table(item_type)
        rows = s.scalars(
            select(Comment).where(Comment.item_type == table, Comment.item_id == item_id).order_by(Comment.id)
        ).all()
        names = usernames(s, {r.author_id for r in rows})
        return [
            CommentView(
                r.id, table, item_id, names.get(r.author_id, f"user #{r.author_id}"), r.body, r.created_at
            )
            for r in rows
        ]


def _clean_file_name(file_name: str) -> str:
    # Keep only the last path component (a Windows path too): the name is shown and offered on save, never used
    # as a path on the reader's machine.
    name = posixpath.basename((file_name or "").replace("\\", "/")).strip()
    name = "".join(ch for ch in name if ch.isprintable())
    if not name or name in (".", ".."):
        raise ValidationFailed("An attachment needs a file name.")
    return name[:500]


def add_attachment(
    db: Database,
    actor: Actor,
    item_type: str,
    item_id: int,
    file_name: str,
    content: bytes,
    media_type: str | None = None,
) -> int:
    """Attach a file to an item (at most MAX_ATTACHMENT_BYTES). Returns the attachment's id."""
    require(actor, Permission.WORK_ITEMS)
    name = _clean_file_name(file_name)
    if not isinstance(content, bytes | bytearray | memoryview):
        raise ValidationFailed("An attachment's content must be bytes (the file as read from disk).")
    data = bytes(content)
    if not data:
        raise ValidationFailed(f"{name} is empty; nothing was attached.")
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise ValidationFailed(
            f"{name} is {len(data) / 1048576:.1f} MiB; attachments are limited to "
            f"{MAX_ATTACHMENT_BYTES // 1048576} MiB. Attach a smaller extract or a reference to where it is kept."
        )
    mtype = (media_type or mimetypes.guess_type(name)[0] or "application/octet-stream").strip()[:100]
    digest = hashlib.sha256(data).hexdigest()
    with db.write() as s:
        table = require_item(s, item_type, item_id)
        row = Attachment(
            item_type=table,
            item_id=item_id,
            file_name=name,
            media_type=mtype,
            content=data,
            sha256=digest,
            uploaded_by_id=actor.user_id,
        )
        s.add(row)
        s.flush()
        audit.record(
            s,
            actor,
            "attachments.add",
            "attachments",
            row.id,
            after={
                "item_type": table,
                "item_id": item_id,
                "file_name": name,
                "size": len(data),
                "sha256": digest,
            },
            change=None,
        )
        audit.publish(s, actor, table, item_id, ChangeAction.UPDATE, {"action": "attachment"})
        return int(row.id)


def _info(row: Attachment, size: int, names: dict[int, str]) -> AttachmentInfo:
    return AttachmentInfo(
        id=row.id,
        item_type=row.item_type,
        item_id=row.item_id,
        file_name=row.file_name,
        media_type=row.media_type,
        size=size,
        sha256=row.sha256,
        uploaded_by=names.get(row.uploaded_by_id, f"user #{row.uploaded_by_id}"),
        uploaded_at=row.uploaded_at,
    )


def attachments(db: Database, actor: Actor, item_type: str, item_id: int) -> list[AttachmentInfo]:
    """The files attached to an item (without their content), oldest first."""
    require(actor, Permission.VIEW)
    table = item_table(item_type)
    with db.read() as s:
        rows = s.execute(
            select(Attachment, func.length(Attachment.content))
            .options(defer(Attachment.content))
            .where(Attachment.item_type == table, Attachment.item_id == item_id)
            .order_by(Attachment.id)
        ).all()
        names = usernames(s, {r.uploaded_by_id for r, _ in rows})
        # Detached rows without their content: only the listing is wanted here.
        return [_info(r, int(n or 0), names) for r, n in rows]


def attachment(db: Database, actor: Actor, attachment_id: int) -> AttachmentData:
    """One attached file with its content; refused if the stored bytes no longer match their SHA-256."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        row = s.get(Attachment, attachment_id)
        if row is None:
            raise NotFound(f"Attachment #{attachment_id} does not exist.")
        content = bytes(row.content)
        if hashlib.sha256(content).hexdigest() != row.sha256:
            raise ValidationFailed(
                f"Attachment #{attachment_id} ({row.file_name}) does not match the checksum recorded when it was "
                "attached; it has been altered in the database and is not shown."
            )
        names = usernames(s, {row.uploaded_by_id})
        return AttachmentData(_info(row, len(content), names), content)
