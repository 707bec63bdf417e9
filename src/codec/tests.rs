use super::*;
use rallypoint_core::decision::Routed;
use rallypoint_core::event::{Capability, Priority, Tlp};
use rallypoint_core::sample::{self, Clock};
use rallypoint_core::{apply, CoreConfig, MemStore, Output};

fn every_event() -> Vec<Event> {
    let mut c = Clock::new(1_800_000_000_000, 1_000);
    vec![
        sample::incident(c.envelope("EST"), "I1", Tlp::AmberStrict, Priority::Severe),
        sample::request(c.envelope("EST"), "R1", "I1", &[(Capability::IcsOt, 3)]),
        sample::closed(c.envelope("EST"), "I1"),
        sample::offer(c.envelope("DEU"), "O1", Capability::IcsOt, 4),
        sample::withdrawn(c.envelope("DEU"), "O1"),
        sample::accepted(c.envelope("DEU"), "A-1"),
        sample::declined(c.envelope("DEU"), "A-1"),
        sample::incident_updated(c.envelope("EST"), "I1", Priority::Emergency),
        sample::offer_updated(c.envelope("DEU"), "O1", 2),
        sample::completed(c.envelope("DEU"), "A-1"),
        sample::sighted(
            c.envelope("LVA"),
            "S-1",
            Indicator::new(IndicatorKind::Domain, "c2.example.net".into()),
            SightingKind::TruePositive,
        ),
    ]
}

#[test]
fn the_samples_hold_one_event_of_every_type() {
    let mut names: Vec<&str> = every_event().iter().map(Event::type_name).collect();
    let mut types: Vec<&str> = Event::TYPES.iter().map(|t| t.name).collect();
    names.sort();
    types.sort();
    assert_eq!(names, types);
}

fn some_decisions() -> Vec<Routed> {
    let mut store = MemStore::new();
    let mut out = Vec::new();
    let events = every_event();
    let mut offer = events[3].clone();
    if let Event::AssetOffered(o) = &mut offer {
        o.max_tlp = Tlp::Red;
    }
    for e in [&events[0], &offer, &events[1]] {
        out.extend(apply(&mut store, &CoreConfig::default(), e).unwrap());
    }
    out.into_iter()
        .filter_map(|o| match o {
            Output::Decision(r) => Some(r),
            _ => None,
        })
        .collect()
}

#[test]
fn every_event_round_trips_through_single_object_avro() {
    let codec = Codec::new().unwrap();
    for e in every_event() {
        let bytes = codec.encode_event(&e);
        assert_eq!(detect(&bytes), Some(Framing::SingleObject));
        assert_eq!(codec.decode_event(&bytes).unwrap(), e);
    }
}

#[test]
fn every_event_round_trips_through_confluent_framing_with_a_known_id() {
    let codec = Codec::new().unwrap();
    for (i, e) in every_event().into_iter().enumerate() {
        let id = 100 + i as u32;
        assert!(codec.register_confluent_id(id, e.type_name()));
        let single = codec.encode_event(&e);
        let mut framed = vec![0];
        framed.extend(id.to_be_bytes());
        framed.extend(&single[10..]);
        assert_eq!(codec.decode_event(&framed).unwrap(), e);
    }
    let unknown = [0, 0, 0, 0, 9, 1, 2];
    assert_eq!(
        codec.decode_event(&unknown).unwrap_err().reason,
        RejectReason::UnknownSchema
    );
}

#[test]
fn json_input_uses_the_avro_field_names_and_a_type() {
    let codec = Codec::new().unwrap();
    let json = br#"{"type":"AssignmentDeclined","envelope":{"event_id":"5b1c8f1e-3a5b-4e0c-9a77-1c2d3e4f5a6b",
        "occurred_at":1800000000000,"reported_at":1800000000000,"nation":"DEU","schema_version":1},
        "assignment_id":"A-00000001","reason":"busy"}"#;
    let Event::AssignmentDeclined(d) = codec.decode_event(json).unwrap() else {
        panic!()
    };
    assert_eq!(
        (d.assignment_id.as_str(), d.envelope.nation.as_str()),
        ("A-00000001", "DEU")
    );
}

