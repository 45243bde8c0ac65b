//! Property tests of the edge parsers: ids, event types and event batches. Arbitrary input never
//! panics, valid input round-trips, and invalid input gets the documented 422 details.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use recloop::{
    api::error::ApiError,
    domain::{events::parse_events, EventType, IdError, ItemId, UserId, MAX_ID_CHARS},
};
use serde_json::{json, Map, Value};

fn now() -> DateTime<Utc> {
    "2026-11-28T12:00:00Z".parse().unwrap()
}

/// What the contract says of an id, written independently of `check_id`.
fn expected_id(raw: &str) -> Result<(), IdError> {
    let chars: Vec<char> = raw.chars().collect();
    if chars.is_empty() {
        Err(IdError::Empty)
    } else if chars.len() > MAX_ID_CHARS {
        Err(IdError::TooLong)
    } else if chars.iter().any(|c| {
        let c = u32::from(*c);
        c <= 0x1f || (0x7f..=0x9f).contains(&c)
    }) {
        Err(IdError::ControlCharacter)
    } else {
        Ok(())
    }
}

/// Ids the contract allows: 1 to 256 characters of any script, no control characters.
fn valid_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_-]{1,40}",
        "[^\\p{Cc}]{1,256}",
        // The boundary: exactly 256 characters, multi-byte ones included.
        "[é語a]{256}",
    ]
}

/// Arbitrary JSON, nested a few levels, with strings that may hold anything.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".*".prop_map(Value::from),
        prop_oneof![
            Just("view"),
            Just("click"),
            Just("add_to_cart"),
            Just("purchase")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("user_id".to_owned()),
                    Just("item_id".to_owned()),
                    Just("type".to_owned()),
                    Just("timestamp".to_owned()),
                    Just("event_id".to_owned()),
                    Just("recommendation_id".to_owned()),
                    "[a-z]{1,8}",
                ],
                inner,
                0..7
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

#[derive(Debug, Clone)]
struct ValidEvent {
    user: String,
    item: String,
    kind: EventType,
    /// Seconds before `now()`, if the event names its time.
    ago: Option<i64>,
    event_id: Option<String>,
}

fn valid_event() -> impl Strategy<Value = ValidEvent> {
    (
        valid_id(),
        valid_id(),
        prop::sample::select(EventType::ALL.to_vec()),
        prop::option::of(-300i64..10_000_000_000),
        prop::option::of(valid_id()),
    )
        .prop_map(|(user, item, kind, ago, event_id)| ValidEvent {
            user,
            item,
            kind,
            ago,
            event_id,
        })
}

impl ValidEvent {
    fn json(&self) -> Value {
        let mut v = json!({"user_id": self.user, "item_id": self.item, "type": self.kind.as_str()});
        if let Some(ago) = self.ago {
            v["timestamp"] = (now() - Duration::seconds(ago)).to_rfc3339().into();
        }
        if let Some(id) = &self.event_id {
            v["event_id"] = id.clone().into();
        }
        v
    }
}

/// One rule broken on purpose, and the field the 422 must name.
fn breakage() -> impl Strategy<Value = (&'static str, Value)> {
    prop_oneof![
        Just(("user_id", json!(""))),
        Just(("user_id", json!(42))),
        Just(("item_id", json!("a\u{0}b"))),
        Just(("item_id", json!("x".repeat(MAX_ID_CHARS + 1)))),
        Just(("item_id", Value::Null)),
        "[A-Z][a-z]{0,10}".prop_map(|t| ("type", json!(t))),
        Just(("timestamp", json!("2026-11-28T12:05:01Z"))),
        Just(("timestamp", json!("yesterday"))),
        Just(("event_id", json!(""))),
        Just(("recommendation_id", json!(["x"]))),
        Just(("colour", json!("red"))),
    ]
}

