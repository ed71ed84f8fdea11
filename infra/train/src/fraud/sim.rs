//! The transaction simulator of *Reproducible Machine Learning for Credit Card Fraud Detection — Practical
//! Handbook* (Le Borgne, Siblini, Lebichot, Bontempi; chapter 3.2, "Transaction data simulator"), written
//! here from its description, seeded with this crate's own generator (so the draws differ from numpy's,
//! while every distribution is the handbook's).
//!
//! - Customers: a location on a 100 × 100 grid, a mean amount `U(5, 100)` with standard deviation half of
//!   it, and a mean number of transactions per day `U(0, 4)`.
//! - Terminals: a location on the same grid. A customer uses the terminals within `radius` (5) of it.
//! - Each day each customer makes `Poisson(mean)` transactions, at a time of day `N(12h, 20,000 s)` (drawn
//!   again outside the day is dropped, as in the handbook), for an amount `N(mean, std)` (a negative draw
//!   is replaced by `U(0, 2·mean)`), at a terminal drawn uniformly from its own.
//! - Fraud scenario 1: every amount above 220 is a fraud.
//! - Fraud scenario 2: each day 2 terminals are compromised; every transaction on them in the next 28 days
//!   is a fraud.
//! - Fraud scenario 3: each day 3 customers' credentials leak; in the next 14 days a third of their
//!   transactions are frauds with 5 times the amount.

use checkout_domain::ope::SplitMix64;

/// The handbook's defaults: 5,000 customers, 10,000 terminals, 183 days from 2018-04-01, radius 5.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SimConfig {
    pub customers: u32,
    pub terminals: u32,
    pub days: u32,
    pub radius: f64,
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            customers: 5000,
            terminals: 10_000,
            days: 183,
            radius: 5.0,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub id: u32,
    pub x: f64,
    pub y: f64,
    pub mean_amount: f64,
    pub std_amount: f64,
    pub mean_tx_per_day: f64,
    /// The terminals within the radius.
    pub terminals: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Terminal {
    pub id: u32,
    pub x: f64,
    pub y: f64,
}

/// Why a transaction is a fraud (the simulator's ground truth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    Genuine,
    LargeAmount,
    CompromisedTerminal,
    CompromisedCard,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transaction {
    /// In time order.
    pub id: u64,
    /// Seconds since the start (2018-04-01T00:00:00).
    pub seconds: i64,
    pub day: u32,
    pub customer: u32,
    pub terminal: u32,
    /// In currency units, rounded to cents.
    pub amount: f64,
    pub scenario: Scenario,
}

impl Transaction {
    pub fn fraud(&self) -> bool {
        self.scenario != Scenario::Genuine
    }
}

#[derive(Debug, Clone)]
pub struct Simulation {
    pub config: SimConfig,
    pub customers: Vec<Customer>,
    pub terminals: Vec<Terminal>,
    /// In time order.
    pub transactions: Vec<Transaction>,
}

pub const DAY: i64 = 86_400;

/// An independent stream per purpose and index, so that each customer's transactions do not depend on
/// how many other customers there are.
fn stream(seed: u64, purpose: u64, index: u64) -> SplitMix64 {
    let mut mix = SplitMix64(seed ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let base = mix.next_u64();
    SplitMix64(base ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03))
}

