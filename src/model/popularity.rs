//! Popularity with exponential recency decay: the fallback for users without history
//! and the baseline every personalised model must beat.

use super::LogEvent;

/// Decayed popularity of every item.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Popularity {
    /// Score per item index: Σ weight · 0.5^((t_max − ts) / half_life).
    pub scores: Vec<f32>,
    /// All item indices by descending score, ties by lower index.
    pub ranked: Vec<u32>,
}

/// Popularity with exponential recency decay, reckoned from the events' own timestamps:
/// the newest event in the log is "now", so a log replayed later (or a test fixture)
/// scores the same as it did live. `half_life_secs = f64::INFINITY` disables decay.
///
/// Events on items `>= n_items` are ignored. Items without events score 0 and come last.
///
/// # Panics
/// If `half_life_secs` is not positive (a configuration error, caught at start-up).
pub fn popularity(n_items: usize, events: &[LogEvent], half_life_secs: f64) -> Popularity {
    assert!(half_life_secs > 0.0, "half_life_secs must be > 0");
    let in_range = |e: &&LogEvent| (e.item as usize) < n_items;
    let t_max = events.iter().filter(in_range).map(|e| e.ts).max();
    // f64 accumulation: a popular item sums many terms of very different magnitude.
    let mut acc = vec![0.0f64; n_items];
    if let Some(t_max) = t_max {
        for e in events.iter().filter(in_range) {
            let age = (t_max - e.ts) as f64;
            acc[e.item as usize] += f64::from(e.weight) * 0.5f64.powf(age / half_life_secs);
        }
    }
    let scores: Vec<f32> = acc.iter().map(|&s| s as f32).collect();
    let mut ranked: Vec<u32> = (0..n_items as u32).collect();
    // Sort on the f64 sums so items that differ below f32 precision still order sensibly.
    ranked.sort_by(|&a, &b| acc[b as usize].total_cmp(&acc[a as usize]).then(a.cmp(&b)));
    Popularity { scores, ranked }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(item: u32, weight: f32, ts: i64) -> LogEvent {
        LogEvent {
            user: 0,
            item,
            weight,
            ts,
            purchase: false,
        }
    }

    #[test]
    fn decay_orders_recent_over_old() {
        let day = 86_400;
        // Item 0: three old events; item 1: two recent ones; item 2: nothing.
        let events = [
            ev(0, 1.0, 0),
            ev(0, 1.0, 0),
            ev(0, 1.0, 0),
            ev(1, 1.0, 30 * day),
            ev(1, 1.0, 30 * day - 10),
        ];
        let p = popularity(3, &events, 7.0 * day as f64);
        assert_eq!(p.ranked, vec![1, 0, 2]);
        // The newest event counts fully; 30 days at a 7-day half-life is ~1/19.
        assert!((p.scores[1] - 2.0).abs() < 1e-3);
        assert!((p.scores[0] - 3.0 * 0.5f32.powf(30.0 / 7.0)).abs() < 1e-4);
        // Without decay, volume wins.
        let flat = popularity(3, &events, f64::INFINITY);
        assert_eq!(flat.ranked, vec![0, 1, 2]);
        assert_eq!(flat.scores, vec![3.0, 2.0, 0.0]);
    }

    #[test]
    fn weights_count_and_ties_break_by_index() {
        let events = [ev(2, 4.0, 5), ev(1, 1.0, 5), ev(0, 1.0, 5), ev(9, 100.0, 5)];
        let p = popularity(3, &events, 3600.0);
        assert_eq!(p.ranked, vec![2, 0, 1]);
        assert_eq!(popularity(2, &[], 1.0).ranked, vec![0, 1]);
    }
}
