//! Events: what overcast noticed rather than did. Today, drift: a resource created,
//! changed (state, tags, stage) or deleted outside overcast, seen when the inventory
//! refreshed.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// What an event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A resource overcast did not make appeared.
    Created,
    /// A resource's state, tags or stage changed without overcast.
    Changed,
    /// A resource went without overcast removing it.
    Deleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Changed => "changed",
            EventKind::Deleted => "deleted",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        [EventKind::Created, EventKind::Changed, EventKind::Deleted]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// A change to a resource made outside overcast, as the inventory saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub id: String,
    /// When overcast noticed it (the refresh that saw it).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub environment: String,
    pub kind: EventKind,
    /// The kind of resource: `instance`, `image`, `security_group`, `bucket` or
    /// `container_service`.
    pub resource_kind: String,
    /// The resource's id: an instance, image or group id, a bucket name, a service ARN.
    pub resource: String,
    /// The resource's org (from its tags), which may see the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// What changed, each field that differs as `{"before": .., "after": ..}` (tags key
    /// by key): an instance's `state`, `stage` and `tags`; an image's `name`, `state` and
    /// `tags`; a group's `rules` and `tags`; a bucket's `versioning` and `tags`; a
    /// service's `status`, `task_definition`, `desired_count` and `tags`. For one created
    /// or deleted, the resource as it is or was.
    pub detail: serde_json::Value,
}
