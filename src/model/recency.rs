//! Recency within a person's own history: what they did last says more about what they want
//! next than what they did first. Measured on their own sequence (position, not wall-clock
//! time), so a shop with daily visitors and one with yearly ones are treated alike.

/// A user's history as a model reads it: `(item, weight)` summed per item and sorted by item,
/// each event weighted by `exp(−strength · p / n)`, where `p` is the number of the user's
/// events after it and `n` their number of events. `events` must be in time order (the fit
/// order of [`sort_for_fit`](super::interactions::sort_for_fit)). `strength` 0 gives plain sums.
pub fn weighted_history(events: &[(u32, f32)], strength: f32) -> Vec<(u32, f32)> {
    let n = events.len() as f32;
    let mut out: Vec<(u32, f32)> = events
        .iter()
        .enumerate()
        .filter(|(_, &(_, w))| w > 0.0)
        .map(|(pos, &(item, w))| {
            let after = n - 1.0 - pos as f32;
            (item, w * (-strength * after / n).exp())
        })
        .collect();
    // Stable: equal items are summed in time order, so the sums are reproducible.
    out.sort_by_key(|&(i, _)| i);
    out.dedup_by(|next, kept| {
        let same = next.0 == kept.0;
        if same {
            kept.1 += next.1;
        }
        same
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strength_zero_sums_per_item() {
        let h = weighted_history(&[(3, 1.0), (1, 4.0), (3, 0.5)], 0.0);
        assert_eq!(h, vec![(1, 4.0), (3, 1.5)]);
    }

    #[test]
    fn older_events_weigh_less() {
        // n = 4: the first event has 3 after it → e^{-2·3/4}; the last has none → 1.
        let h = weighted_history(&[(0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0)], 2.0);
        let expected = [(-1.5f32).exp(), (-1.0f32).exp(), (-0.5f32).exp(), 1.0];
        for ((_, got), want) in h.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn non_positive_weights_are_ignored() {
        assert_eq!(weighted_history(&[(0, 0.0), (1, -1.0)], 1.0), vec![]);
    }
}
