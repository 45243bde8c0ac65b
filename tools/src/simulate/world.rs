//! The hidden world of the simulated shop: users with planted tastes, items with planted
//! factors, and how a shopper reacts to what is shown. No recommender ever sees any of this;
//! it only sees the events the shoppers leave.
//!
//! Every random draw is keyed by what it is about (the session, the item, the kind of draw)
//! rather than taken from one running stream, so two arms that show the same item to the same
//! user in the same session get the same coin flip: the arms differ only by what they show.

use std::collections::{HashMap, HashSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The knobs of the world. The defaults describe a shop where taste matters a lot, item appeal
/// and awareness (popularity) matter some, and showing the same thing again wears it out.
#[derive(Debug, Clone, PartialEq)]
pub struct WorldParams {
    pub users: usize,
    pub items: usize,
    /// Dimensions of the planted tastes.
    pub factors: usize,
    /// How much taste moves the odds: affinity = σ(sharpness·(u·v) + appeal + base_logit),
    /// with u·v of unit variance over random pairs.
    pub sharpness: f32,
    /// Standard deviation of an item's appeal to everyone (the part popularity can learn).
    pub appeal_spread: f32,
    /// Log-odds of a click on an average item at the top slot, before taste and appeal.
    pub base_logit: f32,
    /// Each earlier exposure of the item to the user multiplies the affinity by this.
    pub fade: f32,
    /// Zipf exponent of awareness: how often an item comes up when people browse by themselves.
    pub awareness_zipf: f64,
    /// P(add to cart | click) = cart_scale × affinity: people keep what they truly like.
    pub cart_scale: f32,
    /// P(purchase | add to cart).
    pub buy_given_cart: f32,
    /// Items a user opens by themselves (search, categories) at the start of each session.
    pub organic_per_session: usize,
    /// Log-normal spread of how often users come back: a few regulars, many occasional visitors.
    pub activity_spread: f64,
}

impl Default for WorldParams {
    fn default() -> Self {
        Self {
            users: 1_000,
            items: 1_000,
            factors: 8,
            sharpness: 1.5,
            appeal_spread: 0.5,
            base_logit: -3.5,
            fade: 0.7,
            awareness_zipf: 0.8,
            cart_scale: 0.6,
            buy_given_cart: 0.5,
            organic_per_session: 2,
            activity_spread: 1.0,
        }
    }
}

/// One visit: in `period`, the `index`-th session overall, by `user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub period: usize,
    /// Position in the whole schedule: the key of every draw made in this session.
    pub index: u64,
    pub user: u32,
}

/// What a user did with an item they opened by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Organic {
    pub item: u32,
    pub cart: bool,
    pub buy: bool,
}

/// What a user did with one shown item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reaction {
    pub click: bool,
    pub cart: bool,
    pub buy: bool,
}

/// Kinds of keyed draws, so that no two draws about the same thing share a number.
#[derive(Clone, Copy)]
enum Draw {
    Click = 1,
    Cart = 2,
    Buy = 3,
    Browse = 4,
    OrganicCart = 5,
    OrganicBuy = 6,
}

/// The planted truth.
#[derive(Debug, Clone)]
pub struct World {
    pub params: WorldParams,
    seed: u64,
    /// users × factors, row-major.
    tastes: Vec<f32>,
    /// items × factors, row-major.
    factors: Vec<f32>,
    appeal: Vec<f32>,
    awareness: Vec<f64>,
    activity: Vec<f64>,
}

impl World {
    /// A world drawn from `seed`: same parameters and seed, same world.
    pub fn new(params: WorldParams, seed: u64) -> Self {
        assert!(params.users > 0 && params.items > 0 && params.factors > 0);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let k = params.factors;
        // Tastes ~ N(0, 1) and item factors ~ N(0, 1/k): u·v has unit variance.
        let tastes = (0..params.users * k).map(|_| normal(&mut rng)).collect();
        let scale = 1.0 / (k as f32).sqrt();
        let factors = (0..params.items * k)
            .map(|_| normal(&mut rng) * scale)
            .collect();
        let appeal = (0..params.items)
            .map(|_| normal(&mut rng) * params.appeal_spread)
            .collect();
        // Awareness follows a power law over a random order, unrelated to taste or appeal.
        let mut rank: Vec<usize> = (0..params.items).collect();
        rand::seq::SliceRandom::shuffle(rank.as_mut_slice(), &mut rng);
        let awareness = rank
            .iter()
            .map(|&r| 1.0 / ((r + 1) as f64).powf(params.awareness_zipf))
            .collect();
        let activity = (0..params.users)
            .map(|_| (f64::from(normal(&mut rng)) * params.activity_spread).exp())
            .collect();
        Self {
            params,
            seed,
            tastes,
            factors,
            appeal,
            awareness,
            activity,
        }
    }

