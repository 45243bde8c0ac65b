//! The interaction log as a sparse user×item matrix.

/// One event of the log, already mapped to dense indices.
///
/// Item indices are assigned in sorted order of the item's string id, so ordering by
/// index == ordering by item id (the holdout tie-break relies on it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogEvent {
    /// Dense user index.
    pub user: u32,
    /// Dense item index (sorted-id order).
    pub item: u32,
    /// Confidence weight of the event type, > 0.
    pub weight: f32,
    /// Unix seconds.
    pub ts: i64,
    /// Whether the event is a purchase (the relevance signal of evaluation).
    pub purchase: bool,
}

/// Sorts a log into the one order every fit reads it in (user, time, item, type, weight), so
/// the same events give the same model however they arrived.
pub fn sort_for_fit(events: &mut [LogEvent]) {
    events.sort_unstable_by(|a, b| {
        (a.user, a.ts, a.item, a.purchase)
            .cmp(&(b.user, b.ts, b.item, b.purchase))
            .then(a.weight.total_cmp(&b.weight))
    });
}

/// Sparse user×item matrix of summed weights, stored twice: compressed rows by user
/// (CSR) and by item (the transpose), since ALS alternates between the two.
#[derive(Clone, Debug, Default)]
pub struct Interactions {
    n_users: usize,
    n_items: usize,
    user_ptr: Vec<usize>,
    user_items: Vec<u32>,
    user_weights: Vec<f32>,
    item_ptr: Vec<usize>,
    item_users: Vec<u32>,
    item_weights: Vec<f32>,
}

impl Interactions {
    /// Builds the matrix, summing the weights of repeated `(user, item)` pairs.
    ///
    /// Events with `user >= n_users`, `item >= n_items`, or a weight that is not
    /// positive (including NaN) are ignored: they carry no usable preference.
    pub fn from_events(n_users: usize, n_items: usize, events: &[LogEvent]) -> Self {
        let mut triples: Vec<(u32, u32, f32)> = events
            .iter()
            .filter(|e| (e.user as usize) < n_users && (e.item as usize) < n_items)
            .filter(|e| e.weight > 0.0)
            .map(|e| (e.user, e.item, e.weight))
            .collect();
        // Stable sort: duplicates are summed in log order, so the sums are reproducible.
        triples.sort_by_key(|&(u, i, _)| (u, i));

        let mut user_ptr = vec![0usize; n_users + 1];
        let mut user_items = Vec::with_capacity(triples.len());
        let mut user_weights: Vec<f32> = Vec::with_capacity(triples.len());
        let mut last: Option<(u32, u32)> = None;
        for &(u, i, w) in &triples {
            if last == Some((u, i)) {
                if let Some(sum) = user_weights.last_mut() {
                    *sum += w;
                }
                continue;
            }
            last = Some((u, i));
            user_items.push(i);
            user_weights.push(w);
            user_ptr[u as usize + 1] += 1;
        }
        for u in 0..n_users {
            user_ptr[u + 1] += user_ptr[u];
        }

        // Transpose by counting sort; users are visited in order, so each item's
        // users come out sorted.
        let mut item_ptr = vec![0usize; n_items + 1];
        for &i in &user_items {
            item_ptr[i as usize + 1] += 1;
        }
        for i in 0..n_items {
            item_ptr[i + 1] += item_ptr[i];
        }
        let mut next = item_ptr.clone();
        let mut item_users = vec![0u32; user_items.len()];
        let mut item_weights = vec![0f32; user_items.len()];
        for u in 0..n_users {
            for p in user_ptr[u]..user_ptr[u + 1] {
                let slot = &mut next[user_items[p] as usize];
                item_users[*slot] = u as u32;
                item_weights[*slot] = user_weights[p];
                *slot += 1;
            }
        }

        Interactions {
            n_users,
            n_items,
            user_ptr,
            user_items,
            user_weights,
            item_ptr,
            item_users,
            item_weights,
        }
    }

    /// Number of users (rows), including users without events.
    pub fn n_users(&self) -> usize {
        self.n_users
    }

    /// Number of items (columns), including items without events.
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// Number of distinct `(user, item)` pairs.
    pub fn nnz(&self) -> usize {
        self.user_items.len()
    }

    /// The items of user `u` (ascending) and their summed weights.
    ///
    /// # Panics
    /// If `u >= n_users()`.
    pub fn user_row(&self, u: u32) -> (&[u32], &[f32]) {
        let (a, b) = (self.user_ptr[u as usize], self.user_ptr[u as usize + 1]);
        (&self.user_items[a..b], &self.user_weights[a..b])
    }

    /// The users of item `i` (ascending) and their summed weights.
    ///
    /// # Panics
    /// If `i >= n_items()`.
    pub fn item_col(&self, i: u32) -> (&[u32], &[f32]) {
        let (a, b) = (self.item_ptr[i as usize], self.item_ptr[i as usize + 1]);
        (&self.item_users[a..b], &self.item_weights[a..b])
    }

    /// User `u`'s row as `(item, summed weight)` pairs, the shape
    /// [`AlsModel::fold_in`](super::AlsModel::fold_in) takes. Empty for an unknown user.
    pub fn user_history(&self, u: u32) -> Vec<(u32, f32)> {
        if (u as usize) >= self.n_users {
            return Vec::new();
        }
        let (items, weights) = self.user_row(u);
        items.iter().copied().zip(weights.iter().copied()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(user: u32, item: u32, weight: f32) -> LogEvent {
        LogEvent {
            user,
            item,
            weight,
            ts: 0,
            purchase: false,
        }
    }

    #[test]
    fn sums_duplicates_and_builds_both_orientations() {
        let events = [
            ev(1, 2, 1.0),
            ev(0, 1, 4.0),
            ev(1, 2, 4.0),
            ev(1, 0, 0.5),
            ev(0, 1, 1.0),
            ev(2, 2, 2.0),
        ];
        let m = Interactions::from_events(4, 3, &events);
        assert_eq!((m.n_users(), m.n_items(), m.nnz()), (4, 3, 4));
        assert_eq!(m.user_row(0), (&[1u32][..], &[5.0f32][..]));
        assert_eq!(m.user_row(1), (&[0u32, 2][..], &[0.5f32, 5.0][..]));
        assert_eq!(m.user_row(3), (&[][..], &[][..]));
        assert_eq!(m.item_col(2), (&[1u32, 2][..], &[5.0f32, 2.0][..]));
        assert_eq!(m.item_col(0), (&[1u32][..], &[0.5f32][..]));
        assert_eq!(m.user_history(1), vec![(0, 0.5), (2, 5.0)]);
        assert!(m.user_history(9).is_empty());
    }

    #[test]
    fn ignores_out_of_range_and_non_positive_events() {
        let events = [
            ev(5, 0, 1.0),
            ev(0, 7, 1.0),
            ev(0, 0, 0.0),
            ev(0, 0, f32::NAN),
            ev(0, 1, 1.0),
        ];
        let m = Interactions::from_events(2, 2, &events);
        assert_eq!(m.nnz(), 1);
        assert_eq!(m.user_row(0), (&[1u32][..], &[1.0f32][..]));
    }
}
