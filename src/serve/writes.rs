//! What the shop writes, as the request path takes it: the write goes to the store first, and
//! only once it is durable do the caches that answer requests learn of it, so a request never
//! sees what a crash could still take back.

use super::Serving;
use crate::{
    domain::{EventType, ItemId, NewEvent, UserId},
    store::{AppendOutcome, Erased, Item, ItemUpsert, StoreResult, UserExport},
};

/// The model version a `recommendation_id` names (`<ULID>-v<version>`).
pub fn credited_version(recommendation_id: &str) -> Option<i64> {
    recommendation_id.rsplit_once("-v")?.1.parse().ok()
}

impl Serving {
    /// Erases everything stored of a user, then what this process holds of them. What this
    /// replica still had queued of their responses is written first, so that it goes with the
    /// rest; another replica's queue is held back by the store (see [`crate::store::Store::erase_user`]),
    /// and its cache sees the user's stamp shrink.
    pub async fn erase_user(&self, user: &UserId) -> StoreResult<Erased> {
        if let Some(sink) = self.impressions() {
            sink.flush().await;
        }
        let erased = self.store.erase_user(user).await?;
        self.forget_user(user.as_str());
        metrics::counter!("recloop_users_erased_total").increment(1);
        Ok(erased)
    }

    /// Everything stored about a user.
    pub async fn export_user(&self, user: &UserId) -> StoreResult<UserExport> {
        self.store.export_user(user).await
    }

    /// Appends validated events (durably, all or nothing); the users they name re-read their
    /// history on their next request.
    pub async fn ingest(&self, events: Vec<NewEvent>) -> StoreResult<AppendOutcome> {
        let mut users: Vec<String> = events.iter().map(|e| e.user_id.to_string()).collect();
        users.sort_unstable();
        users.dedup();
        let counts = EventType::ALL.map(|t| events.iter().filter(|e| e.event_type == t).count());
        let credits: Vec<(i64, EventType)> = events
            .iter()
            .filter_map(|e| {
                Some((
                    credited_version(e.recommendation_id.as_deref()?)?,
                    e.event_type,
                ))
            })
            .collect();
        let outcome = self.store.append_events(events).await?;
        for user in &users {
            self.user_changed(user);
        }
        for (t, n) in EventType::ALL.iter().zip(counts) {
            if n > 0 {
                self.stats.add("events", event_labels(*t), n as f64);
                metrics::counter!("recloop_events_received_total", "type" => t.as_str())
                    .increment(n as u64);
            }
        }
        metrics::counter!("recloop_events_accepted_total").increment(outcome.accepted);
        metrics::counter!("recloop_events_duplicate_total").increment(outcome.duplicates);
        if outcome.duplicates > 0 {
            self.stats
                .add("events_duplicate", "", outcome.duplicates as f64);
        }
        for (version, t) in credits {
            metrics::counter!("recloop_credited_events_total",
                "model_version" => version.to_string(), "type" => t.as_str())
            .increment(1);
        }
        Ok(outcome)
    }

    /// Inserts or replaces catalog entries (all or nothing); the next request filters by them.
    pub async fn put_items(&self, items: Vec<ItemUpsert>) -> StoreResult<Vec<Item>> {
        let stored = self.store.upsert_items(items).await?;
        self.catalog.apply(&stored);
        Ok(stored)
    }

    /// A live catalog entry.
    pub async fn item(&self, item: &ItemId) -> StoreResult<Option<Item>> {
        self.store.get_item(item).await
    }

    /// Deletes a catalog entry (its events stay); it is never recommended again. False when
    /// there was none.
    pub async fn delete_item(&self, item: &ItemId) -> StoreResult<bool> {
        let deleted = self.store.delete_item(item).await?;
        if deleted {
            self.catalog.remove(item.as_str());
        }
        Ok(deleted)
    }
}

/// The labels of the `events` series.
fn event_labels(t: EventType) -> &'static str {
    match t {
        EventType::View => "type=view",
        EventType::Click => "type=click",
        EventType::AddToCart => "type=add_to_cart",
        EventType::Purchase => "type=purchase",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_rides_in_the_recommendation_id() {
        assert_eq!(credited_version("01JABCDEF-v12"), Some(12));
        assert_eq!(credited_version("01JABCDEF-v0"), Some(0));
        assert_eq!(credited_version("01JABCDEF"), None);
        assert_eq!(credited_version("01JABCDEF-vx"), None);
    }
}