/// The 422 the API answers for a refused batch: its code, and each detail's index and field.
fn details(err: impl Into<ApiError>) -> (&'static str, Vec<(Option<usize>, String)>) {
    match err.into() {
        ApiError::Unprocessable { code, details, .. } => (
            code,
            details.into_iter().map(|d| (d.index, d.field)).collect(),
        ),
        other => panic!("expected a 422, got {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_string_is_an_id_exactly_when_the_contract_says(raw in prop_oneof![".*", "\\PC{250,260}", "[\\x00-\\x20\\u{7f}-\\u{a0}a]{0,4}"]) {
        let expected = expected_id(&raw);
        prop_assert_eq!(UserId::parse(raw.clone()).map(|id| id.into_inner()), expected.clone().map(|()| raw.clone()));
        prop_assert_eq!(ItemId::parse(raw.as_str()).map(|id| id.to_string()), expected.map(|()| raw.clone()));
    }

    #[test]
    fn valid_ids_round_trip(raw in valid_id()) {
        let id = ItemId::parse(raw.as_str()).unwrap();
        prop_assert_eq!(id.as_str(), raw.as_str());
        prop_assert_eq!(id.to_string(), raw);
    }

    #[test]
    fn event_types_parse_only_their_four_names(raw in prop_oneof![".*", "[a-z_]{3,12}"]) {
        match raw.parse::<EventType>() {
            Ok(t) => prop_assert_eq!(t.as_str(), raw.as_str()),
            Err(message) => {
                prop_assert!(!["view", "click", "add_to_cart", "purchase"].contains(&raw.as_str()));
                prop_assert!(message.contains("expected view, click, add_to_cart or purchase"));
            }
        }
    }

    #[test]
    fn any_json_body_is_parsed_or_refused_with_details(body in any_json()) {
        match parse_events(&body, now()) {
            Ok(events) => {
                let n = body.as_array().map_or(1, Vec::len);
                prop_assert_eq!(events.len(), n);
            }
            Err(e) => {
                let (code, details) = details(e);
                match code {
                    "invalid_batch" => prop_assert!(body.as_array().is_some_and(Vec::is_empty)),
                    "invalid_event" => {
                        prop_assert!(!details.is_empty() && details.len() <= 100);
                        let batch = body.is_array();
                        for (index, _) in &details {
                            prop_assert_eq!(index.is_some(), batch);
                        }
                    }
                    other => prop_assert!(false, "unexpected code {}", other),
                }
            }
        }
    }

    #[test]
    fn valid_batches_round_trip(events in prop::collection::vec(valid_event(), 1..40), single in any::<bool>()) {
        let body = if single && events.len() == 1 {
            events[0].json()
        } else {
            Value::Array(events.iter().map(ValidEvent::json).collect())
        };
        let parsed = parse_events(&body, now()).unwrap();
        prop_assert_eq!(parsed.len(), events.len());
        for (got, want) in parsed.iter().zip(&events) {
            prop_assert_eq!(got.user_id.as_str(), want.user.as_str());
            prop_assert_eq!(got.item_id.as_str(), want.item.as_str());
            prop_assert_eq!(got.event_type, want.kind);
            let ts = want.ago.map_or(now(), |ago| now() - Duration::seconds(ago));
            prop_assert_eq!(got.ts_ms, ts.timestamp_millis());
            prop_assert_eq!(got.event_id.as_ref().map(|e| e.as_str()), want.event_id.as_deref());
        }
    }

    #[test]
    fn one_broken_rule_is_reported_at_its_index_and_field(
        events in prop::collection::vec(valid_event(), 1..20),
        at in any::<prop::sample::Index>(),
        (field, value) in breakage(),
    ) {
        let i = at.index(events.len());
        let mut body: Vec<Value> = events.iter().map(ValidEvent::json).collect();
        body[i][field] = value;
        let (code, details) = details(parse_events(&Value::Array(body), now()).unwrap_err());
        prop_assert_eq!(code, "invalid_event");
        prop_assert_eq!(details, vec![(Some(i), field.to_owned())]);
    }
}
