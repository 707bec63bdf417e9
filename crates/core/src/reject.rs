//! Why an input was not applied. The reason is a bounded set (it labels metrics and the DLQ's
//! `error.reason` header); the detail is free text for a person.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// The bytes are not a record of any known framing or schema.
    Undecodable,
    /// Avro single-object or Confluent framing naming a schema we do not know.
    UnknownSchema,
    /// Larger than the configured maximum record size.
    Oversized,
    /// A field's value breaks a rule (format, range, cross-field).
    InvalidField,
    /// The event's nation is not the nation of the topic it came on.
    SpoofedNation,
    /// The event type does not belong on this topic (e.g. an offer on an incidents topic).
    WrongTopic,
    /// Reported further in the future than the allowed clock skew.
    FromTheFuture,
    /// The event id was applied before.
    DuplicateEventId,
    /// It creates an entity whose id exists.
    DuplicateEntity,
    /// It refers to an entity that does not exist.
    UnknownEntity,
    /// It acts on an entity of another nation.
    NotOwner,
    /// The entity is not in a state that allows it (closed incident, confirmed assignment).
    WrongState,
}

impl RejectReason {
    pub const ALL: [RejectReason; 12] = [
        RejectReason::Undecodable,
        RejectReason::UnknownSchema,
        RejectReason::Oversized,
        RejectReason::InvalidField,
        RejectReason::SpoofedNation,
        RejectReason::WrongTopic,
        RejectReason::FromTheFuture,
        RejectReason::DuplicateEventId,
        RejectReason::DuplicateEntity,
        RejectReason::UnknownEntity,
        RejectReason::NotOwner,
        RejectReason::WrongState,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Undecodable => "undecodable",
            RejectReason::UnknownSchema => "unknown_schema",
            RejectReason::Oversized => "oversized",
            RejectReason::InvalidField => "invalid_field",
            RejectReason::SpoofedNation => "spoofed_nation",
            RejectReason::WrongTopic => "wrong_topic",
            RejectReason::FromTheFuture => "from_the_future",
            RejectReason::DuplicateEventId => "duplicate_event_id",
            RejectReason::DuplicateEntity => "duplicate_entity",
            RejectReason::UnknownEntity => "unknown_entity",
            RejectReason::NotOwner => "not_owner",
            RejectReason::WrongState => "wrong_state",
        }
    }
}

/// A rejected input: the reason code and what exactly was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.detail)
    }
}

impl std::error::Error for Rejection {}
