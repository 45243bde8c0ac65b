//! A synthetic shop with taste: users fall in groups, each group prefers its own block of items,
//! so a model has something to learn. Deterministic for a seed; timestamps in the recent past.

use chrono::{Duration, SecondsFormat, Utc};
use serde_json::{json, Value};

/// The shape of a generated event log.
pub struct Shop {
    pub users: usize,
    pub items: usize,
    pub groups: usize,
    pub events_per_user: usize,
    pub seed: u64,
}

impl Shop {
    /// `users × events_per_user` events as `POST /v1/events` objects: users `u0…`, items
    /// `i0…`; 80% of a user's events are on their group's items; 30% are purchases.
    pub fn events(&self) -> Vec<Value> {
        let mut rng = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move |n: usize| -> usize {
            // xorshift64*: enough randomness for test data, no dependency.
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            (rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
        };
        let block = self.items / self.groups;
        let start = Utc::now() - Duration::days(30);
        let mut events = Vec::with_capacity(self.users * self.events_per_user);
        for u in 0..self.users {
            let group = u % self.groups;
            for j in 0..self.events_per_user {
                let item = if next(10) < 8 {
                    group * block + next(block)
                } else {
                    next(self.items)
                };
                let kind = if next(10) < 3 { "purchase" } else { "click" };
                let at = start + Duration::seconds((u * self.events_per_user + j) as i64);
                events.push(json!({
                    "user_id": format!("u{u}"),
                    "item_id": format!("i{item}"),
                    "type": kind,
                    "timestamp": at.to_rfc3339_opts(SecondsFormat::Secs, true),
                }));
            }
        }
        events
    }
}

/// A small shop: 1,200 events on 60 items, trained in well under a second.
pub fn small() -> Vec<Value> {
    Shop {
        users: 120,
        items: 60,
        groups: 6,
        events_per_user: 10,
        seed: 7,
    }
    .events()
}

/// One event object.
pub fn event(user: &str, item: &str, kind: &str) -> Value {
    json!({"user_id": user, "item_id": item, "type": kind})
}
