//! The handbook's baseline features (chapter 3.3, "Baseline feature transformation"), with the label delay
//! explicit: a terminal's risk at time `t` counts only frauds of transactions older than `t − delay`,
//! whose labels are known by then.
//!
//! Per transaction, 15 inputs: the amount; whether it is on a weekend and at night (hour ≤ 6); the
//! customer's number of transactions and mean amount over the last 1, 7 and 30 days (the current one
//! included); and the terminal's number of transactions and share of frauds in the 1, 7 and 30 days
//! before the delay.
//!
//! checkout-ai's risk model adds two inputs the risk signals of the event log carry as well: the order
//! value against the customer's history (the amount over the mean of its transactions in the 30 days
//! before, 1 without any), and the log of the amount.

use super::sim::{Transaction, DAY};
use chrono::{Datelike, Duration, NaiveDate, Weekday};

pub const WINDOWS: [i64; 3] = [1, 7, 30];

/// The input names, in order (the handbook's column names).
pub const NAMES: [&str; WIDTH] = [
    "TX_AMOUNT",
    "TX_DURING_WEEKEND",
    "TX_DURING_NIGHT",
    "CUSTOMER_ID_NB_TX_1DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW",
    "CUSTOMER_ID_NB_TX_7DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW",
    "CUSTOMER_ID_NB_TX_30DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW",
    "TERMINAL_ID_NB_TX_1DAY_WINDOW",
    "TERMINAL_ID_RISK_1DAY_WINDOW",
    "TERMINAL_ID_NB_TX_7DAY_WINDOW",
    "TERMINAL_ID_RISK_7DAY_WINDOW",
    "TERMINAL_ID_NB_TX_30DAY_WINDOW",
    "TERMINAL_ID_RISK_30DAY_WINDOW",
    "AMOUNT_OVER_CUSTOMER_30DAY_MEAN",
    "LOG_AMOUNT",
];

/// The handbook's inputs: the first 15.
pub const HANDBOOK_WIDTH: usize = 15;
/// With checkout-ai's two.
pub const WIDTH: usize = 17;

pub type Row = [f64; WIDTH];

/// The simulation's first day.
pub fn start_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2018, 4, 1).unwrap_or_default()
}

/// Every transaction's inputs. `labels[i]` is transaction `i`'s fraud label; only labels of transactions
/// at least `delay_days` old at the time of a transaction are read for it.
pub fn transform(transactions: &[Transaction], labels: &[bool], delay_days: i64) -> Vec<Row> {
    let mut rows = vec![[0.0; WIDTH]; transactions.len()];
    for (t, row) in transactions.iter().zip(rows.iter_mut()) {
        let date = start_date() + Duration::days(i64::from(t.day));
        row[0] = t.amount;
        row[1] = f64::from(u8::from(matches!(
            date.weekday(),
            Weekday::Sat | Weekday::Sun
        )));
        row[2] = f64::from(u8::from((t.seconds % DAY) / 3600 <= 6));
        row[16] = t.amount.max(0.0).ln_1p();
    }
    let group = |key: fn(&Transaction) -> u32| {
        let mut groups: std::collections::HashMap<u32, Vec<usize>> = Default::default();
        for (i, t) in transactions.iter().enumerate() {
            groups.entry(key(t)).or_default().push(i);
        }
        groups
    };
    for members in group(|t| t.customer).values() {
        customer_windows(transactions, members, &mut rows);
    }
    for members in group(|t| t.terminal).values() {
        terminal_windows(transactions, labels, members, delay_days * DAY, &mut rows);
    }
    rows
}

/// `members` in time order: per window, the count and mean amount over `(t − w, t]`.
fn customer_windows(transactions: &[Transaction], members: &[usize], rows: &mut [Row]) {
    for (w, &days) in WINDOWS.iter().enumerate() {
        let span = days * DAY;
        let (mut lo, mut sum) = (0usize, 0.0);
        for (hi, &i) in members.iter().enumerate() {
            let t = transactions[i].seconds;
            sum += transactions[i].amount;
            while transactions[members[lo]].seconds <= t - span {
                sum -= transactions[members[lo]].amount;
                lo += 1;
            }
            // Transactions at the same second as this one but later in the list are in pandas' window too.
            let (mut n, mut s) = ((hi - lo + 1) as f64, sum);
            for &j in &members[hi + 1..] {
                if transactions[j].seconds != t {
                    break;
                }
                n += 1.0;
                s += transactions[j].amount;
            }
            rows[i][3 + 2 * w] = n;
            rows[i][4 + 2 * w] = s / n;
            if days == 30 {
                // The mean of the others in the window: the customer's history before this order.
                let before = (s - transactions[i].amount) / (n - 1.0);
                rows[i][15] = if n > 1.0 && before > 0.0 {
                    transactions[i].amount / before
                } else {
                    1.0
                };
            }
        }
    }
}

/// `members` in time order: per window, the count and fraud share over `(t − delay − w, t − delay]`.
fn terminal_windows(
    transactions: &[Transaction],
    labels: &[bool],
    members: &[usize],
    delay: i64,
    rows: &mut [Row],
) {
    let seconds: Vec<i64> = members.iter().map(|&i| transactions[i].seconds).collect();
    // Prefix counts of transactions and frauds.
    let mut frauds = vec![0u32; members.len() + 1];
    for (k, &i) in members.iter().enumerate() {
        frauds[k + 1] = frauds[k] + u32::from(labels[i]);
    }
    // The number of members at or before `s`.
    let upto = |s: i64| seconds.partition_point(|&x| x <= s);
    for &i in members {
        let t = transactions[i].seconds;
        let end = upto(t - delay);
        for (w, &days) in WINDOWS.iter().enumerate() {
            let begin = upto(t - delay - days * DAY);
            let n = (end - begin) as f64;
            let f = f64::from(frauds[end] - frauds[begin]);
            rows[i][9 + 2 * w] = n;
            rows[i][10 + 2 * w] = if n > 0.0 { f / n } else { 0.0 };
        }
    }
}

/// Standard scaling fitted on training rows (population standard deviation, as scikit-learn's
/// `StandardScaler`; a constant input is left unscaled).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scaler {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
}

impl Scaler {
    /// Fits every input of the rows (all of one width).
    pub fn fit(rows: &[&[f64]]) -> Self {
        let width = rows.first().map_or(0, |r| r.len());
        let n = rows.len().max(1) as f64;
        let mut mean = vec![0.0; width];
        for r in rows {
            for (m, x) in mean.iter_mut().zip(r.iter()) {
                *m += x / n;
            }
        }
        let mut var = vec![0.0; width];
        for r in rows {
            for ((v, x), m) in var.iter_mut().zip(r.iter()).zip(&mean) {
                *v += (x - m).powi(2) / n;
            }
        }
        let scale = var
            .into_iter()
            .map(|v| if v > 0.0 { v.sqrt() } else { 1.0 })
            .collect();
        Self { mean, scale }
    }

    /// The scaled inputs it was fitted on (the first `mean.len()` of `row`).
    pub fn apply(&self, row: &[f64]) -> Vec<f64> {
        row.iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .map(|((x, m), s)| (x - m) / s)
            .collect()
    }
}
