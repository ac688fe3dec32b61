"""Every record of the webhooks stream: the changes of webhooks, and of the policies that sign
their messages. Services fold both from the one stream, so a webhook and the policy it names are
always read in the order they were written."""

from __future__ import annotations

from typing import Annotated, TypeAlias

from pydantic import Field, TypeAdapter

from schemas.markers import ReaderSynced
from schemas.webhook_policies import WebhookPolicyChange
from schemas.webhooks import WebhookChange

StreamChange: TypeAlias = WebhookChange | WebhookPolicyChange
# Markers (ReaderSynced) are skipped by readers before parsing, and parsed here only in case an
# old reader wrote one without its message type.
StreamRecord: TypeAlias = Annotated[StreamChange | ReaderSynced, Field(discriminator="kind")]
STREAM_RECORD: TypeAdapter[StreamRecord] = TypeAdapter(StreamRecord)
