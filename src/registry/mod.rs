//! The Schema Registry adapter: registers Rallypoint's schemas and looks up the ids of the
//! records it reads, filling the codec's id table.
//!
//! # Subjects
//! One topic carries several record types (an incidents topic carries every type that
//! `rallypoint_core::event::Event::TYPES` puts on `Stream::Incidents`), so subjects follow
//! Confluent's *RecordNameStrategy*: the subject of a schema is its record's full name
//! (`rallypoint.` and the type's name), whatever the topic. A type has one schema history, shared by
//! every nation's topics, and its compatibility is checked in one place.
//!
//! # When the registry does not answer
//! A record whose id Rallypoint does not know yet cannot be decoded without the registry. That
//! is not the record's fault, so it does not go to the dead-letter topic: the stage commits
//! what it has done before that record, waits, and reads the record again, until the registry
//! answers (see [`crate::kafka::Handled::NotYet`]). Records whose ids are known meanwhile are
//! not affected until such a record comes up. An id the registry answers for but that is not a
//! Rallypoint schema (or a version this one cannot read) goes to the dead-letter topic as
//! `unknown_schema`, with the reason.

mod client;

pub use client::{basic_auth, Client, RegistryError};

use std::sync::Mutex;
use std::time::Duration;

use crate::codec::{Codec, Learnt};
use crate::config::Config;

/// The codec, and the registry it learns ids from when one is configured.
pub struct Schemas {
    codec: Codec,
    client: Option<Client>,
    /// Set once every schema is registered (both stages ask; the first does the work).
    registered: Mutex<bool>,
}

impl Schemas {
    /// The codec, and a client of the configured registry, if any. Nothing is sent yet.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let client = if config.schema_registry.is_configured() {
            Some(Client::new(&config.schema_registry)?)
        } else {
            None
        };
        Ok(Self {
            codec: Codec::new()?,
            client,
            registered: Mutex::new(false),
        })
    }

    /// As [`Schemas::new`], then registers at once (for the command-line tools).
    pub fn connect(config: &Config) -> anyhow::Result<Self> {
        let s = Self::new(config)?;
        s.register()?;
        Ok(s)
    }

    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    pub fn client(&self) -> Option<&Client> {
        self.client.as_ref()
    }

    /// Registers every schema under its subject (idempotent: a registered schema keeps its
    /// id) and from then on frames what the codec writes with the registered ids. Without a
    /// registry it does nothing.
    pub fn register(&self) -> Result<(), RegistryError> {
        let Some(client) = &self.client else {
            return Ok(());
        };
        let mut done = self.registered.lock().unwrap_or_else(|e| e.into_inner());
        if *done {
            return Ok(());
        }
        for s in self.codec.schemas() {
            let subject = s.full_name();
            let id = client.register(&subject, &s.json)?;
            self.codec.set_registered_id(s.name, id);
            tracing::info!(subject, id, registry = client.url(), "schema registered");
        }
        *done = true;
        Ok(())
    }

    /// [`Schemas::register`], waiting out an unavailable registry (with a growing pause, up
    /// to 10 s) until it answers or `stop` is set. A refusal is returned at once: it needs a
    /// person (an incompatible schema, wrong credentials). `Ok(false)` when stopped first.
    pub fn register_patiently(
        &self,
        stage: &str,
        stop: &crate::stop::Stop,
    ) -> anyhow::Result<bool> {
        let mut wait = Duration::from_millis(200);
        loop {
            crate::kafka::watchdog::beat();
            match self.register() {
                Ok(()) => return Ok(true),
                Err(e) if e.is_transient() && !stop.is_stopped() => {
                    tracing::warn!(stage, error = %e, "cannot register the schemas yet, retrying");
                    stop.sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
                Err(e) if e.is_transient() => return Ok(false),
                Err(e) => return Err(anyhow::Error::new(e).context("registering the schemas")),
            }
        }
    }

    /// Makes `bytes` decodable if it is a Confluent-framed record whose id the codec has not
    /// met: asks the registry what the id is. `Err` when the registry cannot tell now (the
    /// caller waits and tries again); an answer that makes the record unreadable is an `Ok`,
    /// and decoding then rejects the record with the reason.
    pub fn prepare(&self, bytes: &[u8]) -> Result<(), RegistryError> {
        let (Some(client), Some(id)) = (&self.client, self.codec.id_to_look_up(bytes)) else {
            return Ok(());
        };
        let text = match client.schema_by_id(id) {
            Ok(text) => text,
            // Only a refusal of the lookup itself (e.g. wrong credentials) lands here: that is
            // the configuration's fault, not the record's, so it waits like an outage.
            Err(RegistryError::Refused {
                status, message, ..
            }) => {
                return Err(RegistryError::Unavailable {
                    url: client.url().to_owned(),
                    why: format!("GET /schemas/ids/{id} refused with HTTP {status}: {message}"),
                })
            }
            Err(e) => return Err(e),
        };
        match self.codec.learn_registry_schema(id, text.as_deref()) {
            Learnt::Current(name) => tracing::info!(id, name, "registry id learnt"),
            Learnt::OtherVersion(name) => {
                tracing::info!(
                    id,
                    name,
                    "registry id learnt: another version, resolved to the current schema"
                )
            }
            Learnt::Unreadable(why) => tracing::warn!(id, %why, "registry id is not readable"),
            Learnt::Missing => tracing::warn!(id, "the registry has no schema with this id"),
        }
        Ok(())
    }
}
