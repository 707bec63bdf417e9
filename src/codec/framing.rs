//! How a record is framed, told from its first bytes: Avro single-object encoding, the
//! Confluent wire format, or JSON.

pub(super) const SINGLE_OBJECT: [u8; 2] = [0xC3, 0x01];
pub(super) const CONFLUENT_MAGIC: u8 = 0;
/// How a record is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    SingleObject,
    Confluent(u32),
    Json,
}

/// Output encoding of a topic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Avro,
    Json,
}

/// Detects the framing from the first bytes, or `None` when it is none of the three.
pub fn detect(bytes: &[u8]) -> Option<Framing> {
    match bytes {
        [0xC3, 0x01, ..] => Some(Framing::SingleObject),
        [CONFLUENT_MAGIC, a, b, c, d, ..] => {
            Some(Framing::Confluent(u32::from_be_bytes([*a, *b, *c, *d])))
        }
        _ => match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Some(Framing::Json),
            _ => None,
        },
    }
}

/// Bytes as lowercase hex, for messages about a record's framing.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