    pub fn users(&self) -> usize {
        self.params.users
    }

    pub fn items(&self) -> usize {
        self.params.items
    }

    /// How much `user` likes `item`, in [0, 1], before any fading.
    pub fn affinity(&self, user: u32, item: u32) -> f32 {
        let k = self.params.factors;
        let u = &self.tastes[user as usize * k..][..k];
        let v = &self.factors[item as usize * k..][..k];
        let dot: f32 = u.iter().zip(v).map(|(a, b)| a * b).sum();
        sigmoid(self.params.sharpness * dot + self.appeal[item as usize] + self.params.base_logit)
    }

    /// The affinity worn down by `exposures` earlier sightings; zero once bought.
    pub fn faded_affinity(&self, user: u32, item: u32, exposures: u32, bought: bool) -> f32 {
        if bought {
            return 0.0;
        }
        self.affinity(user, item) * self.params.fade.powi(exposures as i32)
    }

    /// The chance that a shopper looks at slot `position` (0 = first) at all; the same for
    /// every arm. The usual logarithmic discount of ranked lists.
    pub fn examination(position: usize) -> f32 {
        1.0 / ((position + 2) as f32).log2()
    }

    /// P(click) on an item shown at `position`.
    pub fn click_probability(
        &self,
        user: u32,
        item: u32,
        position: usize,
        exposures: u32,
        bought: bool,
    ) -> f32 {
        Self::examination(position) * self.faded_affinity(user, item, exposures, bought)
    }

    fn cart_probability(&self, user: u32, item: u32) -> f32 {
        (self.params.cart_scale * self.affinity(user, item)).min(1.0)
    }

