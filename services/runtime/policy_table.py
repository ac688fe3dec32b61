"""The webhook policies a service folds from the webhooks stream, beside its webhooks."""

from __future__ import annotations

from schemas.webhook_policies import PolicyState, WebhookPolicyChange, evolve_policy


class PolicyTable:
    """Policies by id, keys included: routers check the ids webhooks name, senders sign with
    the keys. A handful per install, so neither an index nor listeners."""

    def __init__(self) -> None:
        self.policies: dict[str, PolicyState] = {}

    def get(self, policy_id: str) -> PolicyState | None:
        return self.policies.get(policy_id)

    def apply(self, record: WebhookPolicyChange, offset: int) -> None:
        after = evolve_policy(self.policies.get(record.policy_id), record, offset)
        if after is None:
            self.policies.pop(record.policy_id, None)
        else:
            self.policies[record.policy_id] = after

    def reset(self) -> None:
        """Forget every policy: the stream is read again from its start."""
        self.policies = {}