#[test]
fn garbage_truncation_and_unknown_fingerprints_are_rejected_with_a_reason() {
    let codec = Codec::new().unwrap();
    let good = codec.encode_event(&every_event()[0]);
    let cases: Vec<(Vec<u8>, RejectReason)> = vec![
        (b"\x7fELF garbage".to_vec(), RejectReason::Undecodable),
        (good[..good.len() / 2].to_vec(), RejectReason::Undecodable),
        (good[..6].to_vec(), RejectReason::Undecodable),
        (
            [&[0xC3, 0x01], &[9u8; 8][..], &good[10..]].concat(),
            RejectReason::UnknownSchema,
        ),
        (
            b"{\"type\":\"IncidentReported\"}".to_vec(),
            RejectReason::Undecodable,
        ),
        (
            b"{\"type\":\"Nonsense\"}".to_vec(),
            RejectReason::UnknownSchema,
        ),
        (b"{not json".to_vec(), RejectReason::Undecodable),
        ([good.clone(), vec![0]].concat(), RejectReason::Undecodable),
    ];
    for (bytes, reason) in cases {
        let got = codec.decode_event(&bytes).unwrap_err();
        assert_eq!(got.reason, reason, "{bytes:?}: {got}");
    }
}

#[test]
fn an_unknown_enum_symbol_in_json_is_rejected() {
    let codec = Codec::new().unwrap();
    let e = &every_event()[0];
    let mut v: serde_json::Value = serde_json::from_slice(&codec.encode_event_json(e)).unwrap();
    v["tlp"] = "PURPLE".into();
    let err = codec
        .decode_event(&serde_json::to_vec(&v).unwrap())
        .unwrap_err();
    assert!(err.detail.contains("PURPLE"), "{err}");
}

#[test]
fn decisions_round_trip_in_avro_and_json() {
    let codec = Codec::new().unwrap();
    let decisions = some_decisions();
    assert!(decisions.len() >= 3);
    for r in decisions {
        for format in [Format::Avro, Format::Json] {
            let bytes = codec.encode_decision(&r.decision, format);
            assert_eq!(
                codec.decode_decision(&bytes).unwrap(),
                r.decision,
                "{format:?}"
            );
        }
    }
}

#[test]
fn a_dead_letter_keeps_the_original_bytes() {
    let codec = Codec::new().unwrap();
    let dl = DeadLetter {
        reason: "spoofed_nation".into(),
        detail: "x".into(),
        source_topic: "rrc.in.EST.incidents".into(),
        source_partition: 2,
        source_offset: 42,
        source_timestamp: Some(1_800_000_000_000),
        original_key: Some(b"I1".to_vec()),
        original_value: vec![0, 159, 146, 150],
        original_headers: vec![Header {
            key: "trace".into(),
            value: Some(b"abc".to_vec()),
        }],
    };
    assert_eq!(
        codec
            .decode_dead_letter(&codec.encode_dead_letter(&dl))
            .unwrap(),
        dl
    );
}

/// A record of any event type as apache-avro's generic value.
struct ToValue;

impl rallypoint_core::event::Visit for ToValue {
    type Out = Result<apache_avro::types::Value, apache_avro::Error>;
    fn visit<T: rallypoint_core::event::EventType>(self, record: &T) -> Self::Out {
        apache_avro::to_value(record)
    }
}