    /// Who comes when: `sessions_per_period` visits in each of `periods` periods, users drawn
    /// by their activity (with replacement: a regular may come twice in a period).
    pub fn schedule(&self, periods: usize, sessions_per_period: usize) -> Vec<Session> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x5e55_1075);
        let pool = Cumulative::new(self.activity.iter().copied());
        let mut index = 0;
        let mut out = Vec::with_capacity(periods * sessions_per_period);
        for period in 0..periods {
            for _ in 0..sessions_per_period {
                out.push(Session {
                    period,
                    index,
                    user: pool.sample(rng.gen()) as u32,
                });
                index += 1;
            }
        }
        out
    }

    /// The items the user opens by themselves at the start of `session`, drawn by awareness ×
    /// affinity without repeats, and what they do with each. The same in every arm (a purchase
    /// of an item the arm already sold them is the arm's to drop).
    pub fn organic(&self, session: &Session) -> Vec<Organic> {
        let user = session.user;
        let weights = (0..self.items() as u32)
            .map(|i| self.awareness[i as usize] * f64::from(self.affinity(user, i)));
        let mut pool = Cumulative::new(weights);
        (0..self.params.organic_per_session.min(self.items()))
            .map(|n| {
                let item = pool.sample(self.draw(Draw::Browse, session.index, n as u64)) as u32;
                pool.remove(item as usize);
                let cart = self.draw(Draw::OrganicCart, session.index, u64::from(item))
                    < f64::from(self.cart_probability(user, item));
                let buy = cart
                    && self.draw(Draw::OrganicBuy, session.index, u64::from(item))
                        < f64::from(self.params.buy_given_cart);
                Organic { item, cart, buy }
            })
            .collect()
    }

    /// What the user of `session` does with `item` shown at `position`, having seen it
    /// `exposures` times before.
    pub fn react(
        &self,
        session: &Session,
        item: u32,
        position: usize,
        exposures: u32,
        bought: bool,
    ) -> Reaction {
        let key = u64::from(item);
        let p = self.click_probability(session.user, item, position, exposures, bought);
        let click = self.draw(Draw::Click, session.index, key) < f64::from(p);
        let cart = click
            && self.draw(Draw::Cart, session.index, key)
                < f64::from(self.cart_probability(session.user, item));
        let buy = cart
            && self.draw(Draw::Buy, session.index, key) < f64::from(self.params.buy_given_cart);
        Reaction { click, cart, buy }
    }

    /// A uniform number in [0, 1) that depends only on the seed, the kind of draw, the session
    /// and the key.
    fn draw(&self, kind: Draw, session: u64, key: u64) -> f64 {
        let mut h = splitmix(self.seed ^ splitmix(kind as u64));
        h = splitmix(h ^ session);
        h = splitmix(h ^ key.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        (h >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What one arm's shoppers have been through: the world is the same for every arm, but what
/// each user has seen and bought depends on what that arm showed them.
#[derive(Debug, Default, Clone)]
pub struct Shoppers {
    users: HashMap<u32, Memory>,
}

#[derive(Debug, Default, Clone)]
struct Memory {
    exposures: HashMap<u32, u32>,
    bought: HashSet<u32>,
}

impl Shoppers {
    pub fn exposures(&self, user: u32, item: u32) -> u32 {
        self.users
            .get(&user)
            .and_then(|m| m.exposures.get(&item).copied())
            .unwrap_or(0)
    }

    pub fn bought(&self, user: u32, item: u32) -> bool {
        self.users
            .get(&user)
            .is_some_and(|m| m.bought.contains(&item))
    }

    /// The items the user bought so far (in no particular order).
    pub fn purchases(&self, user: u32) -> impl Iterator<Item = u32> + '_ {
        self.users
            .get(&user)
            .into_iter()
            .flat_map(|m| m.bought.iter().copied())
    }

    pub fn see(&mut self, user: u32, item: u32) {
        *self
            .users
            .entry(user)
            .or_default()
            .exposures
            .entry(item)
            .or_default() += 1;
    }

    pub fn buy(&mut self, user: u32, item: u32) {
        self.users.entry(user).or_default().bought.insert(item);
    }
}

/// Items with a sampler over their weights (inverse CDF by binary search over a running sum;
/// removing an item zeroes its weight).
struct Cumulative {
    weights: Vec<f64>,
    sums: Vec<f64>,
}

impl Cumulative {
    fn new(weights: impl Iterator<Item = f64>) -> Self {
        let weights: Vec<f64> = weights.collect();
        let mut c = Self {
            sums: Vec::with_capacity(weights.len()),
            weights,
        };
        c.rebuild();
        c
    }

    fn rebuild(&mut self) {
        let mut total = 0.0;
        self.sums.clear();
        self.sums.extend(self.weights.iter().map(|w| {
            total += w;
            total
        }));
    }

    /// The item at `u` ∈ [0, 1) of the total weight.
    fn sample(&self, u: f64) -> usize {
        let total = self.sums.last().copied().unwrap_or(0.0);
        let at = self.sums.partition_point(|&c| c <= u * total);
        at.min(self.sums.len() - 1)
    }

    fn remove(&mut self, i: usize) {
        self.weights[i] = 0.0;
        self.rebuild();
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut impl Rng) -> f32 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]: ln stays finite
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> World {
        World::new(
            WorldParams {
                users: 50,
                items: 80,
                ..WorldParams::default()
            },
            7,
        )
    }

    #[test]
    fn each_exposure_fades_the_affinity_and_a_purchase_ends_it() {
        let w = small();
        let a = w.affinity(3, 5);
        assert!(a > 0.0 && a < 1.0);
        assert_eq!(w.faded_affinity(3, 5, 0, false), a);
        for n in 1..5 {
            let ratio = w.faded_affinity(3, 5, n, false) / w.faded_affinity(3, 5, n - 1, false);
            assert!((ratio - 0.7).abs() < 1e-5, "{ratio}");
        }
        assert_eq!(w.faded_affinity(3, 5, 0, true), 0.0);
        assert_eq!(w.click_probability(3, 5, 0, 2, true), 0.0);
    }

    #[test]
    fn probabilities_stay_in_range_and_lower_slots_are_seen_less() {
        let w = small();
        for u in 0..50 {
            for i in 0..80 {
                for pos in 0..10 {
                    let p = w.click_probability(u, i, pos, (pos % 3) as u32, false);
                    assert!((0.0..=1.0).contains(&p), "{p}");
                }
            }
        }
        assert_eq!(World::examination(0), 1.0);
        assert!((1..10).all(|p| World::examination(p) < World::examination(p - 1)));
    }

    #[test]
    fn taste_matters_more_than_chance() {
        // Each user's best item is far more likely clicked than an average one.
        let w = small();
        let (mut best, mut mean) = (0.0, 0.0);
        for u in 0..50 {
            let a: Vec<f32> = (0..80).map(|i| w.affinity(u, i)).collect();
            best += a.iter().cloned().fold(0.0, f32::max);
            mean += a.iter().sum::<f32>() / 80.0;
        }
        assert!(best > 5.0 * mean, "best {best} mean {mean}");
    }

    #[test]
    fn observed_click_rate_matches_the_probability() {
        // The keyed draws are uniform: over many sessions, clicks follow click_probability.
        let w = small();
        let (user, item) = (4, 9);
        let p = w.click_probability(user, item, 1, 1, false);
        let n = 20_000;
        let clicks = (0..n)
            .filter(|&index| {
                let s = Session {
                    period: 0,
                    index,
                    user,
                };
                w.react(&s, item, 1, 1, false).click
            })
            .count();
        let rate = clicks as f32 / n as f32;
        let sd = (p * (1.0 - p) / n as f32).sqrt();
        assert!((rate - p).abs() < 5.0 * sd + 1e-3, "rate {rate} vs p {p}");
    }

    #[test]
    fn a_purchase_needs_a_cart_needs_a_click() {
        let w = small();
        for s in w.schedule(5, 40) {
            for item in 0..80 {
                let r = w.react(&s, item, 0, 0, false);
                assert!(!r.cart || r.click);
                assert!(!r.buy || r.cart);
                assert_eq!(w.react(&s, item, 0, 0, true), Reaction::default());
            }
            for o in w.organic(&s) {
                assert!(!o.buy || o.cart);
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_world_and_a_different_one_does_not() {
        let (a, b, c) = (small(), small(), World::new(small().params, 8));
        assert_eq!(a.schedule(4, 30), b.schedule(4, 30));
        assert_ne!(a.schedule(4, 30), c.schedule(4, 30));
        let s = a.schedule(4, 30)[17];
        assert_eq!(a.organic(&s), b.organic(&s));
        assert_eq!(a.react(&s, 3, 0, 0, false), b.react(&s, 3, 0, 0, false));
        assert_eq!(a.affinity(1, 2), b.affinity(1, 2));
        assert_ne!(a.affinity(1, 2), c.affinity(1, 2));
    }

    #[test]
    fn organic_items_are_distinct_and_favour_taste() {
        let w = small();
        let mut liked = 0.0;
        let mut n = 0.0;
        for s in w.schedule(10, 50) {
            let items: Vec<u32> = w.organic(&s).iter().map(|o| o.item).collect();
            assert_eq!(items.len(), 2);
            assert_ne!(items[0], items[1]);
            for i in items {
                liked += w.affinity(s.user, i);
                n += 1.0;
            }
        }
        let mean: f32 = (0..50)
            .flat_map(|u| (0..80).map(move |i| (u, i)))
            .map(|(u, i)| w.affinity(u, i))
            .sum::<f32>()
            / 4000.0;
        assert!(liked / n > 2.0 * mean, "{} vs {mean}", liked / n);
    }

    #[test]
    fn regulars_come_back_more_often() {
        let w = small();
        let mut visits = vec![0usize; 50];
        for s in w.schedule(20, 100) {
            visits[s.user as usize] += 1;
        }
        visits.sort_unstable();
        assert!(visits[45..].iter().sum::<usize>() > 3 * visits[..25].iter().sum::<usize>());
    }

    #[test]
    fn shoppers_remember_what_they_saw_and_bought() {
        let mut s = Shoppers::default();
        s.see(1, 2);
        s.see(1, 2);
        s.buy(1, 3);
        assert_eq!(s.exposures(1, 2), 2);
        assert_eq!(s.exposures(2, 2), 0);
        assert!(s.bought(1, 3) && !s.bought(1, 2));
        assert_eq!(s.purchases(1).collect::<Vec<_>>(), vec![3]);
        assert_eq!(s.purchases(2).count(), 0);
    }
}
