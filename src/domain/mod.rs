//! Domain types parsed at the edge, and the rules they are parsed by. Past the edge (the HTTP
//! layer, `recloop import`) nothing re-validates: a `UserId` is a valid user id by construction.
//! Nothing here knows HTTP or SQL: `events::parse_events` refuses a batch with a `Rejected`
//! that the API renders as its 422 and the import as line numbers.

use std::fmt;

pub mod events;
pub mod fields;

/// The longest id the contract allows, in characters.
pub const MAX_ID_CHARS: usize = 256;

/// Why an id was refused; the message is shown to the client as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most 256 characters")]
    TooLong,
    #[error("must not contain control characters")]
    ControlCharacter,
}

fn check_id(raw: &str) -> Result<(), IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty);
    }
    if raw.chars().count() > MAX_ID_CHARS {
        return Err(IdError::TooLong);
    }
    if raw.chars().any(char::is_control) {
        return Err(IdError::ControlCharacter);
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Checks the contract's id rules: 1 to 256 characters, no control characters.
            pub fn parse(raw: impl Into<String>) -> Result<Self, IdError> {
                let raw = raw.into();
                check_id(&raw)?;
                Ok(Self(raw))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A shop's user id, used as it is.
    UserId
);
id_type!(
    /// A shop's item id (SKU, UUID, number as a string), used as it is.
    ItemId
);
id_type!(
    /// A client's idempotency key for one event.
    EventId
);
id_type!(
    /// A catalog category.
    Category
);

/// What a person did. The order is the order of intent: a purchase says more than a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    View,
    Click,
    AddToCart,
    Purchase,
}

impl EventType {
    pub const ALL: [EventType; 4] = [Self::View, Self::Click, Self::AddToCart, Self::Purchase];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Click => "click",
            Self::AddToCart => "add_to_cart",
            Self::Purchase => "purchase",
        }
    }

    /// The compact code stored in the database; never renumber.
    pub fn code(self) -> i16 {
        match self {
            Self::View => 0,
            Self::Click => 1,
            Self::AddToCart => 2,
            Self::Purchase => 3,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        Self::ALL.get(usize::try_from(code).ok()?).copied()
    }
}

impl std::str::FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!("unknown event type {s:?}: expected view, click, add_to_cart or purchase")
            })
    }
}

/// One validated event, ready to be stored. `ts` is unix milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Option<EventId>,
    pub user_id: UserId,
    pub item_id: ItemId,
    pub event_type: EventType,
    pub ts_ms: i64,
    pub recommendation_id: Option<String>,
}

/// Confidence weight per event type: how much one event of that type says about a person's taste.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EventWeights {
    pub view: f32,
    pub click: f32,
    pub add_to_cart: f32,
    pub purchase: f32,
}

impl Default for EventWeights {
    fn default() -> Self {
        Self {
            view: 0.5,
            click: 1.0,
            add_to_cart: 2.0,
            purchase: 4.0,
        }
    }
}

impl EventWeights {
    pub fn of(&self, t: EventType) -> f32 {
        match t {
            EventType::View => self.view,
            EventType::Click => self.click,
            EventType::AddToCart => self.add_to_cart,
            EventType::Purchase => self.purchase,
        }
    }
}

/// Which model answered a response: the champion, or a challenger trying for its place.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    Champion,
    Challenger,
}

impl Arm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Champion => "champion",
            Self::Challenger => "challenger",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "champion" => Some(Self::Champion),
            "challenger" => Some(Self::Challenger),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_contract() {
        assert!(UserId::parse("u42").is_ok());
        assert!(UserId::parse("ünï-çødé 42").is_ok());
        assert_eq!(UserId::parse(""), Err(IdError::Empty));
        assert_eq!(ItemId::parse("a\u{0}b"), Err(IdError::ControlCharacter));
        assert_eq!(ItemId::parse("a\nb"), Err(IdError::ControlCharacter));
        assert!(ItemId::parse("é".repeat(256)).is_ok());
        assert_eq!(ItemId::parse("é".repeat(257)), Err(IdError::TooLong));
    }

    #[test]
    fn event_types_round_trip() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
            assert_eq!(EventType::from_code(t.code().into()), Some(t));
        }
        assert!("like".parse::<EventType>().is_err());
        assert!("Purchase".parse::<EventType>().is_err());
        assert_eq!(EventType::from_code(4), None);
        assert_eq!(EventType::from_code(-1), None);
    }

    #[test]
    fn default_weights_rank_intent() {
        let w = EventWeights::default();
        assert!(w.purchase > w.add_to_cart && w.add_to_cart > w.click && w.click > w.view);
    }
}