#[test]
fn the_direct_encoder_writes_the_bytes_that_the_generic_avro_writer_writes() {
    use apache_avro::{to_avro_datum, to_value};
    let codec = Codec::new().unwrap();
    let generic = |name: &str, v: apache_avro::types::Value| {
        let schema = &codec
            .schemas()
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .schema;
        to_avro_datum(schema, v.resolve(schema).unwrap()).unwrap()
    };
    for e in every_event() {
        let value = e.visit(ToValue).unwrap();
        assert_eq!(
            codec.encode_event(&e)[10..],
            generic(e.type_name(), value)[..],
            "{}",
            e.type_name()
        );
    }
    for r in some_decisions() {
        let value = match &r.decision {
            Decision::AssignmentProposed(x) => to_value(x),
            Decision::AssignmentConfirmed(x) => to_value(x),
            Decision::AssignmentCancelled(x) => to_value(x),
            Decision::AssistanceUnmet(x) => to_value(x),
        }
        .unwrap();
        let ours = codec.encode_decision(&r.decision, Format::Avro);
        assert_eq!(ours[10..], generic(r.decision.type_name(), value)[..]);
    }
}

mod fuzz {
    //! Hostile bytes through every decoder and the validator: errors, never a panic.
    use super::*;
    use proptest::prelude::*;
    use rallypoint_core::validate::{validate, Limits, Origin};

    fn check(codec: &Codec, bytes: &[u8]) {
        if let Ok(e) = codec.decode_event(bytes) {
            let origin = Origin::from_topic("rrc.in.EST.incidents").unwrap();
            let _ = validate(&e, &origin, 1_800_000_000_000, &Limits::default());
        }
        let _ = codec.decode_decision(bytes);
        let _ = codec.decode_dead_letter(bytes);
        let _ = codec.decode_hunt(bytes);
    }

