//! The catalog as the request path sees it: which items may be recommended, and their
//! categories. Kept in memory (loaded at start, updated on every catalog write) so filtering
//! a recommendation never waits on the database.

use std::{collections::HashMap, sync::RwLock};

use crate::store::Item;

#[derive(Debug, Clone, PartialEq)]
struct Meta {
    available: bool,
    categories: Vec<String>,
}

/// Items absent from the catalog (seen only in events) are available and have no category.
#[derive(Debug, Default)]
pub struct Catalog {
    items: RwLock<HashMap<String, Meta>>,
}

/// A read view held for the duration of one filtering pass.
pub struct CatalogView<'a> {
    items: std::sync::RwLockReadGuard<'a, HashMap<String, Meta>>,
}

impl Catalog {
    /// Replaces or adds entries; deleted items must come as unavailable.
    pub fn apply(&self, items: &[Item]) {
        let mut map = self.items.write().unwrap_or_else(|e| e.into_inner());
        for item in items {
            map.insert(
                item.item_id.clone(),
                Meta {
                    available: item.available,
                    categories: item.categories.clone(),
                },
            );
        }
    }

    /// Marks an item as never to be recommended again.
    pub fn remove(&self, item_id: &str) {
        let mut map = self.items.write().unwrap_or_else(|e| e.into_inner());
        map.insert(
            item_id.to_owned(),
            Meta {
                available: false,
                categories: Vec::new(),
            },
        );
    }

    /// Ids of items that may be recommended and pass `keep` (at most `limit`, in no order).
    pub fn available_ids(&self, limit: usize, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let view = self.view();
        view.items
            .iter()
            .filter(|(id, m)| m.available && keep(id))
            .map(|(id, _)| id.clone())
            .take(limit)
            .collect()
    }

    pub fn contains(&self, item_id: &str) -> bool {
        self.view().items.get(item_id).is_some_and(|m| m.available)
    }

    pub fn view(&self) -> CatalogView<'_> {
        CatalogView {
            items: self.items.read().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

impl CatalogView<'_> {
    /// May this item be shown, given an optional category filter?
    pub fn allows(&self, item_id: &str, category: Option<&str>) -> bool {
        // A shop without catalog writes: nothing to look up (and hash) per candidate.
        if self.items.is_empty() {
            return category.is_none();
        }
        match (self.items.get(item_id), category) {
            (Some(meta), None) => meta.available,
            (Some(meta), Some(c)) => meta.available && meta.categories.iter().any(|x| x == c),
            (None, None) => true,
            (None, Some(_)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, available: bool, categories: &[&str]) -> Item {
        Item {
            item_id: id.into(),
            title: None,
            categories: categories.iter().map(|c| c.to_string()).collect(),
            available,
            attributes: serde_json::json!({}),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn filters_by_availability_and_category() {
        let c = Catalog::default();
        c.apply(&[item("a", true, &["shoes"]), item("b", false, &["shoes"])]);
        let v = c.view();
        assert!(v.allows("a", None));
        assert!(v.allows("a", Some("shoes")));
        assert!(!v.allows("a", Some("hats")));
        assert!(!v.allows("b", None));
        assert!(v.allows("unknown", None));
        assert!(!v.allows("unknown", Some("shoes")));
        drop(v);
        c.remove("a");
        assert!(!c.view().allows("a", None));
    }
}
