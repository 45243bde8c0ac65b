//! `recloop synth`: a synthetic shop log of any size, in the CSV format `recloop import` reads.
//!
//! Benchmarks need logs far larger than any dataset the project may ship, shaped like a shop's:
//! - item popularity follows a power law (Zipf over a random permutation of the items);
//! - every item belongs to one of `tastes` latent topics, and every user has planted tastes: a
//!   main topic, a second one, and a share of browsing that follows global popularity. A view
//!   picks a topic by the user's taste, then an item of that topic by popularity, so
//!   `P(item | user) ∝ popularity × taste affinity` and a factor model has something to find;
//! - user activity is heavy-tailed too (Pareto, capped), sessions spread over a period that
//!   ends at `end` (never in the future), a few seconds to minutes between events;
//! - each view runs a funnel: some views get a click, some clicks an add-to-cart, some carts a
//!   purchase, each a little later than the step before.
//!
//! The output is a pure function of the parameters and streams user by user: memory is the
//! item tables plus one user's events, whatever the number of events.

use std::io::{self, Write};

use rand::distributions::{Distribution, WeightedIndex};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use recloop::domain::EventType;

/// Zipf exponent of item popularity: ~1 is what shop catalogues show.
const ZIPF: f64 = 1.0;
/// Pareto shape of user activity, and the cap (in multiples of the minimum) on one user's share.
const ACTIVITY_SHAPE: f64 = 1.5;
const ACTIVITY_CAP: f64 = 100.0;
/// Where a view's item comes from: the main taste, the second taste, else global popularity.
const MAIN_TASTE: f64 = 0.6;
const SECOND_TASTE: f64 = 0.25;
/// The funnel: P(click | view), P(add_to_cart | click), P(purchase | add_to_cart).
const P_CLICK: f64 = 0.3;
const P_CART: f64 = 0.25;
const P_PURCHASE: f64 = 0.5;
/// Mean number of viewed items per session (geometric).
const VIEWS_PER_SESSION: f64 = 5.0;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthParams {
    pub users: usize,
    pub items: usize,
    /// Exact number of events (rows) written.
    pub events: u64,
    pub seed: u64,
    /// Number of latent topics items belong to and users have tastes for.
    pub tastes: usize,
    /// Length of the period the sessions fall in.
    pub days: u32,
    /// Unix seconds; every timestamp is strictly before it.
    pub end: i64,
}

/// Counts of what was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SynthSummary {
    pub events: u64,
    /// Rows per [`EventType`], in [`EventType::ALL`] order.
    pub by_type: [u64; 4],
    /// Users with at least one event.
    pub active_users: u64,
}

/// The catalogue: item topics and the popularity samplers.
struct Shop {
    /// Items of each topic, and a popularity sampler over them.
    topics: Vec<(Vec<u32>, WeightedIndex<f64>)>,
    global: WeightedIndex<f64>,
}

impl Shop {
    fn new(p: &SynthParams, rng: &mut ChaCha8Rng) -> Self {
        let mut rank: Vec<u32> = (0..p.items as u32).collect();
        rank.shuffle(rng);
        let popularity = |i: u32| 1.0 / f64::from(rank[i as usize] + 1).powf(ZIPF);
        let topic_of: Vec<u32> = (0..p.items)
            .map(|_| rng.gen_range(0..p.tastes as u32))
            .collect();
        let mut members = vec![Vec::new(); p.tastes];
        for (i, &t) in topic_of.iter().enumerate() {
            members[t as usize].push(i as u32);
        }
        let topics = members
            .into_iter()
            .filter_map(|items| {
                let w = WeightedIndex::new(items.iter().map(|&i| popularity(i))).ok()?;
                Some((items, w))
            })
            .collect::<Vec<_>>();
        let global = WeightedIndex::new((0..p.items as u32).map(popularity))
            .expect("at least one item, positive weights");
        Shop { topics, global }
    }

    /// A user's planted tastes: indices into `topics` (topics without items were dropped).
    fn tastes(&self, rng: &mut ChaCha8Rng) -> (usize, usize) {
        let n = self.topics.len();
        (rng.gen_range(0..n), rng.gen_range(0..n))
    }

    fn view(&self, tastes: (usize, usize), rng: &mut ChaCha8Rng) -> u32 {
        let r = rng.gen::<f64>();
        let topic = if r < MAIN_TASTE {
            tastes.0
        } else if r < MAIN_TASTE + SECOND_TASTE {
            tastes.1
        } else {
            return self.global.sample(rng) as u32;
        };
        let (items, w) = &self.topics[topic];
        items[w.sample(rng)]
    }
}

/// One user's event before its session gets a start time.
struct Draft {
    session: u32,
    offset_s: i64,
    item: u32,
    kind: EventType,
}

