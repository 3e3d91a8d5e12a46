"""Tables of the store; unique keys are what make every redelivery harmless."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Times are unix seconds (float): portable between SQLite and PostgreSQL and cheap to compare.

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("gateway", sa.String(64), nullable=False),
    sa.Column("number", sa.String(64), nullable=False),
    sa.Column("alias", sa.String(255)),
    sa.Column("device", sa.String(128)),
    sa.Column("sim", sa.Integer),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("gateway", "number", name="uq_conversations_gateway_number"),
)

threads = sa.Table(
    "threads",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("conversation_id", sa.ForeignKey("conversations.id"), nullable=False),
    sa.Column("chat", sa.String(64), nullable=False),
    sa.Column("thread_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    # /close: set until the number's next SMS (or /reopen) reopens the thread
    sa.Column("closed_at", sa.Float),
    sa.UniqueConstraint("conversation_id", "chat", name="uq_threads_conversation_chat"),
    sa.Index("ix_threads_chat_thread", "chat", "thread_id"),
)

inbound = sa.Table(
    "inbound",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("gateway", sa.String(64), nullable=False),
    sa.Column("provider_id", sa.String(255), nullable=False),
    sa.Column("conversation_id", sa.ForeignKey("conversations.id"), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("gateway", "provider_id", name="uq_inbound_gateway_provider"),
)

# Files that came with inbound SMS (MMS images): stored with the SMS, so a webhook is answered
# only once its media is safe too; ``url`` when the gateway keeps the content for us to fetch.
attachments = sa.Table(
    "attachments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("inbound_id", sa.ForeignKey("inbound.id"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("content_type", sa.String(255), nullable=False),
    sa.Column("name", sa.String(255)),
    sa.Column("data", sa.LargeBinary),
    sa.Column("url", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("inbound_id", "position", name="uq_attachments_inbound_position"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("conversation_id", sa.ForeignKey("conversations.id"), nullable=False),
    sa.Column("gateway", sa.String(64), nullable=False),
    sa.Column("number", sa.String(64), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("device", sa.String(128)),
    sa.Column("sim", sa.Integer),
    sa.Column("origin_chat", sa.String(64), nullable=False),
    sa.Column("origin_message_id", sa.String(64), nullable=False),
    sa.Column("author", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("provider_id", sa.String(255)),
    sa.Column("raw_status", sa.String(255)),
    sa.Column("reason", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    # Set before the gateway is called and cleared after: a row left set by a crash may have
    # been sent, so it is reconciled with the gateway before any retry.
    sa.Column("in_flight", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("attempt_started_at", sa.Float),
    # reply | retry | confirmation: an opt-out confirmation alone may reach an opted-out number
    sa.Column("purpose", sa.String(16), nullable=False, server_default="reply"),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("origin_chat", "origin_message_id", name="uq_outbox_origin"),
    sa.Index("ix_outbox_gateway_status", "gateway", "status", "id"),
    sa.Index("ix_outbox_provider", "gateway", "provider_id"),
)

chat_jobs = sa.Table(
    "chat_jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("chat", sa.String(64), nullable=False),
    # sms | file | echo | notice | status | rename
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("conversation_id", sa.ForeignKey("conversations.id")),
    sa.Column("inbound_id", sa.ForeignKey("inbound.id")),
    sa.Column("outbox_id", sa.ForeignKey("outbox.id")),
    sa.Column("text", sa.Text),
    sa.Column("thread_id", sa.String(64)),  # explicit placement for notices outside threads
    sa.Column("message_id", sa.String(64)),  # reply target (notice) or reaction target (status)
    # what a ``file`` job uploads; named as migration 0002 names it, so a new database built
    # from this declaration has the constraint a later migration would drop by name
    sa.Column(
        "attachment_id",
        sa.ForeignKey("attachments.id", name="fk_chat_jobs_attachment_id_attachments"),
    ),
    sa.Column("private_to", sa.String(64)),  # a notice only this chat user should see
    # a route's fixed thread (by title) instead of the number's own
    sa.Column("fixed_thread", sa.String(255)),
    # false: the route is alerts only, so replies to what this job posts are refused
    sa.Column("replies", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("state", sa.String(16), nullable=False),  # pending | done | failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("done_at", sa.Float),
    sa.Index("ix_chat_jobs_chat_state", "chat", "state", "id"),
)

chat_messages = sa.Table(
    "chat_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("chat", sa.String(64), nullable=False),
    sa.Column("message_id", sa.String(64), nullable=False),
    sa.Column("thread_id", sa.String(64)),  # where it is, so replies to it land beside it
    sa.Column("conversation_id", sa.ForeignKey("conversations.id"), nullable=False),
    sa.Column("inbound_id", sa.ForeignKey("inbound.id")),
    sa.Column("outbox_id", sa.ForeignKey("outbox.id")),
    sa.Column("shown_status", sa.String(16)),
    sa.Column("replies", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("chat", "message_id", name="uq_chat_messages_chat_message"),
    sa.Index("ix_chat_messages_outbox", "outbox_id"),
)

cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

seen_events = sa.Table(
    "seen_events",
    metadata,
    sa.Column("source", sa.String(128), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_seen_events_created", "created_at"),
)

# Status updates that arrived before we recorded the provider id they refer to (a fast gateway
# can call back before our send call returns); applied when the id is recorded.
orphan_updates = sa.Table(
    "orphan_updates",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("gateway", sa.String(64), nullable=False),
    sa.Column("provider_id", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("raw_status", sa.String(255), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_orphan_updates_provider", "gateway", "provider_id"),
)

# Singleton duties of a deployment (a gateway's polling, a chat's posting …): the instance named
# in ``holder`` owns one until ``expires_at``, by the database's clock, and renews it well
# before; a dead owner's duties pass to another instance once its lease runs out.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("holder", sa.String(128), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("acquired_at", sa.Float, nullable=False),
)

# Threads a route gives all its SMS (``thread: "Codes"``), by chat and title.
named_threads = sa.Table(
    "named_threads",
    metadata,
    sa.Column("chat", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("thread_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

# A route's ``collapse``: the same text from the same sender within the window is one post,
# the first one (``inbound_id``), edited to show ``count``.
collapses = sa.Table(
    "collapses",
    metadata,
    sa.Column("chat", sa.String(64), primary_key=True),
    sa.Column("conversation_id", sa.Integer, primary_key=True),
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("inbound_id", sa.Integer, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
)

# What people know about a number, whatever gateway it writes through: the name a person gave
# it (/name, `smsbridge contacts import`), which a gateway's alias never overwrites; whether it
# opted out (STOP, or a gateway's opt-out error) and whether the team blocked it.
contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column("number", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255)),
    sa.Column("opted_out_at", sa.Float),  # None: it may be texted
    sa.Column("blocked_at", sa.Float),  # None: its SMS are posted and answered
    sa.Column("updated_at", sa.Float, nullable=False),
)

# Pictures and files a person posted to go out as MMS. The gateway fetches them from
# /media/<token> (Twilio's MediaUrl), so the token is random and stops working at expires_at.
outbox_media = sa.Table(
    "outbox_media",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("outbox_id", sa.ForeignKey("outbox.id"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("content_type", sa.String(255), nullable=False),
    sa.Column("name", sa.String(255)),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("token", name="uq_outbox_media_token"),
    sa.UniqueConstraint("outbox_id", "position", name="uq_outbox_media_outbox_position"),
)