    /// One codec for all cases: compiling the schemas is the slow part.
    fn codec() -> &'static Codec {
        static CODEC: std::sync::OnceLock<Codec> = std::sync::OnceLock::new();
        CODEC.get_or_init(|| {
            let c = Codec::new().unwrap();
            for (i, name) in ["IncidentReported", "AssetOffered", "AssistanceRequested"]
                .iter()
                .enumerate()
            {
                c.register_confluent_id(i as u32 + 1, name);
            }
            c
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            check(codec(), &bytes);
        }

        #[test]
        fn damaged_avro_never_panics(which in 0usize..Event::TYPES.len(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
            let codec = codec();
            let mut bytes = codec.encode_event(&every_event()[which]);
            for (at, b) in flips {
                let i = 10 + at % (bytes.len() - 10);
                bytes[i] ^= b;
            }
            bytes.truncate(10 + cut % (bytes.len() - 9));
            check(codec, &bytes);
            // The same body behind Confluent framing.
            let framed = [&[0u8, 0, 0, 0, 1][..], &bytes[10..]].concat();
            check(codec, &framed);
        }

        #[test]
        fn damaged_json_never_panics(which in 0usize..Event::TYPES.len(), at in any::<usize>(), junk in "[ -~]{0,12}") {
            let codec = codec();
            let mut text = String::from_utf8(codec.encode_event_json(&every_event()[which])).unwrap();
            let i = at % text.len();
            let i = (0..=i).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            text.insert_str(i, &junk);
            check(codec, text.as_bytes());
        }

        #[test]
        fn huge_length_prefixes_are_refused_without_allocating_them(len in 20_000_000u64..u64::MAX / 4) {
            let codec = codec();
            let good = codec.encode_event(&every_event()[5]);
            // AssignmentAccepted: envelope.event_id is the first string; claim an enormous length.
            let mut bytes = good[..10].to_vec();
            let mut z = len << 1;
            while z >= 0x80 {
                bytes.push((z as u8 & 0x7f) | 0x80);
                z >>= 7;
            }
            bytes.push(z as u8);
            prop_assert!(codec.decode_event(&bytes).is_err());
        }
    }
}

/// An `AssistanceRequested` and its Avro body as the released (v1) schema `old` writes it:
/// without the `delivery` each need has gained since.
fn released_request(old: &schemas::Compiled) -> (Event, Vec<u8>) {
    let mut c = Clock::new(1_800_000_000_000, 1_000);
    let event = sample::request(c.envelope("EST"), "R1", "I1", &[(Capability::IcsOt, 3)]);
    let mut json = serde_json::to_value(match &event {
        Event::AssistanceRequested(r) => r,
        _ => unreachable!(),
    })
    .unwrap();
    for need in json["needs"].as_array_mut().unwrap() {
        need.as_object_mut().unwrap().remove("delivery");
    }
    let value = Value::from(json).resolve(&old.expanded).unwrap();
    (
        event,
        apache_avro::to_avro_datum(&old.expanded, value).unwrap(),
    )
}

/// A feed still on the last released schemas: its records decode, and fields added since take
/// their defaults.
#[test]
fn a_record_written_with_the_released_schema_decodes_with_new_fields_defaulted() {
    use rallypoint_core::event::Delivery;
    let codec = Codec::new().unwrap();
    let old = codec
        .released
        .iter()
        .find(|c| c.name == "AssistanceRequested")
        .expect("AssistanceRequested changed since the release");
    let (event, body) = released_request(old);
    let mut bytes = old.header().to_vec();
    bytes.extend(body);
    assert_ne!(
        old.fingerprint,
        codec.compiled("AssistanceRequested").fingerprint
    );
    let decoded = codec.decode_event(&bytes).unwrap();
    let Event::AssistanceRequested(r) = &decoded else {
        panic!("{decoded:?}")
    };
    assert_eq!(r.needs[0].delivery, Delivery::Either);
    assert_eq!(decoded, event);
}

#[test]
fn threat_picture_records_round_trip_in_avro_and_json() {
    let codec = Codec::new().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for (name, bytes) in samples(&codec) {
        if !["ThreatPicture", "CampaignDetected", "CampaignUpdated"].contains(&name) {
            continue;
        }
        let update = codec.decode_picture(&bytes).unwrap();
        assert_eq!(update.type_name(), name);
        assert_eq!(codec.encode_picture(&update, Format::Avro), bytes);
        let json = codec.encode_picture(&update, Format::Json);
        assert_eq!(codec.decode_picture(&json).unwrap(), update);
        seen.insert(name);
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}

/// With its schemas registered, the codec frames what it writes in the Confluent wire format,
/// and reads it back.
#[test]
fn registered_schemas_frame_every_output_with_their_registry_id() {
    let codec = Codec::new().unwrap();
    for (n, s) in codec.schemas().iter().enumerate() {
        assert!(codec.set_registered_id(s.name, 40 + n as u32));
    }
    let id_of = |bytes: &[u8]| match detect(bytes) {
        Some(Framing::Confluent(id)) => id,
        other => panic!("{other:?}"),
    };
    for e in every_event() {
        let bytes = codec.encode_event(&e);
        assert!(
            (40..55).contains(&id_of(&bytes)),
            "{}: {bytes:?}",
            e.type_name()
        );
        assert_eq!(codec.decode_event(&bytes).unwrap(), e);
    }
    for r in some_decisions() {
        let bytes = codec.encode_decision(&r.decision, Format::Avro);
        id_of(&bytes);
        assert_eq!(codec.decode_decision(&bytes).unwrap(), r.decision);
        let json = codec.encode_decision(&r.decision, Format::Json);
        assert_eq!(detect(&json), Some(Framing::Json));
    }
    let dl = samples(&codec).pop().unwrap().1;
    id_of(&dl);
    assert_eq!(
        codec.decode_dead_letter(&dl).unwrap().reason,
        "spoofed_nation"
    );
}

fn framed(id: u32, body: &[u8]) -> Vec<u8> {
    [&[0u8][..], &id.to_be_bytes(), body].concat()
}

fn registry_text(codec: &Codec, name: &str) -> String {
    codec.compiled(name).json.clone()
}

#[test]
fn a_registry_id_of_a_current_schema_decodes_once_learnt() {
    let codec = Codec::new().unwrap();
    let e = &every_event()[3];
    let bytes = framed(7, &codec.encode_event(e)[10..]);
    assert_eq!(codec.id_to_look_up(&bytes), Some(7));
    assert_eq!(
        codec.decode_event(&bytes).unwrap_err().reason,
        RejectReason::UnknownSchema
    );
    let text = registry_text(&codec, "AssetOffered");
    assert_eq!(
        codec.learn_registry_schema(7, Some(&text)),
        Learnt::Current("AssetOffered")
    );
    assert_eq!(codec.id_to_look_up(&bytes), None);
    assert_eq!(&codec.decode_event(&bytes).unwrap(), e);
}

#[test]
fn a_registry_id_of_the_released_version_is_read_and_resolved() {
    let codec = Codec::new().unwrap();
    let old = codec
        .released
        .iter()
        .find(|c| c.name == "AssistanceRequested")
        .unwrap();
    assert_eq!(
        codec.learn_registry_schema(8, Some(&old.json)),
        Learnt::OtherVersion("AssistanceRequested")
    );
    let (event, body) = released_request(old);
    assert_eq!(codec.decode_event(&framed(8, &body)).unwrap(), event);
}

/// A feed on a newer version that added a field with a default: its records are read with its
/// schema, and the field it added is dropped.
#[test]
fn a_compatible_other_version_is_read_and_an_incompatible_one_is_refused_with_the_reason() {
    let codec = Codec::new().unwrap();
    let current: serde_json::Value =
        serde_json::from_str(&registry_text(&codec, "AssignmentAccepted")).unwrap();
    let with_field = |field: serde_json::Value| {
        let mut v = current.clone();
        v["fields"].as_array_mut().unwrap().push(field);
        v.to_string()
    };
    let newer = with_field(serde_json::json!({"name": "note", "type": "string", "default": ""}));
    assert_eq!(
        codec.learn_registry_schema(9, Some(&newer)),
        Learnt::OtherVersion("AssignmentAccepted")
    );
    let e = every_event()[5].clone();
    let mut body = codec.encode_event(&e)[10..].to_vec();
    body.extend([6, b'h', b'e', b'y']); // the new string field, "hey"
    assert_eq!(codec.decode_event(&framed(9, &body)).unwrap(), e);

    // A reader field without a default that the writer lacks: not readable.
    let reader_needs: serde_json::Value = {
        let mut v = current.clone();
        v["fields"]
            .as_array_mut()
            .unwrap()
            .retain(|f| f["name"] != "assignment_id");
        v
    };
    let learnt = codec.learn_registry_schema(10, Some(&reader_needs.to_string()));
    assert!(
        matches!(&learnt, Learnt::Unreadable(why) if why.contains("cannot read")),
        "{learnt:?}"
    );
    let err = codec.decode_event(&framed(10, &body)).unwrap_err();
    assert_eq!(err.reason, RejectReason::UnknownSchema);
    assert!(err.detail.contains("registry schema id 10"), "{err}");
}

#[test]
fn a_registry_id_that_is_not_a_rallypoint_schema_is_unknown_with_the_reason() {
    let codec = Codec::new().unwrap();
    let foreign = r#"{"type":"record","name":"Invoice","namespace":"com.example","fields":[{"name":"n","type":"int"}]}"#;
    assert!(matches!(
        codec.learn_registry_schema(11, Some(foreign)),
        Learnt::Unreadable(_)
    ));
    let err = codec.decode_event(&framed(11, &[2])).unwrap_err();
    assert_eq!(err.reason, RejectReason::UnknownSchema);
    assert!(err.detail.contains("com.example.Invoice"), "{err}");
    assert!(matches!(
        codec.learn_registry_schema(12, Some(r#"{"type":"PROTOBUF"}"#)),
        Learnt::Unreadable(_)
    ));
    assert_eq!(codec.learn_registry_schema(13, None), Learnt::Missing);
    assert_eq!(
        codec.id_to_look_up(&framed(13, &[])),
        None,
        "asked again later"
    );
    assert!(codec
        .decode_event(&framed(13, &[]))
        .unwrap_err()
        .detail
        .contains("has no schema with id 13"));
}

mod hunt_records {
    //! The hunt topics' records: Avro and JSON with the same field names, enums by their
    //! upper-case wire names, the schema's symbols in step with the core's enums.
    use super::*;
    use apache_avro::schema::Schema as AvroSchema;
    use rallypoint_core::hunt::HuntUpdate;

    fn published() -> HuntUpdate {
        hunt_samples().remove(0)
    }

    fn retired() -> HuntUpdate {
        hunt_samples().remove(1)
    }

    /// Every update that has a value: each PAP published, each reason retired.
    fn every_valued_update() -> Vec<HuntUpdate> {
        let HuntUpdate::Published(base) = published() else {
            unreachable!()
        };
        let mut out = Vec::new();
        for pap in hunt::every_pap() {
            let mut i = base.clone();
            i.pap = pap;
            out.push(HuntUpdate::Published(i));
        }
        for reason in hunt::every_reason() {
            out.push(HuntUpdate::Retired {
                indicator: base.clone(),
                reason,
            });
        }
        out.push(retired());
        out.extend(hunt_samples().into_iter().skip(3));
        out.extend(review_samples());
        out
    }

    /// The field names of a compiled record schema, in order.
    fn field_names(codec: &Codec, name: &str) -> Vec<String> {
        match &codec.compiled(name).expanded {
            AvroSchema::Record(r) => r.fields.iter().map(|f| f.name.clone()).collect(),
            other => panic!("{other:?}"),
        }
    }

    /// The symbols of the enum a field holds (or holds an array of).
    fn symbols(codec: &Codec, record: &str, field: &str) -> Vec<String> {
        let AvroSchema::Record(r) = &codec.compiled(record).expanded else {
            panic!()
        };
        let f = r.fields.iter().find(|f| f.name == field).unwrap();
        match &f.schema {
            AvroSchema::Enum(e) => e.symbols.clone(),
            AvroSchema::Array(a) => match a.items.as_ref() {
                AvroSchema::Enum(e) => e.symbols.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_symbol_tables_are_the_schemas_and_name_every_core_variant() {
        let codec = Codec::new().unwrap();
        for record in ["HuntIndicatorPublished", "HuntIndicatorRetired"] {
            assert_eq!(symbols(&codec, record, "pap"), hunt::PAP_SYMBOLS);
            assert_eq!(symbols(&codec, record, "actions"), hunt::ACTION_SYMBOLS);
        }
        assert_eq!(
            symbols(&codec, "HuntIndicatorRetired", "reason"),
            hunt::REASON_SYMBOLS
        );
        for pap in hunt::every_pap() {
            assert!(hunt::PAP_SYMBOLS.contains(&pap.as_str()), "{pap:?}");
            for a in rallypoint_core::hunt::actions(pap) {
                assert!(hunt::ACTION_SYMBOLS.contains(&a.as_str()), "{a:?}");
            }
        }
        for r in hunt::every_reason() {
            assert!(hunt::REASON_SYMBOLS.contains(&r.as_str()), "{r:?}");
        }
        // Retired is Published and a reason.
        let mut published = field_names(&codec, "HuntIndicatorPublished");
        published.push("reason".into());
        assert_eq!(published, field_names(&codec, "HuntIndicatorRetired"));
    }

    #[test]
    fn hunt_records_round_trip_in_avro_and_json_and_a_removal_has_no_value() {
        let codec = Codec::new().unwrap();
        for update in every_valued_update() {
            for format in [Format::Avro, Format::Json] {
                let bytes = codec.encode_hunt(&update, format).unwrap();
                assert_eq!(codec.decode_hunt(&bytes).unwrap(), update, "{format:?}");
            }
            let avro = codec.encode_hunt(&update, Format::Avro).unwrap();
            assert_eq!(detect(&avro), Some(Framing::SingleObject));
            let name = update.type_name().unwrap();
            assert_eq!(avro[..10], codec.compiled(name).header());
        }
        let removed = hunt_samples().remove(2);
        assert!(matches!(removed, HuntUpdate::Removed { .. }));
        for format in [Format::Avro, Format::Json] {
            assert_eq!(codec.encode_hunt(&removed, format), None);
        }
    }

    /// Read with apache-avro's generic reader and the schema alone: every field, the enums
    /// as their symbols.
    #[test]
    fn the_avro_record_reads_back_with_the_schema_alone() {
        use apache_avro::types::Value as V;
        let codec = Codec::new().unwrap();
        let bytes = codec.encode_hunt(&retired(), Format::Avro).unwrap();
        let compiled = codec.compiled("HuntIndicatorRetired");
        let schema = Schema::parse_str(&compiled.json).unwrap();
        let mut body = &bytes[10..];
        let value = apache_avro::from_avro_datum(&schema, &mut body, None).unwrap();
        assert!(body.is_empty(), "every byte belongs to the record");
        let V::Record(fields) = value else { panic!() };
        let get = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no field {name}"))
        };
        let HuntUpdate::Retired { indicator: i, .. } = retired() else {
            unreachable!()
        };
        assert_eq!(get("campaign_id"), V::String("C-000001".into()));
        assert_eq!(get("indicator_id"), V::String(i.indicator_id.clone()));
        assert_eq!(get("kind"), V::Enum(3, "url".into()));
        assert_eq!(get("pattern"), V::String(i.pattern.clone()));
        assert_eq!(get("pattern_type"), V::String("stix".into()));
        assert_eq!(get("valid_from"), V::TimestampMillis(i.valid_from));
        assert_eq!(get("valid_until"), V::TimestampMillis(i.valid_until));
        assert_eq!(get("stream_time"), V::TimestampMillis(i.stream_time));
        assert_eq!(get("score"), V::Int(80));
        assert_eq!(get("confidence"), V::Int(65));
        assert_eq!(
            get("kill_chain_phases"),
            V::Array(vec![
                V::String("command-and-control".into()),
                V::String("initial-access".into())
            ])
        );
        assert_eq!(get("tlp"), V::Enum(2, "AMBER".into()));
        assert_eq!(get("pap"), V::Enum(2, "AMBER".into()));
        assert_eq!(
            get("actions"),
            V::Array(vec![
                V::Enum(0, "SEARCH_LOGS".into()),
                V::Enum(1, "ALERT".into())
            ])
        );
        assert_eq!(get("nation_count"), V::Int(3));
        assert_eq!(
            get("sectors"),
            V::Array(vec![
                V::Enum(0, "energy".into()),
                V::Enum(4, "health".into())
            ])
        );
        assert_eq!(get("reason"), V::Enum(1, "FALSE_POSITIVE".into()));
        assert_eq!(fields.len(), 17);
    }

    /// The JSON record has the Avro field names, a `type`, and the enums' wire names; read as
    /// a generic value and resolved against the schema it encodes to the Avro body byte for
    /// byte.
    #[test]
    fn the_json_record_has_the_avro_field_names_and_encodes_to_the_same_avro() {
        let codec = Codec::new().unwrap();
        let green = published();
        let json: serde_json::Value =
            serde_json::from_slice(&codec.encode_hunt(&green, Format::Json).unwrap()).unwrap();
        assert_eq!(json["type"], "HuntIndicatorPublished");
        assert_eq!(json["kind"], "domain");
        assert_eq!(json["pattern"], "[domain-name:value = 'c2.example.net']");
        assert_eq!(json["pattern_type"], "stix");
        assert_eq!(json["tlp"], "GREEN");
        assert_eq!(json["pap"], "GREEN");
        assert_eq!(
            json["actions"],
            serde_json::json!(["SEARCH_LOGS", "ALERT", "BLOCK"])
        );
        assert_eq!(json["sectors"], serde_json::json!(["energy", "health"]));
        assert_eq!(json["nation_count"], 3);
        assert_eq!(json["valid_from"], 1_800_000_000_000i64);
        let r: serde_json::Value =
            serde_json::from_slice(&codec.encode_hunt(&retired(), Format::Json).unwrap()).unwrap();
        assert_eq!(r["reason"], "FALSE_POSITIVE");
        assert_eq!(r["pap"], "AMBER");
        assert_eq!(r["actions"], serde_json::json!(["SEARCH_LOGS", "ALERT"]));

        for update in every_valued_update() {
            let name = update.type_name().unwrap();
            let mut json: serde_json::Value =
                serde_json::from_slice(&codec.encode_hunt(&update, Format::Json).unwrap()).unwrap();
            let fields = json.as_object_mut().unwrap();
            assert_eq!(fields.remove("type"), Some(name.into()));
            let mut keys: Vec<String> = fields.keys().cloned().collect();
            let mut want = field_names(&codec, name);
            keys.sort();
            want.sort();
            assert_eq!(keys, want, "{name}");
            let schema = &codec.compiled(name).schema;
            let generic = Value::from(json).resolve(schema).unwrap();
            let generic = apache_avro::to_avro_datum(schema, generic).unwrap();
            assert_eq!(
                codec.encode_hunt(&update, Format::Avro).unwrap()[10..],
                generic[..],
                "{update:?}"
            );
        }
    }

    #[test]
    fn hunt_records_are_framed_with_their_registry_ids_once_registered() {
        let codec = Codec::new().unwrap();
        assert!(codec.set_registered_id("HuntIndicatorPublished", 71));
        assert!(codec.set_registered_id("HuntIndicatorRetired", 72));
        for (update, id) in [(published(), 71), (retired(), 72)] {
            let bytes = codec.encode_hunt(&update, Format::Avro).unwrap();
            assert_eq!(detect(&bytes), Some(Framing::Confluent(id)));
            assert_eq!(codec.decode_hunt(&bytes).unwrap(), update);
        }
    }

    #[test]
    fn a_hunt_record_that_breaks_its_rules_is_refused_with_the_reason() {
        let codec = Codec::new().unwrap();
        let good: serde_json::Value =
            serde_json::from_slice(&codec.encode_hunt(&published(), Format::Json).unwrap())
                .unwrap();
        let cases: [(&str, serde_json::Value, &str); 7] = [
            ("score", 101.into(), "score 101"),
            ("confidence", (-1).into(), "confidence -1"),
            ("pattern_type", "sigma".into(), "pattern_type"),
            ("pap", "PURPLE".into(), "pap \"PURPLE\""),
            ("actions", serde_json::json!(["BLOCK"]), "actions"),
            ("nation_count", (-2).into(), "nation_count"),
            ("reason", "EXPIRED".into(), "has no reason"),
        ];
        for (field, value, says) in cases {
            let mut v = good.clone();
            v[field] = value;
            let err = codec
                .decode_hunt(&serde_json::to_vec(&v).unwrap())
                .unwrap_err();
            assert!(err.detail.contains(says), "{field}: {err}");
        }
        let mut v = good.clone();
        v["type"] = "HuntIndicatorRetired".into();
        assert!(codec
            .decode_hunt(&serde_json::to_vec(&v).unwrap())
            .unwrap_err()
            .detail
            .contains("no reason"));
        v["reason"] = "BORED".into();
        assert!(codec
            .decode_hunt(&serde_json::to_vec(&v).unwrap())
            .unwrap_err()
            .detail
            .contains("BORED"));
        // Another record of Rallypoint's is not a hunt record.
        let dl = samples(&codec)
            .into_iter()
            .find(|(n, _)| *n == "DeadLetter")
            .unwrap()
            .1;
        assert_eq!(
            codec.decode_hunt(&dl).unwrap_err().reason,
            RejectReason::UnknownSchema
        );
    }

    #[test]
    fn the_samples_hold_every_schema_and_each_hunt_record_once() {
        let codec = Codec::new().unwrap();
        let names: Vec<&str> = samples(&codec).into_iter().map(|(n, _)| n).collect();
        for s in codec.schemas() {
            assert!(names.contains(&s.name), "{}: no sample", s.name);
        }
        for name in [
            "HuntIndicatorPublished",
            "HuntIndicatorRetired",
            "HuntSightingsSummarized",
            "HuntValueReviewed",
        ] {
            assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{name}");
        }
    }
}