/// How many events each user gets: Pareto activity, rounded so the total is exactly `events`.
/// Every user gets one event first when there are enough, so `users` are all in the log.
fn budgets(p: &SynthParams, rng: &mut ChaCha8Rng) -> Vec<u64> {
    let activity: Vec<f64> = (0..p.users)
        .map(|_| {
            let u: f64 = rng.gen();
            (1.0 - u).powf(-1.0 / ACTIVITY_SHAPE).min(ACTIVITY_CAP)
        })
        .collect();
    let base = u64::from(p.events >= p.users as u64);
    let spread = p.events - base * p.users as u64;
    let total: f64 = activity.iter().sum();
    let mut cumulative = 0.0;
    let mut given = 0u64;
    let mut budgets: Vec<u64> = activity
        .iter()
        .map(|a| {
            cumulative += a;
            let upto = (((cumulative / total) * spread as f64).round() as u64).clamp(given, spread);
            let share = upto - given;
            given += share;
            base + share
        })
        .collect();
    // Rounding may leave a few events over; the last user takes them.
    if let Some(last) = budgets.last_mut() {
        *last += spread - given;
    }
    budgets
}

/// Writes the log as CSV (`user_id,item_id,type,timestamp`, unix seconds), user by user,
/// each user's events in time order.
///
/// # Errors
/// The writer's errors, and `InvalidInput` for zero users, items or tastes.
pub fn write_csv(p: &SynthParams, out: impl Write) -> io::Result<SynthSummary> {
    if p.users == 0 || p.items == 0 || p.tastes == 0 || p.days == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "users, items, tastes and days must be positive",
        ));
    }
    let mut out = io::BufWriter::with_capacity(1 << 20, out);
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let shop = Shop::new(p, &mut rng);
    let budgets = budgets(p, &mut rng);
    let period_s = i64::from(p.days) * 86_400;
    let mut summary = SynthSummary::default();
    let mut drafts: Vec<Draft> = Vec::new();
    let mut starts: Vec<i64> = Vec::new();
    let mut lengths: Vec<i64> = Vec::new();
    writeln!(out, "user_id,item_id,type,timestamp")?;
    for (user, &budget) in budgets.iter().enumerate() {
        if budget == 0 {
            continue;
        }
        summary.active_users += 1;
        let tastes = shop.tastes(&mut rng);
        drafts.clear();
        let mut session = 0;
        let mut offset_s = 0;
        while (drafts.len() as u64) < budget {
            // A session: geometric number of views, each running the funnel.
            loop {
                let item = shop.view(tastes, &mut rng);
                let mut kind = EventType::View;
                loop {
                    drafts.push(Draft {
                        session,
                        offset_s,
                        item,
                        kind,
                    });
                    offset_s += rng.gen_range(2..90);
                    let (p_next, next) = match kind {
                        EventType::View => (P_CLICK, EventType::Click),
                        EventType::Click => (P_CART, EventType::AddToCart),
                        EventType::AddToCart => (P_PURCHASE, EventType::Purchase),
                        EventType::Purchase => break,
                    };
                    if drafts.len() as u64 == budget || !rng.gen_bool(p_next) {
                        break;
                    }
                    kind = next;
                }
                if drafts.len() as u64 == budget || rng.gen_bool(1.0 / VIEWS_PER_SESSION) {
                    break;
                }
            }
            session += 1;
            offset_s = 0;
        }
        // Session starts: sorted uniform draws over the period, pushed apart so sessions do
        // not overlap, then shifted back if the last one would reach `end`.
        lengths.clear();
        lengths.resize(session as usize, 0);
        for d in &drafts {
            lengths[d.session as usize] = d.offset_s + 1;
        }
        starts.clear();
        starts.extend((0..session).map(|_| p.end - period_s + rng.gen_range(0..period_s)));
        starts.sort_unstable();
        for s in 1..starts.len() {
            starts[s] = starts[s].max(starts[s - 1] + lengths[s - 1] + rng.gen_range(60..3600));
        }
        let last_end = starts.last().copied().unwrap_or(0) + lengths.last().copied().unwrap_or(0);
        let overflow = (last_end - p.end).max(0);
        for d in &drafts {
            let ts = starts[d.session as usize] + d.offset_s - overflow;
            writeln!(out, "u{user},i{},{},{ts}", d.item, d.kind.as_str())?;
            summary.by_type[d.kind.code() as usize] += 1;
        }
        summary.events += drafts.len() as u64;
    }
    out.flush()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(events: u64, seed: u64) -> SynthParams {
        SynthParams {
            users: 500,
            items: 300,
            events,
            seed,
            tastes: 8,
            days: 30,
            end: 1_750_000_000,
        }
    }

    fn generate(p: &SynthParams) -> (String, SynthSummary) {
        let mut buf = Vec::new();
        let summary = write_csv(p, &mut buf).expect("write to memory");
        (String::from_utf8(buf).expect("utf-8"), summary)
    }

    fn rows(csv: &str) -> Vec<(u32, u32, &str, i64)> {
        csv.lines()
            .skip(1)
            .map(|line| {
                let f: Vec<&str> = line.split(',').collect();
                (
                    f[0][1..].parse().unwrap(),
                    f[1][1..].parse().unwrap(),
                    f[2],
                    f[3].parse().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_log() {
        let (a, sa) = generate(&params(20_000, 1));
        let (b, _) = generate(&params(20_000, 1));
        let (c, _) = generate(&params(20_000, 2));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(sa.events, 20_000);
        assert_eq!(a.lines().count(), 20_001);
        assert_eq!(sa.active_users, 500);
    }

    #[test]
    fn popularity_is_skewed_and_the_funnel_narrows() {
        let (csv, summary) = generate(&params(60_000, 3));
        let rows = rows(&csv);
        let mut per_item = vec![0u64; 300];
        for r in &rows {
            per_item[r.1 as usize] += 1;
        }
        per_item.sort_unstable_by(|a, b| b.cmp(a));
        // Zipf(1) over 300 items: the top 10% hold about 60% of the mass; uniform would be 10%.
        let top: u64 = per_item[..30].iter().sum();
        let share = top as f64 / rows.len() as f64;
        assert!(share > 0.4, "top-10% item share {share}");
        let [views, clicks, carts, purchases] = summary.by_type;
        assert!(views > 2 * clicks && clicks > 2 * carts && carts > purchases && purchases > 0);
        assert_eq!(views + clicks + carts + purchases, 60_000);
    }

    #[test]
    fn purchases_follow_carts_and_time_stays_in_the_period() {
        let p = params(30_000, 4);
        let (csv, _) = generate(&p);
        let rows = rows(&csv);
        let mut carted = std::collections::HashSet::new();
        for (i, r) in rows.iter().enumerate() {
            assert!(
                r.3 < p.end && r.3 >= p.end - 30 * 86_400,
                "row {i}: ts {}",
                r.3
            );
            if i > 0 && rows[i - 1].0 == r.0 {
                assert!(
                    rows[i - 1].3 <= r.3,
                    "row {i}: a user's events in time order"
                );
            }
            match r.2 {
                "add_to_cart" => {
                    carted.insert((r.0, r.1));
                }
                "purchase" => assert!(carted.contains(&(r.0, r.1)), "row {i}: uncarted purchase"),
                _ => {}
            }
        }
    }

    #[test]
    fn users_concentrate_on_their_planted_tastes() {
        let p = params(60_000, 5);
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        let shop = Shop::new(&p, &mut rng);
        let mut topic_of = vec![0u32; p.items];
        for (t, (items, _)) in shop.topics.iter().enumerate() {
            for &i in items {
                topic_of[i as usize] = t as u32;
            }
        }
        let (csv, _) = generate(&p);
        let mut per_user: std::collections::HashMap<u32, Vec<u32>> = Default::default();
        for r in rows(&csv).iter().filter(|r| r.2 == "view") {
            per_user
                .entry(r.0)
                .or_default()
                .push(topic_of[r.1 as usize]);
        }
        // With 8 topics, no taste would put ~1/8 of a user's views in their top topic; the
        // planted main taste puts 60% + its share of the global draws there.
        let (mut top, mut total) = (0usize, 0usize);
        for topics in per_user.values().filter(|t| t.len() >= 20) {
            let mut count = [0usize; 8];
            for &t in topics {
                count[t as usize] += 1;
            }
            top += count.iter().max().unwrap();
            total += topics.len();
        }
        let share = top as f64 / total as f64;
        assert!(share > 0.5, "top-topic share of views {share}");
    }

    #[test]
    fn output_imports_cleanly() {
        let p = SynthParams {
            end: chrono::Utc::now().timestamp(),
            ..params(3_000, 6)
        };
        let file = tempfile::NamedTempFile::new().expect("temp file");
        write_csv(&p, file.as_file()).expect("write");
        let events = crate::import::read_csv(file.path()).expect("import validates every row");
        assert_eq!(events.len(), 3_000);
    }

    #[test]
    fn fewer_events_than_users_and_bad_sizes() {
        let (csv, summary) = generate(&params(100, 7));
        assert_eq!(summary.events, 100);
        assert!(summary.active_users <= 100);
        assert_eq!(csv.lines().count(), 101);
        let bad = SynthParams {
            items: 0,
            ..params(10, 7)
        };
        assert!(write_csv(&bad, Vec::new()).is_err());
    }
}