fn normal(rng: &mut SplitMix64, mean: f64, sd: f64) -> f64 {
    // Box–Muller.
    let (u1, u2) = (rng.uniform().max(f64::MIN_POSITIVE), rng.uniform());
    mean + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Knuth's method: fine for the small means here (below 4).
fn poisson(rng: &mut SplitMix64, mean: f64) -> u32 {
    let limit = (-mean).exp();
    let (mut k, mut p) = (0, 1.0);
    loop {
        p *= rng.uniform();
        if p <= limit {
            return k;
        }
        k += 1;
    }
}

fn pick(rng: &mut SplitMix64, n: usize) -> usize {
    ((rng.uniform() * n as f64) as usize).min(n.saturating_sub(1))
}

/// `k` distinct indices below `n`, drawn without replacement (a partial Fisher–Yates shuffle).
fn sample(rng: &mut SplitMix64, n: usize, k: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    for i in 0..k.min(n) {
        let j = i + pick(rng, n - i);
        all.swap(i, j);
    }
    all.truncate(k.min(n));
    all
}

pub fn simulate(config: &SimConfig) -> Simulation {
    let mut profiles = stream(config.seed, 1, 0);
    let mut customers: Vec<Customer> = (0..config.customers)
        .map(|id| {
            let (x, y) = (profiles.uniform() * 100.0, profiles.uniform() * 100.0);
            let mean_amount = 5.0 + profiles.uniform() * 95.0;
            Customer {
                id,
                x,
                y,
                mean_amount,
                std_amount: mean_amount / 2.0,
                mean_tx_per_day: profiles.uniform() * 4.0,
                terminals: Vec::new(),
            }
        })
        .collect();
    let mut places = stream(config.seed, 2, 0);
    let terminals: Vec<Terminal> = (0..config.terminals)
        .map(|id| Terminal {
            id,
            x: places.uniform() * 100.0,
            y: places.uniform() * 100.0,
        })
        .collect();
    let r2 = config.radius * config.radius;
    for c in &mut customers {
        c.terminals = terminals
            .iter()
            .filter(|t| (t.x - c.x).powi(2) + (t.y - c.y).powi(2) < r2)
            .map(|t| t.id)
            .collect();
    }

    let mut transactions = Vec::new();
    for c in &customers {
        let mut rng = stream(config.seed, 3, u64::from(c.id));
        for day in 0..config.days {
            for _ in 0..poisson(&mut rng, c.mean_tx_per_day) {
                let time = normal(&mut rng, DAY as f64 / 2.0, 20_000.0).round() as i64;
                if time <= 0 || time >= DAY {
                    continue;
                }
                let mut amount = normal(&mut rng, c.mean_amount, c.std_amount);
                if amount < 0.0 {
                    amount = rng.uniform() * c.mean_amount * 2.0;
                }
                if c.terminals.is_empty() {
                    continue;
                }
                let terminal = c.terminals[pick(&mut rng, c.terminals.len())];
                transactions.push(Transaction {
                    id: 0,
                    seconds: i64::from(day) * DAY + time,
                    day,
                    customer: c.id,
                    terminal,
                    amount: (amount * 100.0).round() / 100.0,
                    scenario: Scenario::Genuine,
                });
            }
        }
    }
    transactions.sort_by_key(|t| (t.seconds, t.customer, t.terminal));
    for (i, t) in transactions.iter_mut().enumerate() {
        t.id = i as u64;
    }
    add_frauds(config, &mut transactions);
    Simulation {
        config: config.clone(),
        customers,
        terminals,
        transactions,
    }
}

fn add_frauds(config: &SimConfig, transactions: &mut [Transaction]) {
    // Scenario 1.
    for t in transactions.iter_mut().filter(|t| t.amount > 220.0) {
        t.scenario = Scenario::LargeAmount;
    }
    // Scenario 2: the days each terminal is compromised from.
    let mut compromised_from: std::collections::HashMap<u32, Vec<u32>> = Default::default();
    for day in 0..config.days {
        let mut rng = stream(config.seed, 4, u64::from(day));
        for t in sample(&mut rng, config.terminals as usize, 2) {
            compromised_from.entry(t as u32).or_default().push(day);
        }
    }
    for t in transactions.iter_mut() {
        if let Some(starts) = compromised_from.get(&t.terminal) {
            if starts.iter().any(|&s| s <= t.day && t.day < s + 28) {
                t.scenario = Scenario::CompromisedTerminal;
            }
        }
    }
    // Scenario 3: per day, 3 customers; a third of their next 14 days' transactions, 5 times the amount.
    let mut by_customer: std::collections::HashMap<u32, Vec<usize>> = Default::default();
    for (i, t) in transactions.iter().enumerate() {
        by_customer.entry(t.customer).or_default().push(i);
    }
    for day in 0..config.days {
        let mut rng = stream(config.seed, 5, u64::from(day));
        let victims = sample(&mut rng, config.customers as usize, 3);
        let window: Vec<usize> = victims
            .iter()
            .flat_map(|&c| by_customer.get(&(c as u32)).into_iter().flatten())
            .copied()
            .filter(|&i| transactions[i].day >= day && transactions[i].day < day + 14)
            .collect();
        for k in sample(&mut rng, window.len(), window.len() / 3) {
            let t = &mut transactions[window[k]];
            t.amount = (t.amount * 5.0 * 100.0).round() / 100.0;
            t.scenario = Scenario::CompromisedCard;
        }
    }
}
